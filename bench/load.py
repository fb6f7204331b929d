"""Load: N concurrent short jobs on ONE worker process, against a Temporal dev server started for the run.

    python -m bench.load            # 200 jobs
    python -m bench.load -n 50 --max-concurrent-activities 8 --keep /tmp/load

Each job is a distinct URL (`/tone.wav?n=<i>`) of the same 1 s generated tone, served by a local HTTP
server (so the worker runs with CLIPPER_ALLOW_PRIVATE_ADDRESSES=true), transcribed by the `noop` engine
(CLIPPER_ASR_ENGINE=noop: no model, for load tests only) and processed by the offline text engine: what is
measured is the pipeline around speech to text — Temporal round trips, yt-dlp, ffmpeg, the artifact store.

Checked after the run (`LoadResult.problems()`; any problem is an error):
- all complete: every job's result is `done`;
- none lost: the server's visibility lists exactly the submitted workflow ids, all Completed;
- none duplicated: one run per workflow id, and per job and stage the worker logged exactly as many
  `stage.started` as the event history has attempts (a retry is a new attempt: counted under `retries`);
- none stuck: nothing is still Running when the run ends.

Prints: jobs, wall time (first submit → last result), jobs/s, worker peak RSS (VmHWM from /proc; the worker's
own process, not its ffmpeg children). `tests/crash/test_load.py` runs the same code with N=20.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/load.py` as well as `python -m bench.load`
    sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowExecutionStatus  # noqa: E402

from bench.worker_process import (  # noqa: E402
    bench_worker_env, peak_rss_mb, start_dev_server, start_worker, stop_worker,
)
from clipper.config import Settings  # noqa: E402
from clipper.job.request import JobResult  # noqa: E402
from clipper.job.stages import StagePolicy  # noqa: E402
from clipper.job.status import JobState  # noqa: E402
from clipper.media.urls import job_id_for  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402

STAGES = ("download", "transcribe", "quotes", "summary", "clips", "report")
# Activities that run (and log) as part of a stage without carrying its name: chunked transcription.
STAGE_OF = {"plan_transcription": "transcribe", "transcribe_chunk": "transcribe", "merge_transcript": "transcribe"}


@dataclass
class ActivityRun:
    """One scheduled activity of a job, from its event history."""

    scheduled_id: int
    type: str
    attempt: int  # of its last ActivityTaskStarted (the history records only the last one); 0 = never started
    completed: bool
    # Event times (epoch seconds) of its ActivityTaskScheduled, last ActivityTaskStarted and ActivityTaskCompleted.
    scheduled_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None

    @property
    def stage(self) -> str:
        return STAGE_OF.get(self.type, self.type)


def event_time(event) -> float:  # noqa: ANN001 - temporalio.api.history.v1.HistoryEvent
    """A history event's time as epoch seconds."""
    return event.event_time.seconds + event.event_time.nanos / 1e9


def activity_runs(history) -> list[ActivityRun]:  # noqa: ANN001 - temporalio.client.WorkflowHistory
    """Every activity the job scheduled, in order, with the attempt that last started and whether it completed."""
    runs: dict[int, ActivityRun] = {}
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            runs[e.event_id] = ActivityRun(e.event_id, e.activity_task_scheduled_event_attributes.activity_type.name,
                                           0, False, scheduled_at=event_time(e))
        elif e.HasField("activity_task_started_event_attributes"):
            a = e.activity_task_started_event_attributes
            runs[a.scheduled_event_id].attempt = a.attempt
            runs[a.scheduled_event_id].started_at = event_time(e)
        elif e.HasField("activity_task_completed_event_attributes"):
            run = runs[e.activity_task_completed_event_attributes.scheduled_event_id]
            run.completed, run.completed_at = True, event_time(e)
    return list(runs.values())


def attempts_per_stage(runs: list[ActivityRun]) -> Counter[str]:
    """Stage → how many attempts the server started in all: what the workers must have logged as stage.started."""
    out: Counter[str] = Counter()
    for run in runs:
        out[run.stage] += run.attempt
    return out


# --- a tiny generated tone, one file served at any query string ---

def tone_wav(seconds: float = 1.0, rate: int = 16_000, freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


class _ToneHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)

    def _send(self, body: bool) -> None:
        if self.path.split("?", 1)[0] != "/tone.wav":
            self.send_error(404)
            return
        data = self.server.tone  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            with contextlib.suppress(ConnectionError):
                self.wfile.write(data)


@contextlib.contextmanager
def serve_tone(seconds: float = 1.0) -> Iterator[str]:
    """A local HTTP server for /tone.wav (any query string); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ToneHandler)
    server.daemon_threads = True
    server.tone = tone_wav(seconds)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the worker's log ---

def json_log_events(log_path: Path) -> Iterator[dict]:
    """The structlog JSON events in a worker's log, skipping anything else it printed."""
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def stage_events(log_path: Path, name: str) -> Counter[tuple[str, str]]:
    """(job id, stage) → how many times the worker logged event `name` (e.g. `stage.started`)."""
    return Counter((e.get("job_id"), e.get("stage")) for e in json_log_events(log_path) if e.get("event") == name)


# --- the run ---

@dataclass
class LoadResult:
    jobs: int
    wall_s: float
    worker_peak_rss_mb: float | None
    max_concurrent_activities: int
    done: int = 0
    failed: list[str] = field(default_factory=list)  # job ids whose result was not `done`
    lost: list[str] = field(default_factory=list)  # submitted, but not listed by the server
    unexpected: list[str] = field(default_factory=list)  # listed by the server, never submitted
    duplicated: list[str] = field(default_factory=list)  # more than one run, or a stage started twice
    stuck: list[str] = field(default_factory=list)  # still running at the end
    not_completed: list[str] = field(default_factory=list)  # listed, but the execution is not Completed
    retries: int = 0  # stage attempts that failed or crashed (retried by Temporal): allowed, but reported

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s if self.wall_s else 0.0

    def problems(self) -> list[str]:
        out = []
        for name in ("failed", "lost", "unexpected", "duplicated", "stuck", "not_completed"):
            ids = getattr(self, name)
            if ids:
                out.append(f"{len(ids)} {name}: {', '.join(sorted(ids)[:5])}{' …' if len(ids) > 5 else ''}")
        if self.done != self.jobs:
            out.append(f"{self.done}/{self.jobs} done")
        return out

    def table(self) -> list[str]:
        rss = f"{self.worker_peak_rss_mb:.0f}" if self.worker_peak_rss_mb is not None else "?"
        return [
            f"{'jobs':>6} {'wall s':>8} {'jobs/s':>7} {'worker peak RSS MiB':>20} {'activities':>10} "
            f"{'done':>5} {'lost':>5} {'dup':>4} {'stuck':>6} {'retries':>8}",
            f"{self.jobs:>6} {self.wall_s:>8.1f} {self.jobs_per_s:>7.2f} {rss:>20} {self.max_concurrent_activities:>10} "
            f"{self.done:>5} {len(self.lost):>5} {len(self.duplicated):>4} {len(self.stuck):>6} {self.retries:>8}",
        ]


async def _submit_all(settings: Settings, base_url: str, n: int, submit_concurrency: int) -> list[str]:
    clipper = ClipperClient(await connect(settings), settings)
    gate = asyncio.Semaphore(submit_concurrency)

    async def one(i: int) -> str:
        async with gate:
            return (await clipper.submit(f"{base_url}/tone.wav?n={i}")).job_id

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _results(settings: Settings, job_ids: list[str], timeout_s: float,
                   on_job_done: Callable[[], None] | None = None) -> dict[str, JobResult | BaseException]:
    client = await connect(settings)

    async def one(job_id: str) -> JobResult:
        result = await client.get_workflow_handle(job_id, result_type=JobResult).result()
        if on_job_done is not None:
            on_job_done()
        return result

    return await _collect({job_id: asyncio.ensure_future(one(job_id)) for job_id in job_ids}, timeout_s)


async def _run_in_window(settings: Settings, base_url: str, n: int, in_flight: int, timeout_s: float,
                         on_job_done: Callable[[], None] | None = None,
                         ) -> tuple[list[str], dict[str, JobResult | BaseException]]:
    """Keep `in_flight` jobs going: the next job is submitted when one finishes (a steady state, not a burst)."""
    clipper = ClipperClient(await connect(settings), settings)
    window = asyncio.Semaphore(in_flight)
    urls = [f"{base_url}/tone.wav?n={i}" for i in range(n)]

    async def one(url: str) -> JobResult:
        async with window:
            job_id = (await clipper.submit(url)).job_id
            result = await clipper.client.get_workflow_handle(job_id, result_type=JobResult).result()
        if on_job_done is not None:
            on_job_done()
        return result

    job_ids = [job_id_for(url) for url in urls]  # what submit returns, known before: a timeout still names the job
    return job_ids, await _collect({job_id: asyncio.ensure_future(one(url)) for job_id, url in zip(job_ids, urls)},
                                   timeout_s)


async def _collect(tasks: dict[str, asyncio.Future], timeout_s: float) -> dict[str, JobResult | BaseException]:
    """Job id → its result, or the exception it ended with (TimeoutError: none within `timeout_s`)."""
    await asyncio.wait(tasks.values(), timeout=timeout_s)
    out: dict[str, JobResult | BaseException] = {}
    for job_id, task in tasks.items():
        if not task.done():
            task.cancel()
            out[job_id] = TimeoutError("no result in time")
        elif task.exception() is not None:
            out[job_id] = task.exception()
        else:
            out[job_id] = task.result()
    return out


async def _activity_runs(settings: Settings, job_ids: list[str]) -> dict[str, list[ActivityRun]]:
    """Per job, its activities from its event history."""
    client = await connect(settings)
    gate = asyncio.Semaphore(20)

    async def one(job_id: str) -> list[ActivityRun]:
        async with gate:
            return activity_runs(await client.get_workflow_handle(job_id).fetch_history())

    return dict(zip(job_ids, await asyncio.gather(*(one(j) for j in job_ids))))


async def _audit(settings: Settings, job_ids: list[str], result: LoadResult, settle_s: float = 10.0) -> None:
    """What the server's visibility store says: every id listed once, Completed; nothing running."""
    client = await connect(settings)
    query = f"TaskQueue = '{settings.task_queue}' AND WorkflowType = 'MediaJob'"
    deadline = time.monotonic() + settle_s
    while True:  # visibility is eventually consistent: give it a moment to catch up with the results
        runs: Counter[str] = Counter()
        statuses: dict[str, WorkflowExecutionStatus | None] = {}
        async for wf in client.list_workflows(query):
            runs[wf.id] += 1
            statuses[wf.id] = wf.status
        caught_up = set(runs) >= set(job_ids) and all(s != WorkflowExecutionStatus.RUNNING for s in statuses.values())
        if caught_up or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    submitted = set(job_ids)
    result.lost = sorted(submitted - set(runs))
    result.unexpected = sorted(set(runs) - submitted)
    result.duplicated += sorted(job_id for job_id, count in runs.items() if count > 1)
    result.stuck = sorted(job_id for job_id, status in statuses.items() if status == WorkflowExecutionStatus.RUNNING)
    result.not_completed = sorted(job_id for job_id, status in statuses.items()
                                  if status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.RUNNING))
    running = await client.count_workflows(f"TaskQueue = '{settings.task_queue}' AND ExecutionStatus = 'Running'")
    if running.count and not result.stuck:
        result.stuck = [f"{running.count} running (count_workflows)"]


def run_load(n: int = 200, workdir: Path | None = None, max_concurrent_activities: int = 8,
             timeout_s: float | None = None, submit_concurrency: int = 50, quiet: bool = False,
             on_worker_started: Callable[[int], None] | None = None,
             on_job_done: Callable[[], None] | None = None, in_flight: int | None = None) -> LoadResult:
    """Start a dev server, a tone server and one worker; run `n` jobs at once (or `in_flight` at a time, the
    next submitted as one finishes); audit and return the numbers.

    `on_worker_started(pid)` is called once the worker is up, before the first submit; `on_job_done()` each
    time a job's result arrives (bench/throughput.py samples the worker's memory there).
    """
    timeout_s = timeout_s if timeout_s is not None else 120 + 3.0 * n
    own_dir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="clipper-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))
    server = start_dev_server(workdir / "temporal.db")
    worker: subprocess.Popen | None = None
    try:
        task_queue = f"load-{uuid.uuid4().hex[:8]}"
        storage = workdir / "storage"
        # Fast retries: a transient hiccup under load costs seconds, not minutes. (They are counted anyway.)
        policies = {s: StagePolicy(initial_interval_s=0.5, max_interval_s=5, max_attempts=5, heartbeat_timeout_s=30,
                                   timeout_base_s=300) for s in STAGES}
        settings = Settings(temporal_address=server.address, task_queue=task_queue, storage_dir=storage,
                            allow_private_addresses=True, policies=policies)
        log_path = workdir / "worker.log"
        worker = start_worker(bench_worker_env(server.address, task_queue, storage, max_concurrent_activities),
                              log_path)
        if on_worker_started is not None:
            on_worker_started(worker.pid)
        say(f"worker pid {worker.pid} on {server.address}, task queue {task_queue}; submitting {n} jobs")
        with serve_tone() as base_url:

            async def body() -> tuple[list[str], dict[str, JobResult | BaseException], float]:
                started = time.monotonic()
                if in_flight:
                    job_ids, results = await _run_in_window(settings, base_url, n, in_flight, timeout_s, on_job_done)
                else:
                    job_ids = await _submit_all(settings, base_url, n, submit_concurrency)
                    results = await _results(settings, job_ids, timeout_s, on_job_done)
                return job_ids, results, time.monotonic() - started

            job_ids, results, wall = asyncio.run(body())
        result = LoadResult(jobs=n, wall_s=wall, worker_peak_rss_mb=peak_rss_mb(worker.pid),
                            max_concurrent_activities=max_concurrent_activities)
        result.done = sum(1 for r in results.values() if isinstance(r, JobResult) and r.state == JobState.done)
        result.failed = sorted(j for j, r in results.items() if not (isinstance(r, JobResult) and r.state == JobState.done))
        if len(set(job_ids)) != n:  # two URLs that collapsed into one job id would hide a job
            result.duplicated.append(f"{n - len(set(job_ids))} colliding job ids")
        asyncio.run(_audit(settings, job_ids, result))
        # Every attempt the server started was executed exactly once: the worker logged as many stage.started
        # per job and stage as the history has attempts. More would be a duplicate execution.
        starts = stage_events(log_path, "stage.started")
        runs = asyncio.run(_activity_runs(settings, job_ids))
        attempts = {job: attempts_per_stage(job_runs) for job, job_runs in runs.items()}
        result.duplicated += sorted(j for j in job_ids if any(starts[(j, s)] > attempts[j][s] for s in STAGES))
        result.failed = sorted(set(result.failed) | {j for j in job_ids if any(
            starts[(j, s)] < attempts[j][s] or not attempts[j][s] for s in STAGES)})
        result.retries = sum(max(0, r.attempt - 1) for job_runs in runs.values() for r in job_runs)
        return result
    finally:
        if worker is not None:
            stop_worker(worker)
        server.stop()
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--jobs", type=int, default=200)
    p.add_argument("--max-concurrent-activities", type=int, default=8, help="the worker's CLIPPER_MAX_CONCURRENT_ACTIVITIES")
    p.add_argument("--timeout", type=float, help="seconds to wait for all results (default 120 + 3 per job)")
    p.add_argument("--keep", type=Path, help="keep the server DB, storage and worker log in this folder")
    args = p.parse_args(argv)
    result = run_load(args.jobs, args.keep, args.max_concurrent_activities, args.timeout)
    print("\n".join(result.table()))
    problems = result.problems()
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
