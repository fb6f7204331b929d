"""The web app under load: requests per second and latency percentiles of its read routes, 1 to 50 at once.

    python -m bench.web_load                                  # 300 requests per route and concurrency
    python -m bench.web_load --requests 1500 --concurrency 1,10,50 --routes status,page
    python -m bench.web_load --app-root /tmp/wt               # the worker and `clipper web` of another checkout
    python -m bench.web_load --client httpx                   # httpx clients instead of lean connections

What runs, as deployed on one host: a local Temporal dev server (SQLite), one worker process (`python worker.py`:
noop speech-to-text, the offline text engine), and `clipper web` as its own process (uvicorn, one event loop) on a
free loopback port. One real job runs the bundled sample (tests/data/sample.mp3, served by a local HTTP server)
to the end; a second job is held in its download (the media server trickles the file), so it stays running and
its status is a live one. Then, per route and concurrency, `--requests` GETs are sent by that many clients at
once (lean keep-alive HTTP/1.1 connections of this process: the generator shares the machine's 2 cores with
what it measures, and httpx costs ~1-2 ms of CPU a request, more than the server) (each sends its next request when its last one is answered), after a short warm-up:

- status: `GET /api/jobs/{id}` of the finished job;
- artifact: `GET /api/jobs/{id}/artifacts/audio.wav` with `Range: bytes=0-65535` (a player seeking);
- page: `GET /jobs/{id}`, the job's page (transcript, quotes, chapters, players);
- list: `GET /api/jobs`, the jobs list the pages refresh every second;
- running: `GET /api/jobs/{id}` of the running job.

The table: route, concurrency, req/s, p50/p95/p99 latency in ms, errors (a status other than 200/206, or no
answer), and the CPU time per request of the web server, the worker, the Temporal server and the clients (from /proc: what a
request costs whatever else the machine runs, where latencies on a shared machine vary with its load). `--app-root` runs the worker and the web server from another checkout (e.g. a `git worktree` of an
earlier commit) against the same bench, for before/after numbers. No test asserts a time; the numbers go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/web_load.py` as well as `python -m bench.web_load`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.options import names_from  # noqa: E402
from bench.worker_process import bench_worker_env, kill_worker, start_dev_server, stop_worker, wait_for_log  # noqa: E402
from clipper.config import Settings  # noqa: E402
from clipper_app.client import ClipperClient, connect  # noqa: E402
from scripts.devserver import free_port, port_open  # noqa: E402
from tests.helpers import SAMPLE  # noqa: E402
from tests.helpers.httpserver import serve  # noqa: E402

ROUTES = ("status", "artifact", "page", "list", "running")
CONCURRENCY = (1, 10, 50)
RANGE = {"Range": "bytes=0-65535"}
WARMUP = 10  # requests per route and concurrency before the measured ones


@dataclass
class Row:
    route: str
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # process → CPU ms per request

    def pct(self, q: float) -> float:
        """The q-th percentile (nearest rank) of the answered requests' latencies."""
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")


PROCESSES = ("web", "worker", "temporal", "clients")  # "clients": this process, the load generator


def row(r: Row) -> str:
    cpu = " | ".join(f"{r.cpu_ms[p]:.2f}" if p in r.cpu_ms else "–" for p in PROCESSES)
    return (f"| {r.route} | {r.concurrency} | {r.rate:.0f} | {r.pct(50):.0f} | {r.pct(95):.0f} | {r.pct(99):.0f} | "
            f"{r.errors} | {cpu} |")


def table(rows: list[Row]) -> list[str]:
    cpu = " | ".join(f"{p} CPU ms/req" for p in PROCESSES)
    return [f"| route | at once | req/s | p50 ms | p95 ms | p99 ms | errors | {cpu} |",
            "|---|---|---|---|---|---|---|" + "---|" * len(PROCESSES), *(row(r) for r in rows)]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used (/proc/<pid>/stat); None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads each answer whole (Content-Length bodies,
    as the app sends them): a load generator that costs far less CPU per request than httpx, so on a shared
    2-core machine the latencies say more about the server than about the clients (`--client httpx` for both)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load(send: Callable[[int, str, dict[str, str]], Awaitable[int]], path: str, headers: dict[str, str],
               requests: int, concurrency: int) -> tuple[float, list[float], int]:
    """`requests` GETs of `path`, `concurrency` at a time (`send(client_no, path, headers)` → HTTP status):
    (wall seconds, latencies in ms, errors)."""
    latencies: list[float] = []
    errors = 0
    left = requests

    async def one_client(no: int) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            start = time.perf_counter()
            try:
                ok = await send(no, path, headers) in (200, 206)
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            latencies.append((time.perf_counter() - start) * 1000)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(one_client(no) for no in range(concurrency)))
    return time.perf_counter() - start, latencies, errors


@contextlib.asynccontextmanager
async def clients(base: str, n: int, kind: str) -> AsyncIterator[Callable[[int, str, dict[str, str]], Awaitable[int]]]:
    """A `send` for `n` clients at once: `raw` keep-alive connections (one each) or one httpx client pool."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            async def send_httpx(_no: int, path: str, headers: dict[str, str]) -> int:
                response = await client.get(path, headers=headers)
                await response.aread()
                return response.status_code
            yield send_httpx
        return
    url = urlsplit(base)
    connections = [Connection(url.hostname or "127.0.0.1", url.port or 80) for _ in range(n)]

    async def send_raw(no: int, path: str, headers: dict[str, str]) -> int:
        try:
            return await asyncio.wait_for(connections[no].get(path, headers), 60)
        except BaseException:
            connections[no].close()  # a half-read answer: the next request opens a new connection
            raise
    try:
        yield send_raw
    finally:
        for connection in connections:
            connection.close()


async def measure(base: str, paths: dict[str, tuple[str, dict[str, str]]], routes: list[str],
                  concurrency: list[int], requests: int, pids: dict[str, int], quiet: bool,
                  client: str = "raw") -> list[Row]:
    rows = []
    pids = {**pids, "clients": os.getpid()}
    for route in routes:
        path, headers = paths[route]
        for n in concurrency:
            async with clients(base, n, client) as send:
                await load(send, path, headers, min(WARMUP, requests), n)
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                seconds, latencies, errors = await load(send, path, headers, requests, n)
                after = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpu = {name: (after[name] - before[name]) * 1000 / requests for name in pids
                   if before[name] is not None and after[name] is not None}
            rows.append(Row(route, n, requests, seconds, latencies, errors, cpu))
            if not quiet:
                print(row(rows[-1]), flush=True)
    return rows


def start_app_worker(app_root: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`python worker.py` of `app_root` (bench/worker_process.py runs this checkout's), once it polls."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, str(app_root / "worker.py")], cwd=app_root, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_log(log_path, "worker.started", proc)
    except BaseException:
        kill_worker(proc)
        raise
    return proc


def start_web(app_root: Path, env: dict[str, str], port: int, log_path: Path, timeout: float = 60) -> subprocess.Popen:
    """`clipper web` (python starter.py web) of `app_root` on 127.0.0.1:`port`, once it answers."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, str(app_root / "starter.py"), "web", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=app_root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None:
            raise RuntimeError(f"clipper web exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            stop_worker(proc)
            raise TimeoutError(f"clipper web did not answer on port {port} within {timeout}s; see {log_path}")
        time.sleep(0.1)
    return proc


async def prepare(settings: Settings, done_url: str, running_url: str) -> tuple[str, str]:
    """The finished job (run to the end) and the running one (held in its download): their ids."""
    clipper = ClipperClient(await connect(settings), settings)
    done = (await clipper.submit(done_url)).job_id
    await asyncio.wait_for(clipper.result(done), 300)
    running = (await clipper.submit(running_url)).job_id
    deadline = time.monotonic() + 60
    while not (await clipper.describe(running)).raw_description.pending_activities:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{running}: its download never started")
        await asyncio.sleep(0.2)
    return done, running


def run_web_load(routes: list[str] | None = None, concurrency: list[int] | None = None, requests: int = 300,
                 workdir: Path | None = None, app_root: Path = ROOT, quiet: bool = False,
                 client: str = "raw") -> list[Row]:
    routes = routes or list(ROUTES)
    concurrency = concurrency or list(CONCURRENCY)
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        server = start_dev_server(work / "temporal.db")
        try:
            sample = (SAMPLE.read_bytes(), "audio/mpeg")
            with serve({"/sample.mp3": sample, "/slow.mp3": sample}) as http:
                http.trickle("/slow.mp3", head=64 * 1024, every_s=1.0)  # the running job's download never ends
                queue = f"webload-{uuid.uuid4().hex[:6]}"
                env = bench_worker_env(server.address, queue, work / "storage", 8)
                worker = start_app_worker(app_root, env, work / "worker.log")
                web = None
                try:
                    settings = Settings(temporal_address=server.address, task_queue=queue,
                                        storage_dir=work / "storage", allow_private_addresses=True)
                    done, running = asyncio.run(prepare(settings, http.url(f"/sample.mp3?run={uuid.uuid4().hex[:8]}"),
                                                        http.url(f"/slow.mp3?run={uuid.uuid4().hex[:8]}")))
                    port = free_port()
                    web = start_web(app_root, env, port, work / "web.log")
                    paths = {"status": (f"/api/jobs/{done}", {}), "artifact": (f"/api/jobs/{done}/artifacts/audio.wav",
                                                                              RANGE),
                             "page": (f"/jobs/{done}", {}), "list": ("/api/jobs", {}),
                             "running": (f"/api/jobs/{running}", {})}
                    pids = {"web": web.pid, "worker": worker.pid, "temporal": server.proc.pid}
                    return asyncio.run(measure(f"http://127.0.0.1:{port}", paths, routes, concurrency, requests, pids,
                                               quiet, client))
                finally:
                    if web is not None:
                        stop_worker(web, timeout=10)
                    stop_worker(worker, timeout=10)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per route and concurrency (default 300)")
    ap.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)), help="e.g. 1,10,50")
    ap.add_argument("--routes", default=",".join(ROUTES), help=f"some of {','.join(ROUTES)}")
    ap.add_argument("--app-root", type=Path, default=ROOT, help="the checkout whose worker and web server run")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="the load generator: lean keep-alive connections (default) or httpx")
    ap.add_argument("--workdir", type=Path, help="keep the dev server's database, the store and the logs here")
    args = ap.parse_args(argv)
    routes = names_from(ap, args.routes, ROUTES, "route")
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    print(f"# {os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at start",
          flush=True)
    print(table([])[0], table([])[1], sep="\n", flush=True)
    rows = run_web_load(routes, concurrency, args.requests, args.workdir, args.app_root.resolve(),
                        client=args.client)
    print(f"# load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
          f"p50 of p95 across rows: {statistics.median(r.pct(95) for r in rows):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
