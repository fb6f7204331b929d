"""Benchmark: whole jobs on hours of real speech, with the defaults, end to end through Temporal.

    python -m bench.long_job [--hours 1,3] [--speakers both|on|off] [--keep DIR]

For each length, builds that much real human speech (tests/data/real/, shuffled prompts with real pauses; see
tests/helpers/real.py), serves it over a local HTTP server, starts a dev server and ONE worker process
(`python worker.py`, every pool, the default settings: local tiny.en, chunks of CLIPPER_ASR_CHUNK_S, offline
text engine), submits the file and waits for the report. Prints a markdown table per run: wall time, job RTF
(wall ÷ audio), each stage's wall time and share of the job (from the job's own status), the worker's peak
RSS (VmHWM; the worker process only, not the ffmpeg children), and WER against the reference. With
`--speakers both` (the default) each length runs twice, with speaker labelling and without it
(CLIPPER_SPEAKERS_ENGINE=off), and the with-speakers row says how much longer the job took (≤ 1.2×).

Targets on 2 cores: 1 h ≤ 180 s (RTF ≤ 0.05), 3 h completes, peak RSS ≤ 1.5 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jiwer  # noqa: E402

from bench.worker_process import (  # noqa: E402
    bench_worker_env, peak_rss_mb, start_dev_server, start_worker, stop_worker,
)
from clipper.config import Settings  # noqa: E402
from clipper.job.outputs import Transcript  # noqa: E402
from clipper.job.request import JobResult  # noqa: E402
from clipper.job.stages import STAGES  # noqa: E402
from clipper.store.local import ArtifactStore  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402
from tests.helpers.httpserver import serve  # noqa: E402
from tests.helpers.real import long_real_speech, normalise  # noqa: E402


def run_one(hours: float, work: Path, speakers: bool = True) -> dict:
    audio = work / f"real-{hours:g}h.mp3"
    audio, reference = long_real_speech(audio, hours * 60)
    tag = f"{hours:g}h-{'spk' if speakers else 'nospk'}"
    server = start_dev_server(work / f"temporal-{tag}.db")
    storage, queue = work / f"storage-{tag}", f"long-{uuid.uuid4().hex[:6]}"
    # The product's defaults: real ASR, pools, chunking; only the bench plumbing is set here.
    overrides = {"CLIPPER_ASR_ENGINE": "local", **({} if speakers else {"CLIPPER_SPEAKERS_ENGINE": "off"})}
    env = bench_worker_env(server.address, queue, storage, max_concurrent_activities=4, overrides=overrides)
    env.pop("CLIPPER_MAX_CONCURRENT_ACTIVITIES")
    log = work / f"worker-{tag}.log"
    worker = start_worker(env, log)
    peak = 0.0
    try:
        with serve({"/space.mp3": (audio.read_bytes(), "audio/mpeg")}) as media:
            settings = Settings(temporal_address=server.address, task_queue=queue, storage_dir=storage,
                                allow_private_addresses=True)

            async def job() -> tuple[JobResult, float]:
                nonlocal peak
                clipper = ClipperClient(await connect(settings), settings)
                started = time.monotonic()
                submitted = await clipper.submit(media.url("/space.mp3"))
                waiting = asyncio.create_task(clipper.result(submitted.job_id))
                while not waiting.done():
                    peak = max(peak, peak_rss_mb(worker.pid) or 0.0)
                    await asyncio.sleep(1.0)
                return await waiting, time.monotonic() - started

            result, wall = asyncio.run(job())
        peak = max(peak, peak_rss_mb(worker.pid) or 0.0)
    finally:
        stop_worker(worker)
        server.stop()
    transcript = Transcript.model_validate_json(
        ArtifactStore(storage).path(result.job_id, "transcript.json").read_bytes())
    stages = {}
    for stage in result.status.stages:
        if stage.started_at and stage.finished_at:
            stages[stage.name] = (stage.finished_at - stage.started_at).total_seconds()
    audio_s = result.info.duration_s
    return dict(hours=hours, speakers=speakers, audio_s=audio_s, wall=wall, rtf=wall / audio_s, stages=stages,
                peak_mb=peak,
                wer=jiwer.wer(normalise(reference), normalise(transcript.text)),
                chunks=len(transcript.meta.get("chunks") or []) or 1)


def table(rows: list[dict]) -> str:
    head = ["audio", "speakers", "wall", "÷ without speakers", "job RTF", *[f"{s} (share)" for s in STAGES],
            "worker peak RSS", "WER", "chunks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        twin = next((o for o in rows if o["hours"] == r["hours"] and not o["speakers"]), None)
        ratio = f"{r['wall'] / twin['wall']:.2f}×" if r["speakers"] and twin else "–"
        cells = [f"{r['audio_s'] / 3600:.2f} h", "on" if r["speakers"] else "off", f"{r['wall']:.0f} s", ratio,
                 f"{r['rtf']:.4f}"]
        for s in STAGES:
            seconds = r["stages"].get(s)
            cells.append("–" if seconds is None else f"{seconds:.1f} s ({seconds / r['wall']:.0%})")
        cells += [f"{r['peak_mb']:.0f} MiB", f"{r['wer']:.1%}", str(r["chunks"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", default="1,3", help="comma-separated lengths in hours (default 1,3)")
    parser.add_argument("--speakers", choices=["both", "on", "off"], default="both")
    parser.add_argument("--keep", type=Path, help="keep the audio, logs and storage here")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        rows = []
        modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.speakers]
        for hours in (float(h) for h in args.hours.split(",")):
            for speakers in modes:
                rows.append(run_one(hours, work, speakers))
                print(table(rows[-1:]), flush=True)
    print(f"\nload average before {load:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores\n")
    print(table(rows))
    os._exit(0)  # temporalio/sdk-python#300


if __name__ == "__main__":
    main()
