"""Orchestration overhead: every stage called directly vs the same stage as an activity of a real MediaJob.

    python -m bench.overhead             # 1 warm-up + 5 measured runs of each
    python -m bench.overhead --runs 9

Media: the 1 s tone of bench/load.py, served over HTTP (a distinct URL per job); speech to text by the noop
engine, quotes and summary by the offline engine: the stages do almost nothing, so what differs between the
two ways of running them is the orchestration.

- direct: the activity bodies (`DownloadActivity._download`, …) called one after the other in this process,
  in the order and with the inputs `MediaJob` gives them, on their own artifact store; no Temporal at all.
- via Temporal: `MediaJob` on a local dev server (SQLite) with one worker subprocess (`python worker.py`),
  one job at a time. From each job's event history: scheduled→started (the task waiting on the queue) and
  scheduled→completed of every activity, and the workflow gap before it (the previous activity's completion,
  or the workflow's start, to its scheduling: one workflow task round trip). From the worker's log: the
  seconds the activity itself measured (`stage.completed`; includes the receipt and rate book writes).

Direct and Temporal runs alternate, so both see the same machine. Every column is the median over the
measured runs; overhead = scheduled→completed + gap before − direct (of the medians). The total row compares
the sum of the direct stages with the workflow's start→close.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/overhead.py` as well as `python -m bench.overhead`
    sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from activities.clips import ClipsActivity  # noqa: E402
from activities.download import DownloadActivity  # noqa: E402
from activities.quotes import QuotesActivity  # noqa: E402
from activities.report import ReportActivity  # noqa: E402
from activities.runtime import StageDeps  # noqa: E402
from activities.summary import SummaryActivity  # noqa: E402
from activities.transcribe import TranscribeActivity  # noqa: E402
from bench.load import STAGES, activity_runs, event_time, json_log_events, serve_tone  # noqa: E402
from bench.worker_process import bench_worker_env, start_dev_server, start_worker, stop_worker  # noqa: E402
from clipper.config import Settings  # noqa: E402
from clipper.job.messages import ClipsInput, DownloadInput, ReportInput, TextStageInput, TranscribeInput  # noqa: E402
from clipper.job.request import JobOptions, JobResult  # noqa: E402
from clipper.job.status import JobState, StageProgress  # noqa: E402
from clipper.ops.log import configure_logging  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402

OPTIONS = JobOptions(asr_engine="noop", text_engine="offline")
TOTAL = "total"


# --- direct: the activity bodies without Temporal ---

@dataclass
class DirectRun:
    """What an activity body uses of its `StageRun` (progress, stop flag, log, attempt), without Temporal."""

    stage: str
    attempt: int = 1
    first_scheduled: datetime | None = None  # the stage's first attempt: now
    progress: StageProgress = field(default_factory=StageProgress)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.log = structlog.get_logger().bind(stage=self.stage)

    def count_chunk(self, done: int, total: int) -> None:
        self.progress.done, self.progress.total = float(done), float(total)


def run_direct(settings: Settings, url: str, job_id: str) -> dict[str, float]:
    """The pipeline of `MediaJob`, each stage's activity body called in turn; stage → seconds."""
    deps = StageDeps.from_settings(settings)
    seconds: dict[str, float] = {}

    def timed(stage: str, body: Callable[[DirectRun], object]):  # noqa: ANN202
        started = time.perf_counter()
        out = body(DirectRun(stage))
        seconds[stage] = time.perf_counter() - started
        return out

    media = timed("download", lambda run: DownloadActivity(deps)._download(
        DownloadInput(job_id=job_id, url=url, options=OPTIONS), run))
    duration = media.info.duration_s
    transcript = timed("transcribe", lambda run: TranscribeActivity(deps)._transcribe(
        TranscribeInput(job_id=job_id, audio=media.audio, duration_s=duration, options=OPTIONS), run))
    text = TextStageInput(job_id=job_id, transcript=transcript.transcript, options=OPTIONS)
    quotes = timed("quotes", lambda run: QuotesActivity(deps)._quotes(text, run))
    summary = timed("summary", lambda run: SummaryActivity(deps)._summarize(text, run))
    clips = timed("clips", lambda run: ClipsActivity(deps)._cut(ClipsInput(
        job_id=job_id, audio=media.audio, quotes=quotes.quotes, duration_s=duration, options=OPTIONS), run))
    timed("report", lambda run: ReportActivity(deps)._report(ReportInput(
        job_id=job_id, media=media.media, transcript=transcript.transcript, quotes=quotes.quotes,
        summary=summary.summary, clips=clips.index), run))
    seconds[TOTAL] = sum(seconds.values())
    return seconds


# --- via Temporal: one MediaJob, read back from its history and the worker's log ---

@dataclass
class StageTiming:
    """One stage of one job that ran through Temporal, in seconds."""

    queued: float  # scheduled → started
    scheduled_to_completed: float
    gap_before: float  # previous activity completed (or workflow started) → scheduled
    in_activity: float | None  # what the activity measured itself (worker log `stage.completed`)


def timings_from_history(history, log_seconds: dict[str, float]) -> dict[str, StageTiming]:  # noqa: ANN001
    """Stage → its timing, from a finished job's event history; TOTAL = workflow start → close."""
    events = list(history.events)
    started = next(event_time(e) for e in events if e.HasField("workflow_execution_started_event_attributes"))
    closed = next(event_time(e) for e in events if e.HasField("workflow_execution_completed_event_attributes"))
    out: dict[str, StageTiming] = {}
    previous = started
    for run in activity_runs(history):
        if run.type not in STAGES or run.completed_at is None or run.started_at is None:
            continue
        out[run.type] = StageTiming(run.started_at - run.scheduled_at, run.completed_at - run.scheduled_at,
                                    run.scheduled_at - previous, log_seconds.get(run.type))
        previous = run.completed_at
    out[TOTAL] = StageTiming(sum(t.queued for t in out.values()), closed - started,
                             sum(t.gap_before for t in out.values()) + closed - previous,
                             sum(t.in_activity or 0.0 for t in out.values()))
    return out


def completed_seconds(log_path: Path, job_id: str) -> dict[str, float]:
    """Stage → seconds the activity logged with `stage.completed` for this job (its last attempt)."""
    return {e["stage"]: float(e["seconds"]) for e in json_log_events(log_path)
            if e.get("job_id") == job_id and e.get("event") == "stage.completed" and "seconds" in e}


async def run_via_temporal(clipper: ClipperClient, url: str, log_path: Path) -> dict[str, StageTiming]:
    job_id = (await clipper.submit(url, OPTIONS)).job_id
    handle = clipper.client.get_workflow_handle(job_id, result_type=JobResult)
    result = await handle.result()
    if result.state != JobState.done:
        raise RuntimeError(f"{job_id} ended {result.state}")
    await asyncio.sleep(0.2)  # the worker writes its log line right after reporting the completion
    return timings_from_history(await handle.fetch_history(), completed_seconds(log_path, job_id))


# --- the benchmark ---

@dataclass
class OverheadResult:
    runs: int
    direct: list[dict[str, float]]
    temporal: list[dict[str, StageTiming]]
    load_average: list[float]  # 1-minute load average after each measured pair of runs

    def row(self, stage: str) -> dict[str, float | None]:
        """Medians in ms of one stage (or TOTAL) over the measured runs."""
        def ms(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return 1000 * statistics.median(present) if present else None

        row = {
            "direct": ms([d[stage] for d in self.direct]),
            "in_activity": ms([t[stage].in_activity for t in self.temporal]),
            "queued": ms([t[stage].queued for t in self.temporal]),
            "scheduled_to_completed": ms([t[stage].scheduled_to_completed for t in self.temporal]),
            "gap_before": ms([t[stage].gap_before for t in self.temporal]),
        }
        if stage == TOTAL:  # start → close already contains the gaps
            row["overhead"] = row["scheduled_to_completed"] - row["direct"]
        else:
            row["overhead"] = row["scheduled_to_completed"] + row["gap_before"] - row["direct"]
        return row

    def table(self) -> list[str]:
        def cell(value: float | None) -> str:
            return f"{value:.1f}" if value is not None else "–"

        lines = ["| stage | direct ms | in activity ms | scheduled→started ms | scheduled→completed ms | "
                 "workflow gap before ms | overhead ms |", "|---|---:|---:|---:|---:|---:|---:|"]
        for stage in (*STAGES, TOTAL):
            r = self.row(stage)
            name = "total (workflow start→close)" if stage == TOTAL else stage
            lines.append(f"| {name} | " + " | ".join(cell(r[k]) for k in (
                "direct", "in_activity", "queued", "scheduled_to_completed", "gap_before", "overhead")) + " |")
        return lines


def run_overhead(runs: int = 5, warmup: int = 1, workdir: Path | None = None, quiet: bool = False) -> OverheadResult:
    """Start a dev server, a tone server and one worker; alternate direct and Temporal runs; return the timings."""
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory(prefix="clipper-overhead-") as tmp:
        folder = Path(workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        server = start_dev_server(folder / "temporal.db")
        task_queue = f"overhead-{uuid.uuid4().hex[:8]}"
        log_path = folder / "worker.log"
        worker = None
        try:
            worker = start_worker(bench_worker_env(server.address, task_queue, folder / "storage", 4), log_path)
            settings = Settings(temporal_address=server.address, task_queue=task_queue, storage_dir=folder / "storage",
                                allow_private_addresses=True, asr_engine="noop", text_engine="offline")
            direct_settings = settings.model_copy(update={"storage_dir": folder / "direct"})
            result = OverheadResult(runs, [], [], [])
            with serve_tone() as base_url:

                async def body() -> None:
                    clipper = ClipperClient(await connect(settings), settings)
                    for i in range(warmup + runs):
                        direct = run_direct(direct_settings, f"{base_url}/tone.wav?direct={i}", f"direct-{i}")
                        temporal = await run_via_temporal(clipper, f"{base_url}/tone.wav?temporal={i}", log_path)
                        load = os.getloadavg()[0]
                        say(f"  run {i}{' (warm-up)' if i < warmup else ''}: direct {1000 * direct[TOTAL]:.0f} ms, "
                            f"via Temporal {1000 * temporal[TOTAL].scheduled_to_completed:.0f} ms, load {load:.2f}")
                        if i >= warmup:
                            result.direct.append(direct)
                            result.temporal.append(temporal)
                            result.load_average.append(load)

                asyncio.run(body())
            return result
        finally:
            if worker is not None:
                stop_worker(worker)
            server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="measured runs of each (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (imports, caches, sticky queue)")
    p.add_argument("--keep", type=Path, help="keep the server DB, storage and worker log in this folder")
    args = p.parse_args(argv)
    configure_logging("warning", "json", stream=sys.stderr)  # the activity bodies log: keep stdout for the table
    before = os.getloadavg()[0]
    result = run_overhead(args.runs, args.warmup, args.keep)
    loads = result.load_average
    print(f"\n### Orchestration overhead per stage (median of {args.runs} runs; 1 s tone, noop ASR, offline text; "
          f"{os.cpu_count()} cores; load average {before:.2f} before, {min(loads):.2f}-{max(loads):.2f} during)\n")
    print("\n".join(result.table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
