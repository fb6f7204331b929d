"""Benchmark 3: chunked transcription (chunks decoded side by side) vs one pass, on ~10 minutes of speech.

    python -m bench.chunked_vs_single [--repeats 11] [--rounds 1] [--runs single:5:2,chunked:5:150 ...]

Builds the file from the committed sample (concatenated `--repeats` times with ffmpeg, into a temp dir),
then transcribes it once per run spec and round (rounds interleave the specs, the best round counts) and
prints a markdown table: wall time, speed-up over the first single-pass run, real-time factor, the cores
the run actually got (process CPU time ÷ wall time), WER against the sample's reference repeated as often.

Run specs (comma-separated):
  `single:<beam>[:<threads>]`                   the current path: `transcribe_resumable` over the whole file
      (threads default 0 = CTranslate2's default, all cores up to 4, as the `transcribe` activity runs it)
  `chunked:<beam>:<chunk_s>[:<parallel>[:<threads>[:<batch>]]]`   `plan_chunks` + `transcribe_span` on
      `parallel` threads of one process (as that many `transcribe_chunk` activities on one worker would) +
      `merge_chunks`; the model has num_workers=parallel, threads per decode default cores // parallel;
      `batch` speech windows decoded together within a chunk (default CLIPPER_ASR_BATCH_SIZE's, 4; 1 = one at a time).

Numbers depend on what else runs on the machine: the table header prints the load average before and after,
and a "cores used" well under `parallel` means the run was starved of CPU, not that it could not use it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
import statistics
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import imageio_ffmpeg  # noqa: E402
import jiwer  # noqa: E402

from clipper.asr.base import SAMPLE_RATE, wav_duration  # noqa: E402
from clipper.asr.chunks import merge_chunks, plan_chunks, transcribe_span  # noqa: E402
from clipper.asr.local import LocalWhisperEngine, available_cores  # noqa: E402
from clipper.asr.resume import transcribe_resumable  # noqa: E402
from clipper.config import Settings  # noqa: E402
from clipper.store.files import JsonlLog  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "sample.mp3"
REFERENCE = ROOT / "tests" / "data" / "sample.txt"
DEFAULT_RUNS = "single:5,chunked:5:300,chunked:5:300:2:1:1,chunked:5:180,chunked:5:180:2:1:2,single:1"


def normalise(text: str) -> str:
    text = text.lower().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def build_long_wav(folder: Path, repeats: int) -> Path:
    """The sample `repeats` times back to back, as the 16 kHz mono s16 WAV the pipeline produces."""
    out = folder / f"sample-x{repeats}.wav"
    inputs = [arg for _ in range(repeats) for arg in ("-i", str(SAMPLE))]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", *inputs,
                    "-filter_complex", f"concat=n={repeats}:v=0:a=1", "-ac", "1", "-ar", str(SAMPLE_RATE),
                    "-c:a", "pcm_s16le", str(out)], check=True, timeout=300)
    return out


@dataclass
class Run:
    label: str
    kind: str
    beam: int
    threads: int
    chunk_s: float = 0.0
    parallel: int = 1
    chunks: int = 1
    batch: int = 1
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    wer: float = 0.0
    times: list[float] = field(default_factory=list)  # wall seconds of every round


def parse_run(spec: str) -> Run:
    kind, *args = spec.split(":")
    cores = available_cores()
    if kind == "single":
        beam, threads = int(args[0]), int(args[1]) if len(args) > 1 else 0
        return Run(f"single pass, beam {beam}, {threads or 'default'} thread(s)", kind, beam, threads)
    if kind == "chunked":
        beam, chunk_s = int(args[0]), float(args[1])
        parallel = int(args[2]) if len(args) > 2 else 2
        threads = int(args[3]) if len(args) > 3 and int(args[3]) > 0 else max(1, cores // parallel)
        batch = int(args[4]) if len(args) > 4 else Settings().asr_batch_size
        return Run(f"chunked {chunk_s:g} s, {parallel} in parallel, beam {beam}, {threads} thread(s) each, "
                   f"batch {batch}", kind, beam, threads, chunk_s, parallel, batch=batch)
    raise SystemExit(f"unknown run spec {spec!r}")


def engine_for(run: Run) -> LocalWhisperEngine:
    settings = Settings(asr_engine="local", asr_model_path=None, asr_compute_type="int8", asr_language="en",
                        asr_beam_size=run.beam, asr_cpu_threads=run.threads, asr_parallel=run.parallel,
                        asr_chunk_s=run.chunk_s, asr_batch_size=run.batch)
    engine = LocalWhisperEngine(settings, chunked=run.kind == "chunked")
    engine.load()  # loading is not what we measure
    return engine


def warm_up(engine: LocalWhisperEngine, wav: Path, parallel: int) -> None:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda i: list(engine.transcribe(wav, start_s=5.0 * i, end_s=5.0 * i + 5.0, language="en")),
                      range(parallel)))


def transcribe(run: Run, engine: LocalWhisperEngine, wav: Path, scratch: Path) -> str:
    if run.kind == "single":
        transcript, _ = transcribe_resumable(engine, wav, JsonlLog(scratch / "single.partial.jsonl"),
                                             duration_s=None, language="en")
        return transcript.text
    spans = plan_chunks(wav, run.chunk_s)
    run.chunks = len(spans)
    with ThreadPoolExecutor(max_workers=run.parallel) as pool:  # a sliding window of `parallel` chunks
        parts = list(pool.map(
            lambda span: transcribe_span(engine, wav, span, JsonlLog(scratch / f"chunk-{span.index}.partial.jsonl"),
                                         language="en"),
            spans,
        ))
    return merge_chunks(parts, engine=engine.name).text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11, help="copies of the 54 s sample (11 ≈ 10 minutes)")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated run specs (default {DEFAULT_RUNS})")
    parser.add_argument("--rounds", type=int, default=1, help="measure every spec this many times, interleaved")
    args = parser.parse_args(argv)
    runs = [parse_run(spec) for spec in args.runs.split(",") if spec.strip()]
    reference = " ".join([normalise(REFERENCE.read_text())] * args.repeats)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="clipper-bench-") as tmp:
        folder = Path(tmp)
        wav = build_long_wav(folder, args.repeats)
        duration = wav_duration(wav)
        print(f"audio: {duration:.1f} s ({args.repeats} × sample), {available_cores()} core(s), "
              f"load average before {load_before[0]:.2f}", file=sys.stderr)
        for round_ in range(args.rounds):
            for i, run in enumerate(runs):
                engine = engine_for(run)
                warm_up(engine, wav, run.parallel)
                scratch = folder / f"run-{round_}-{i}"
                scratch.mkdir()
                started, cpu = time.perf_counter(), time.process_time()
                text = transcribe(run, engine, wav, scratch)
                seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
                wer = jiwer.wer(reference, normalise(text))
                run.times.append(seconds)
                print(f"  {run.label}: {seconds:.1f} s, {cpu_seconds / seconds:.2f} cores used, WER {wer:.3f}, "
                      f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
                if not run.seconds or seconds < run.seconds:
                    run.seconds, run.cpu_seconds, run.wer = seconds, cpu_seconds, wer
    load_after = os.getloadavg()
    base = next((r for r in runs if r.kind == "single"), runs[0])
    print(f"\n### Chunked vs single-pass transcription ({duration / 60:.1f} min of speech, Whisper tiny.en int8, "
          f"{available_cores()} cores, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after)\n")
    print("| run | chunks | wall time (s) | speed-up | speed-up, median of rounds | RTF | cores used | WER |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        # Per round, against the single pass of the same round: robust to the machine's speed drifting.
        median = statistics.median(b / t for b, t in zip(base.times, run.times, strict=True))
        print(f"| {run.label} | {run.chunks} | {run.seconds:.1f} | {base.seconds / run.seconds:.2f}× | "
              f"{median:.2f}× | {run.seconds / duration:.3f} | {run.cpu_seconds / run.seconds:.2f} | {run.wer:.1%} |")
    print(f"\nwall time: the best of {args.rounds} round(s); speed-up is relative to: {base.label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
