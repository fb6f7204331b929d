"""A clipper worker as a subprocess (`python worker.py`), as benchmarks and the crash matrix run it.

Spawn one with its own environment and log file, wait until it logs that it started, kill it with SIGKILL
(what a crashed host looks like) or stop it gracefully, and read its memory from /proc (or psutil, when
installed): the current resident set (VmRSS) and the peak (VmHWM). Only the worker's own process is
measured, not the ffmpeg children it starts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py` too
    sys.path.insert(0, str(ROOT))

from scripts.devserver import DevServer  # noqa: E402

try:  # optional: /proc is enough on Linux
    import psutil
except ImportError:  # pragma: no cover - depends on the venv
    psutil = None


def bench_worker_env(address: str, task_queue: str, storage: Path, max_concurrent_activities: int,
                     overrides: dict[str, str] | None = None) -> dict[str, str]:
    """A benchmark worker's environment: noop ASR, offline text engine, JSON logs, loopback media allowed.

    `overrides` (e.g. {"CLIPPER_ASR_ENGINE": "local"}) win over these defaults. LLM settings from the caller's
    shell are dropped so the offline text engine runs whatever the shell has.
    """
    env = dict(os.environ)
    for name in ("CLIPPER_LLM_API_KEY", "CLIPPER_LLM_MODEL", "CLIPPER_LLM_BASE_URL"):
        env.pop(name, None)
    env.update(
        TEMPORAL_ADDRESS=address, CLIPPER_TASK_QUEUE=task_queue, CLIPPER_STORAGE_DIR=str(storage),
        CLIPPER_ALLOW_PRIVATE_ADDRESSES="true", CLIPPER_ASR_ENGINE="noop", CLIPPER_TEXT_ENGINE="offline",
        CLIPPER_LOG_FORMAT="json", CLIPPER_LOG_LEVEL="info", CLIPPER_GRACEFUL_SHUTDOWN_S="5",
        CLIPPER_MAX_CONCURRENT_ACTIVITIES=str(max_concurrent_activities), HF_HUB_OFFLINE="1",
    )
    env.update(overrides or {})
    return env


def spawn_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`python worker.py` with this environment, stdout and stderr appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def start_worker(env: dict[str, str], log_path: Path, timeout: float = 60) -> subprocess.Popen:
    """`spawn_worker`, then wait until it has connected and polls (its `worker.started` log line)."""
    proc = spawn_worker(env, log_path)
    try:
        wait_for_log(log_path, "worker.started", proc, timeout)
    except BaseException:
        kill_worker(proc)
        raise
    return proc


def start_dev_server(db_file: Path) -> DevServer:
    """A local Temporal dev server for one benchmark run, with clipper's search attributes registered."""
    from temporalio.client import Client

    from clipper_app.client import ensure_search_attributes

    server = DevServer(db_file).start()

    async def register() -> None:
        await ensure_search_attributes(await Client.connect(server.address), "default")

    try:
        asyncio.run(register())
    except BaseException:
        server.stop()
        raise
    return server


def wait_for_log(log_path: Path, event: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the worker's JSON log has event `event` (e.g. `worker.started`); fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}; see {log_path}")
        if log_path.exists() and f'"{event}"' in log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"no {event!r} in {log_path} after {timeout}s")


def kill_worker(proc: subprocess.Popen) -> None:
    """kill -9 and reap: no draining, no goodbye to the server; its running attempts time out."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def stop_worker(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (the worker drains), then SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_worker(proc)


def _proc_status_mb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """The process's resident set size now, in MiB (psutil if installed, else VmRSS); None if it is gone."""
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss / 1024 / 1024
        except psutil.Error:
            return None
    return _proc_status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM) in MiB, from /proc; None if it is gone."""
    return _proc_status_mb(pid, "VmHWM")
