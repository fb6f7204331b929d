"""Real human speech for tests and benchmarks: the committed recordings (tests/data/real/, see its README) and
long inputs built from them at test time, with their reference text.

A long input is the committed recording over and over, each pass with its prompts in another order (a fixed
shuffle per pass, so the result is the same on every run), so that neighbouring chunks never hold the same
words at the same offsets. Built with the ffmpeg the product uses; nothing large is committed.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from tests.helpers import DATA

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
