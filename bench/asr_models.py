"""Benchmark: the offline speech models (tiny.en, base) × punctuation prompt (on/off) × path (one pass, chunked).

    python -m bench.asr_models [--models tiny.en,base] [--prompts off,default] [--json FILE]

On the real recordings in tests/data/real: the phone call (30 s, two speakers, reference text from its STM),
allison (5 min 16 s, one voice, reference from its JSON) and "mix", the call and the four AMI meeting excerpts
one after the other (~2.6 min; no reference text, so only RTF and punctuation). Per row: WER (jiwer on text
normalised as bench/long_job.py does: lower case, words and digits), punctuation marks per 100 words, RTF (wall
time of the whole path, language choice included, ÷ audio), and per model the load time (joining base's parts
into the cache included, if the cache is cold) and the process's peak RSS.

Each model runs in its own child process (a clean peak RSS, a cold load), one after the other: one heavy process
at a time. The one-pass path is `transcribe_resumable` with the model's own engine (what the `transcribe` stage
runs); the chunked path is what the chunk activities run without Temporal: `plan_chunks` at the default
CLIPPER_ASR_CHUNK_S, `transcribe_span` with the chunked engine (batched windows), CLIPPER_ASR_PARALLEL side by
side, `merge_chunks`.

`measure()` returns the rows for bench/quality.py; `table()` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pydantic import BaseModel

MODELS = ("tiny.en", "base")
PROMPTS = ("off", "on")  # on: PROMPT below; any other value is used as the prompt itself
# The punctuated prompt measured against none (short, conversational, every common mark). CLIPPER_ASR_PROMPT is
# empty by default because this raised WER (see docs/quality.md).
PROMPT = "Hello, welcome. Yes, we talked about it, and it went well! Did you see it?"
INPUTS = ("call", "allison", "mix")
PUNCTUATION = re.compile(r"[.,!?;:]")


class Row(BaseModel):
    model: str
    prompt: str
    path: str  # one pass | chunked
    recording: str
    audio_s: float
    wer: float | None  # None: no reference text (mix)
    punct_per_100_words: float
    rtf: float
    words: int
    language: str | None = None
    load_s: float = 0.0  # per model (the same on every row of that model)
    peak_rss_mb: float = 0.0  # per model


def _wav(src: Path, out: Path) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-i", str(src), "-vn",
                    "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out)], check=True, timeout=120)
    return out


def build_inputs(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """The recordings as 16 kHz WAVs with their reference text (None: no text)."""
    from tests.helpers import conversations, real

    mix_mp3 = folder / "mix.mp3"
    conversations.concatenate([conversations.CALL, *conversations.MEETINGS], mix_mp3)
    allison_text = " ".join(p.text for p in sorted(real.prompts(), key=lambda p: p.start))
    return {
        "call": (_wav(conversations.audio(conversations.CALL), folder / "call.wav"), conversations.reference_text()),
        "allison": (_wav(real.ALLISON, folder / "allison.wav"), allison_text),
        "mix": (_wav(mix_mp3, folder / "mix.wav"), None),
    }


def _settings(model: str, prompt: str, cache_dir: Path | None):
    from clipper.config import Settings

    values = dict(asr_engine="local", asr_model=model, asr_model_path=None, asr_compute_type="int8",
                  asr_beam_size=5, asr_cpu_threads=0)
    if cache_dir is not None:
        values["asr_model_cache_dir"] = cache_dir
    values["asr_prompt"] = {"off": "", "on": PROMPT}.get(prompt, prompt)
    return Settings(**values)


def _one_pass(settings, wav: Path, scratch: Path) -> tuple[str, str | None]:
    from clipper.asr import get_engine
    from clipper.asr.language import choose_language
    from clipper.asr.resume import transcribe_resumable
    from clipper.store.files import JsonlLog

    engine = get_engine(settings, "local")
    choice = choose_language(engine, wav, None, settings)
    transcript, _ = transcribe_resumable(engine, wav, JsonlLog(scratch / "one.partial.jsonl"), duration_s=None,
                                         language=choice.language)
    return transcript.text, choice.language


def _chunked(settings, wav: Path, scratch: Path) -> tuple[str, str | None]:
    from clipper.asr import get_engine
    from clipper.asr.chunks import merge_chunks, plan_chunks, transcribe_span
    from clipper.asr.language import choose_language
    from clipper.store.files import JsonlLog

    engine = get_engine(settings, "local", chunked=True)
    choice = choose_language(engine, wav, None, settings)  # once, for every chunk
    spans = plan_chunks(wav, settings.asr_chunk_s)
    with ThreadPoolExecutor(max_workers=max(1, settings.asr_parallel)) as pool:
        parts = list(pool.map(lambda s: transcribe_span(engine, wav, s, JsonlLog(scratch / f"c{s.index}.jsonl"),
                                                        language=choice.language), spans))
    return merge_chunks(parts, engine=engine.name).text, choice.language


def run_model(model: str, prompts: list[str], inputs: dict[str, tuple[Path, str | None]],
              cache_dir: Path | None = None) -> list[Row]:
    """Every prompt × path × input for one model, in this process (call it in a fresh one for clean numbers)."""
    import jiwer

    from clipper.asr import get_engine, wav_duration
    from tests.helpers.real import normalise

    started = time.perf_counter()
    get_engine(_settings(model, "off", cache_dir), "local").load()  # cold: join (if needed) + load
    load_s = time.perf_counter() - started
    rows = []
    for prompt in prompts:
        settings = _settings(model, prompt, cache_dir)
        for path, fn in (("one pass", _one_pass), ("chunked", _chunked)):
            for name, (wav, reference) in inputs.items():
                with tempfile.TemporaryDirectory(prefix="clipper-asr-bench-") as scratch:
                    t0 = time.perf_counter()
                    text, language = fn(settings, wav, Path(scratch))
                    seconds = time.perf_counter() - t0
                audio_s = wav_duration(wav)
                words = len(text.split())
                rows.append(Row(
                    model=model, prompt=prompt, path=path, recording=name, audio_s=round(audio_s, 1),
                    wer=round(jiwer.wer(normalise(reference), normalise(text)), 4) if reference else None,
                    punct_per_100_words=round(100 * len(PUNCTUATION.findall(text)) / max(1, words), 1),
                    rtf=round(seconds / audio_s, 4), words=words, language=language, load_s=round(load_s, 2)))
                print(f"  {model} prompt={prompt} {path} {name}: wer={rows[-1].wer} "
                      f"punct={rows[-1].punct_per_100_words} rtf={rows[-1].rtf}", file=sys.stderr, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return [r.model_copy(update={"peak_rss_mb": round(peak, 1)}) for r in rows]


def measure(models: list[str] | tuple[str, ...] = MODELS, prompts: list[str] | tuple[str, ...] = PROMPTS,
            cache_dir: Path | None = None) -> list[Row]:
    """All rows, each model in its own child process (one at a time). For bench/quality.py."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="clipper-asr-bench-") as tmp:
        build_inputs(Path(tmp))  # once, in the parent: the children find the WAVs in `tmp`
        for model in models:
            out = Path(tmp) / f"{model}.json"
            cmd = [sys.executable, "-m", "bench.asr_models", "--child", model, "--prompts", "|".join(prompts),
                   "--inputs-dir", tmp, "--json", str(out)]
            if cache_dir is not None:
                cmd += ["--cache-dir", str(cache_dir)]
            subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
            rows += [Row.model_validate(r) for r in json.loads(out.read_text())]
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"prompt on: {PROMPT!r}", "", "| model | prompt | path | recording | WER | punct./100 words | RTF | language |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        wer = "–" if r.wer is None else f"{r.wer:.1%}"
        lines.append(f"| {r.model} | {r.prompt} | {r.path} | {r.recording} ({r.audio_s:g} s) | {wer} | "
                     f"{r.punct_per_100_words:g} | {r.rtf:.3f} | {r.language or '–'} |")
    lines += ["", "| model | load (s, cold) | peak RSS (MiB) |", "|---|---:|---:|"]
    for model in dict.fromkeys(r.model for r in rows):
        first = next(r for r in rows if r.model == model)
        lines.append(f"| {model} | {first.load_s:.2f} | {first.peak_rss_mb:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--prompts", default="|".join(PROMPTS), help="'|'-separated: off, on, or prompt texts")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache (default: the user's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inputs-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    prompts = [p for p in args.prompts.split("|") if p]
    if args.child:
        folder = args.inputs_dir
        inputs = {name: (folder / f"{name}.wav", None) for name in INPUTS}
        from tests.helpers import conversations, real

        inputs["call"] = (inputs["call"][0], conversations.reference_text())
        inputs["allison"] = (inputs["allison"][0],
                             " ".join(p.text for p in sorted(real.prompts(), key=lambda p: p.start)))
        rows = run_model(args.child, prompts, inputs, args.cache_dir)
        args.json.write_text(json.dumps([r.model_dump() for r in rows]))
        return 0
    load = os.getloadavg()[0]
    rows = measure([m for m in args.models.split(",") if m], prompts, args.cache_dir)
    print(f"\n### Offline speech models on real recordings ({os.cpu_count()} cores, int8, beam 5, "
          f"load average {load:.2f} before)\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([r.model_dump() for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
