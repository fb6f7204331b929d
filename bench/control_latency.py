"""Control latency: from `pause --now` or `cancel` to the running stage stopping, in every stage.

    python -m bench.control_latency                          # every stage, both signals, 2 runs each
    python -m bench.control_latency --cases download,transcribe-chunked --signals cancel --runs 3

One local dev server (SQLite) and one worker subprocess (`python worker.py`, the real speech model, JSON logs),
as deployed. Per case and signal, a fresh job is held in the stage under test, and the signal is sent once the
stage's activity has run for a moment:

- download: the media server trickles the file (tests/helpers/httpserver.py `trickle`: 64 KiB, then a byte a
  second), so the download is in progress for as long as it takes;
- transcribe: 10 minutes of real speech (built from tests/data/real/allison.mp3 by tests/helpers/real.py) in one
  pass (CLIPPER_ASR_CHUNK_S=0), and transcribe-chunked: the same in 150 s chunks, side by side (the signal is
  sent once two of them run, and stops every running chunk);
- quotes, summary: the LLM (a local OpenAI-compatible stand-in, tests/helpers/llmserver.py) takes 20 s to answer
  that stage's requests, so the stage waits on it;
- clips: the LLM proposes every line of the transcript as a quote, so there are many clips to cut.

From the job's event history (the server's clock): the signal's event (`WorkflowExecutionSignaled` pause, or
`WorkflowExecutionCancelRequested`) to the last `ActivityTaskCanceled` of the activities running then, the point at
which the worker reported them stopped (the workflow waits for it: `WAIT_CANCELLATION_COMPLETED`). From the
worker's log: the same signal to the last `stage.cancelled` of the job (the work thread has ended). A stage that
finished before the signal reached it is reported as such. Target: ≤ 3 s for every row; no test asserts
a time, the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/control_latency.py` as well as `python -m bench.control_latency`
    sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import PendingActivityState  # noqa: E402

from bench.options import names_from  # noqa: E402
from bench.load import event_time, json_log_events  # noqa: E402
from bench.worker_process import bench_worker_env, start_dev_server, start_worker, stop_worker  # noqa: E402
from clipper.config import Settings  # noqa: E402
from clipper.job.request import JobOptions  # noqa: E402
from clipper.job.stages import BY_NAME  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402
from tests.helpers import SAMPLE  # noqa: E402
from tests.helpers.httpserver import serve  # noqa: E402
from tests.helpers.llmserver import Reply, answer, excerpt_lines, serve_llm, task_prompt  # noqa: E402
from tests.helpers.real import long_real_speech  # noqa: E402

SIGNALS = ("pause --now", "cancel")
REAL_MINUTES = 10.0
SLOW_LLM_S = 20.0  # an answer that takes this long holds a text stage for the whole measurement
TARGET_S = 3.0


@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    media: str = "sample"  # sample (54 s, synthetic) | real (10 min of real speech)
    chunk_s: float = 0.0  # the job's CLIPPER_ASR_CHUNK_S: 0 = one pass
    text_engine: str = "offline"
    slow: str | None = None  # which text stage's LLM requests are slow
    run_s: float = 1.5  # how long the stage runs before the signal
    parts: int = 1  # how many of its activities must be running (chunks side by side)


CASES: dict[str, Case] = {c.name: c for c in (
    Case("download", "download"),
    Case("transcribe", "transcribe", media="real", run_s=4.0),
    Case("transcribe-chunked", "transcribe", media="real", chunk_s=150.0, run_s=3.0, parts=2),
    Case("quotes", "quotes", text_engine="llm", slow="quotes"),
    Case("summary", "summary", text_engine="llm", slow="summary"),
    Case("clips", "clips", media="real", text_engine="llm", run_s=0.5),
)}


@dataclass
class Measure:
    case: str
    signal: str
    running: list[str] = field(default_factory=list)  # activity types running when the signal was sent
    to_cancelled_s: float | None = None  # signal → last ActivityTaskCanceled (history)
    to_logged_s: float | None = None  # signal → last stage.cancelled (worker log)
    note: str = ""


def llm_handler(slow: dict[str, str | None]):
    """Answers quotes and summary requests from the transcript's own lines; the stage named in `slow["stage"]`
    waits SLOW_LLM_S first."""

    def handle(request: dict) -> Reply:
        stage = "quotes" if "quote" in task_prompt(request).lower() else "summary"
        lines = excerpt_lines(request)
        if stage == "quotes":
            reply = answer({"quotes": [{"text": text, "reason": "memorable"} for _, text in lines]})
        else:
            reply = answer({"overview": "Recorded prompts.",
                            "key_points": [{"text": text, "segments": [sid, sid]} for sid, text in lines[:3]]})
        if slow["stage"] == stage:
            reply.delay_s = SLOW_LLM_S
        return reply

    return handle


async def running_activities(clipper: ClipperClient, job_id: str, stage: str) -> list[tuple[str, float]]:
    """(activity type, seconds since its attempt started) of the stage's activities running now."""
    desc = await clipper.describe(job_id)
    now = time.time()
    out = []
    for pending in desc.raw_description.pending_activities:
        if (pending.activity_type.name in BY_NAME[stage].activity_types
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED):
            started = pending.last_started_time.seconds + pending.last_started_time.nanos / 1e9
            out.append((pending.activity_type.name, now - started))
    return out


async def measure_one(clipper: ClipperClient, settings: Settings, case: Case, signal: str, url: str,
                      log_path: Path) -> Measure:
    result = Measure(case.name, signal)
    options = JobOptions(text_engine=case.text_engine, max_quotes=100 if case.stage == "clips" else None)
    client = ClipperClient(clipper.client, settings.model_copy(update={"asr_chunk_s": case.chunk_s}))
    job_id = (await client.submit(url, options)).job_id
    deadline = time.monotonic() + 600
    while True:  # until the stage has run case.run_s (for chunks: a chunk has)
        running = await running_activities(clipper, job_id, case.stage)
        work = [(t, age) for t, age in running if t not in ("plan_transcription", "merge_transcript")]
        if len(work) >= case.parts and max(age for _, age in work) >= case.run_s:
            break
        status = await clipper.status(job_id)
        if status.stage(case.stage).state.value == "done" or status.state.value in ("done", "failed", "cancelled"):
            result.note = f"{case.stage} ended before the signal ({status.state.value})"
            await clipper.cancel(job_id)
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{case.name}: the stage never ran")
        await asyncio.sleep(0.1)
    result.running = sorted(t for t, _ in work)
    if signal == "cancel":
        await clipper.cancel(job_id)
    else:
        await clipper.pause(job_id, now=True)
    # Wait until every activity that ran has closed, then read when.
    handle = clipper.handle(job_id)
    while True:
        events = [e async for e in handle.fetch_history_events()]
        sent = next((e for e in events if (e.HasField("workflow_execution_cancel_requested_event_attributes")
                                           if signal == "cancel" else
                                           e.HasField("workflow_execution_signaled_event_attributes")
                                           and e.workflow_execution_signaled_event_attributes.signal_name == "pause")),
                    None)
        closed = {}
        for e in events:
            for name in ("activity_task_canceled_event_attributes", "activity_task_completed_event_attributes",
                         "activity_task_failed_event_attributes"):
                if e.HasField(name):
                    closed[getattr(e, name).scheduled_event_id] = (name, event_time(e))
        scheduled = [e.event_id for e in events if e.HasField("activity_task_scheduled_event_attributes")
                     and e.activity_task_scheduled_event_attributes.activity_type.name in result.running]
        open_ = [sid for sid in scheduled if sid not in closed]
        if sent is not None and not open_:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{case.name}/{signal}: the activities never stopped")
        await asyncio.sleep(0.2)
    t_signal = event_time(sent)
    cancelled = [at for sid in scheduled for kind, at in [closed[sid]]
                 if kind == "activity_task_canceled_event_attributes" and at >= t_signal]
    if cancelled:
        result.to_cancelled_s = max(cancelled) - t_signal
    else:
        result.note = f"{case.stage} finished before the signal reached it"
    logged = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
              for e in json_log_events(log_path) if e.get("job_id") == job_id and e.get("event") == "stage.cancelled"]
    logged = [t for t in logged if t >= t_signal - 1.0]
    if logged:
        result.to_logged_s = max(logged) - t_signal
    if signal != "cancel":
        await clipper.cancel(job_id)
    try:
        await asyncio.wait_for(clipper.result(job_id), 120)
    except Exception:  # noqa: BLE001 - cancelled: expected
        pass
    return result


def run_control_latency(cases: list[str] | None = None, signals: tuple[str, ...] = SIGNALS, runs: int = 2,
                        workdir: Path | None = None, asr_engine: str = "local", quiet: bool = False) -> list[Measure]:
    cases = cases or list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        server = start_dev_server(work / "temporal.db")
        slow: dict[str, str | None] = {"stage": None}
        files = {"/sample.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}
        files["/slow.mp3"] = files["/sample.mp3"]  # trickled: never sent whole
        if any(CASES[name].media == "real" for name in cases):
            real = work / "real-10min.mp3"
            if not real.exists():
                long_real_speech(real, REAL_MINUTES)
            files["/real.mp3"] = (real.read_bytes(), "audio/mpeg")
        try:
            with serve(files) as http, serve_llm(handler=llm_handler(slow)) as llm:
                http.trickle("/slow.mp3", head=64 * 1024, every_s=1.0)
                queue = f"latency-{uuid.uuid4().hex[:6]}"
                env = bench_worker_env(server.address, queue, work / "storage", 8, {
                    "CLIPPER_ASR_ENGINE": asr_engine, "CLIPPER_LLM_BASE_URL": llm.base_url,
                    "CLIPPER_LLM_API_KEY": "sk-bench", "CLIPPER_LLM_MODEL": "test-model",
                    "CLIPPER_LLM_TIMEOUT_S": str(SLOW_LLM_S * 2), "CLIPPER_QUOTES_MIN_MATCH": "50"})
                log_path = work / "worker.log"
                worker = start_worker(env, log_path)
                try:
                    settings = Settings(temporal_address=server.address, task_queue=queue,
                                        storage_dir=work / "storage")

                    async def body() -> list[Measure]:
                        clipper = ClipperClient(await connect(settings), settings)
                        out = []
                        for name in cases:
                            case = CASES[name]
                            slow["stage"] = case.slow
                            path = "/slow.mp3" if case.stage == "download" else f"/{case.media}.mp3"
                            for signal in signals:
                                for _ in range(runs):
                                    url = http.url(f"{path}?run={uuid.uuid4().hex[:8]}")
                                    out.append(await measure_one(clipper, settings, case, signal, url, log_path))
                                    if not quiet:
                                        print(row(out[-1]), flush=True)
                        return out

                    return asyncio.run(body())
                finally:
                    stop_worker(worker, timeout=10)  # a cancelled LLM call may still wait for its answer
        finally:
            server.stop()


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def row(m: Measure) -> str:
    return (f"| {m.case} | {m.signal} | {', '.join(sorted(set(m.running))) or '–'} ({len(m.running)}) | "
            f"{_s(m.to_cancelled_s)} | {_s(m.to_logged_s)} | {m.note or ''} |")


def table(measures: list[Measure]) -> list[str]:
    """One row per case and signal: the median and the worst of the runs."""
    lines = ["| stage | signal | running when signalled | signal → activity cancelled, s (median / max) | "
             "signal → stage.cancelled logged, s (median / max) | runs |",
             "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((m.case, m.signal) for m in measures))
    for case, signal in keys:
        group = [m for m in measures if (m.case, m.signal) == (case, signal)]
        cancelled = [m.to_cancelled_s for m in group if m.to_cancelled_s is not None]
        logged = [m.to_logged_s for m in group if m.to_logged_s is not None]
        running = sorted({t for m in group for t in m.running})
        count = max((len(m.running) for m in group), default=0)
        both = (lambda v: f"{statistics.median(v):.2f} / {max(v):.2f}" if v else "–")
        notes = "; ".join(sorted({m.note for m in group if m.note}))
        lines.append(f"| {case} | {signal} | {', '.join(running) or '–'}{f' ×{count}' if count > 1 else ''} | "
                     f"{both(cancelled)} | {both(logged)} | {len(group)}{f' ({notes})' if notes else ''} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--signals", default="pause,cancel", help="pause (pause --now), cancel, or both")
    parser.add_argument("--runs", type=int, default=2, help="runs per case and signal (default 2)")
    parser.add_argument("--keep", type=Path, help="keep the server's database, the storage and the worker's log here")
    args = parser.parse_args(argv)
    names = names_from(parser, args.cases, CASES, "case")
    signals = tuple(s for s in SIGNALS if s.split()[0] in args.signals.split(","))
    load = os.getloadavg()[0]
    measures = run_control_latency(names, signals, args.runs, args.keep)
    print(f"\nload average before {load:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; "
          f"target ≤ {TARGET_S:g} s\n")
    print("\n".join(table(measures)))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # temporalio/sdk-python#300
