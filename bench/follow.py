"""Follows at scale: many follows on one worker, a new item in each feed, the time until its job starts.

    python bench/follow.py [--follows 200] [--every 30] [--rounds 2]

A dev server of its own, a local HTTP server with one RSS feed per follow, and one worker process running the
workflow pool only (`--queues workflow`: the checks run, the jobs they start stay queued at their download, so
the pipeline's work does not blur the figures). Every follow is made with `--new-only` (its first check only
marks the feed's seed item seen); then, in each round, one new item appears in each feed, spread evenly over
one interval. Measured:

- item → job start: from the moment the feed serves the item to the job's start time on the server (p50/p95).
  An item waits for its follow's next check, so this is about half the interval plus the check's own time;
- schedule overhead: how late each check's workflow started after its scheduled time (the schedule's own
  delay), and each check's duration (its workflow's start to close: listing, starts, record);
- where a check's time goes, from the event histories of up to 60 of them: each workflow task's wait on the
  task queue (scheduled → started) and its run on the worker (started → completed), `check_follow`'s wait for
  an activity slot (scheduled → started) and its run, and the workflow tasks that timed out (sticky queue);
- the worker's CPU seconds per check (its process's user + system time over the measured window, divided by
  the checks in it) and its RSS (now, and peak); the dev server's CPU over the window.

Prints a Markdown table (docs/performance.md, "Follows"). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import event_time  # noqa: E402
from bench.worker_process import (  # noqa: E402
    ROOT as _ROOT, bench_worker_env, peak_rss_mb, psutil, rss_mb, start_dev_server, stop_worker, wait_for_log,
)
from clipper.config import Settings  # noqa: E402
from clipper.errors import CorruptArtifact  # noqa: E402
from clipper.follow.model import RECORD_FILE, FollowRecord, item_id, job_id_for_item  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402

# A check's history: workflow task (WFT) 1 schedules check_follow, WFT 2 completes the workflow.
PHASES = ("WFT 1 queued", "WFT 1 run", "check_follow queued", "check_follow run", "WFT 2 queued", "WFT 2 run")
SAMPLED = 60


class Feeds(ThreadingHTTPServer):
    """One RSS feed per path `/f<n>.xml`; `items[n]` lists its guids, newest first; `since[(n, guid)]` when the
    feed began to serve that item."""

    daemon_threads = True

    def __init__(self, count: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.items = {n: ["seed"] for n in range(count)}
        self.since: dict[tuple[int, str], float] = {}
        self.lock = threading.Lock()

    def add(self, n: int, guid: str) -> None:
        with self.lock:
            self.items[n] = [guid, *self.items[n]]
            self.since[(n, guid)] = time.time()

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/f{n}.xml"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        n = int(self.path.removeprefix("/f").removesuffix(".xml"))
        with self.server.lock:
            guids = list(self.server.items[n])
        entries = "".join(f'<item><guid>{g}</guid><title>{g}</title><enclosure url="http://127.0.0.1:9/{n}/{g}.mp3"/>'
                          "</item>" for g in guids)
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>feed {n}</title>{entries}</channel></rss>'
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def cpu_s(pid: int) -> float:
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN of nothing (a short run may close no check inside its window)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(follows: int, every_s: int, rounds: int, tmp: Path) -> dict[str, float]:
    """A dev server, the feeds and a worker process for the run; stopped at its end."""
    server = start_dev_server(tmp / "temporal.db")
    feeds = Feeds(follows)
    threading.Thread(target=feeds.serve_forever, daemon=True).start()
    queue = f"bench-follow-{uuid.uuid4().hex[:6]}"
    settings = Settings(temporal_address=server.address, task_queue=queue, storage_dir=tmp / "storage",
                        allow_private_addresses=True)
    env = bench_worker_env(server.address, queue, tmp / "storage", 8)
    log = tmp / "worker.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen([sys.executable, str(_ROOT / "worker.py"), "--queues", "workflow"], cwd=_ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_log(log, "worker.started", worker)
        return asyncio.run(_measure(settings, feeds, (worker.pid, server.proc.pid), follows, every_s, rounds))
    finally:
        stop_worker(worker)
        feeds.shutdown()
        server.stop()


async def _measure(settings: Settings, feeds: Feeds, pids: tuple[int, int], follows: int, every_s: int,
                   rounds: int) -> dict[str, float]:
    pid, server_pid = pids
    queue = settings.task_queue
    clipper = ClipperClient(await connect(settings), settings)
    ids = [(await clipper.follow(feeds.url(n), every_s=every_s, new_only=True)).job_id for n in range(follows)]

    def checked(i: str) -> int:
        try:
            ref = clipper.store.valid_ref(i, RECORD_FILE)
            return clipper.store.read_model(i, ref, FollowRecord).checks if ref else 0
        except CorruptArtifact:  # read between the record's rename and its manifest entry: asked again next turn
            return 0

    while sum(1 for i in ids if checked(i) >= 1) < follows:
        await asyncio.sleep(0.5)
    started_at, cpu0, server0 = datetime.now(UTC), cpu_s(pid), cpu_s(server_pid)
    for r in range(rounds):
        for n in range(follows):
            feeds.add(n, f"r{r}")
            await asyncio.sleep(every_s / follows)
    wanted = {job_id_for_item(item_id(ids[n], f"r{r}")): (n, f"r{r}") for n in range(follows) for r in range(rounds)}
    latencies: list[float] = []
    deadline = time.monotonic() + 3 * every_s + 60
    pending = dict(wanted)
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            try:
                desc = await clipper.client.get_workflow_handle(job_id).describe()
            except Exception:  # noqa: BLE001 - not started yet
                continue
            latencies.append(desc.start_time.timestamp() - feeds.since[pending.pop(job_id)])
        await asyncio.sleep(1)
    window_end, cpu1, server1 = datetime.now(UTC), cpu_s(pid), cpu_s(server_pid)
    delays, durations, checks = [], [], []
    query = f'WorkflowType="FollowCheck" AND TaskQueue="{queue}"'
    async for w in clipper.client.list_workflows(query):
        if w.start_time < started_at or w.close_time is None or w.start_time > window_end:
            continue
        scheduled = datetime.strptime(w.id.rsplit("-check-", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        delays.append((w.start_time - scheduled).total_seconds())
        durations.append((w.close_time - w.start_time).total_seconds())
        checks.append((w.id, w.run_id))
    step = max(1, len(checks) // SAMPLED)
    phases = [await check_phases(clipper.client, *c) for c in checks[::step][:SAMPLED]]
    return {"follows": follows, "every_s": every_s, "items": len(wanted), "jobs": len(latencies),
            "missing": len(pending), "p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95),
            "checks": len(durations), "delay_p50": pct(delays, 0.5), "delay_p95": pct(delays, 0.95),
            "check_p50": pct(durations, 0.5), "check_p95": pct(durations, 0.95),
            "cpu_per_check_ms": 1000 * (cpu1 - cpu0) / max(1, len(durations)),
            "cpu_share": (cpu1 - cpu0) / (window_end - started_at).total_seconds(),
            "server_cpu_share": (server1 - server0) / (window_end - started_at).total_seconds(),
            "rss_mb": rss_mb(pid) or 0.0, "peak_rss_mb": peak_rss_mb(pid) or 0.0,
            **{f"{name} p50": pct([p[name] for p in phases], 0.5) for name in PHASES},
            **{f"{name} p95": pct([p[name] for p in phases], 0.95) for name in PHASES},
            "sampled": len(phases), "wft_timeouts": sum(p["timeouts"] for p in phases)}


async def check_phases(client, workflow_id: str, run_id: str | None) -> dict[str, float]:
    """Seconds in each phase of one check (PHASES), from its history; `timeouts`: its workflow tasks that timed
    out (a sticky queue nobody polled in time, the task then rescheduled on the normal queue)."""
    at: dict[int, list[float]] = {}
    async for e in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events():
        at.setdefault(e.event_type, []).append(event_time(e))
    wft = [at.get(getattr(EventType, f"EVENT_TYPE_WORKFLOW_TASK_{k}"), []) for k in ("SCHEDULED", "STARTED",
                                                                                   "COMPLETED")]
    act = [at.get(getattr(EventType, f"EVENT_TYPE_ACTIVITY_TASK_{k}"), [0.0])[0] for k in ("SCHEDULED", "STARTED",
                                                                                         "COMPLETED")]
    # The last WFT's schedule is the one after the activity completed (a timed-out try is rescheduled).
    return {"WFT 1 queued": wft[1][0] - wft[0][0], "WFT 1 run": wft[2][0] - wft[1][0],
            "check_follow queued": act[1] - act[0], "check_follow run": act[2] - act[1],
            "WFT 2 queued": wft[1][-1] - min(t for t in wft[0] if t >= act[2]), "WFT 2 run": wft[2][-1] - wft[1][-1],
            "timeouts": len(at.get(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, []))}


def table(m: dict[str, float]) -> str:
    rows = [
        ("follows on one worker (workflow pool)", f"{m['follows']:.0f}, every {m['every_s']:.0f} s"),
        ("new items / jobs started (missing)", f"{m['items']:.0f} / {m['jobs']:.0f} ({m['missing']:.0f})"),
        ("item appears → its job starts, p50 / p95", f"{m['p50']:.1f} s / {m['p95']:.1f} s"),
        ("checks measured", f"{m['checks']:.0f}"),
        ("check started after its scheduled time, p50 / p95", f"{m['delay_p50']:.2f} s / {m['delay_p95']:.2f} s"),
        ("check duration (workflow start → close), p50 / p95", f"{m['check_p50']:.2f} s / {m['check_p95']:.2f} s"),
        ("worker CPU per check", f"{m['cpu_per_check_ms']:.0f} ms"),
        ("worker CPU, share of one core over the window", f"{100 * m['cpu_share']:.0f} %"),
        ("dev server CPU, share of one core over the window", f"{100 * m['server_cpu_share']:.0f} %"),
        ("worker RSS now / peak", f"{m['rss_mb']:.0f} MiB / {m['peak_rss_mb']:.0f} MiB"),
        *((f"{name} (of {m['sampled']:.0f} checks' histories), p50 / p95",
           f"{m[name + ' p50']:.2f} s / {m[name + ' p95']:.2f} s") for name in PHASES),
        ("workflow tasks timed out (sticky queue) in those histories", f"{m['wft_timeouts']:.0f}"),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--follows", type=int, default=200)
    parser.add_argument("--every", type=int, default=30, help="each follow's interval, seconds (>= 10)")
    parser.add_argument("--rounds", type=int, default=2, help="new items per feed, one per interval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(table(measure(args.follows, args.every, args.rounds, Path(tmp))), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
