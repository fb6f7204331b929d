"""`make demo`: a Temporal dev server (unless one is reachable), a worker, `clipper web`, the bundled sample,
live bars.

The server, the worker and `clipper web` keep running afterwards, so the job can be heard, shared and steered in
clipper's pages (the printed URL) and browsed in the Web UI; `make stop` ends them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import time
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
SAMPLE = ROOT / "tests" / "data" / "sample.mp3"
WEB_URL = "http://127.0.0.1:8080/"

os.environ.setdefault("TEMPORAL_ADDRESS", "127.0.0.1:7233")
os.environ.setdefault("CLIPPER_ALLOW_LOCAL_FILES", "true")  # the demo submits a local file
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipper.config import get_settings  # noqa: E402
from scripts.devserver import DevServer, port_open  # noqa: E402


def ensure_server() -> None:
    host, port = get_settings().temporal_address.rsplit(":", 1)
    if port_open(host, int(port)):
        print(f"using the Temporal server already on {host}:{port}")
        return
    server = DevServer(DATA / "temporal.db", port=int(port), ui_port=8233, headless=False,
                       log_file=DATA / "temporal.log")
    server.start(detach=True)
    (DATA / "temporal.pid").write_text(str(server.proc.pid))
    print(f"started a Temporal dev server on {host}:{port} (SQLite {server.db_file.relative_to(ROOT)})")
    print("Web UI: http://127.0.0.1:8233")


def start_worker() -> subprocess.Popen:
    DATA.mkdir(exist_ok=True)
    log = open(DATA / "worker.log", "ab")
    env = dict(os.environ, CLIPPER_LOG_FORMAT="json")
    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env, stdout=log, stderr=log,
                              start_new_session=True)
    (DATA / "worker.pid").write_text(str(worker.pid))
    return worker


def start_web() -> str:
    """`clipper web` on 127.0.0.1:8080, or a free port when 8080 is taken; its URL once it answers."""
    port = 8080
    if port_open("127.0.0.1", port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    log = open(DATA / "web.log", "ab")
    # The API's submit never takes local paths (only the demo's own submission, from this process, does).
    env = dict(os.environ, CLIPPER_LOG_FORMAT="json", CLIPPER_ALLOW_LOCAL_FILES="false")
    web = subprocess.Popen([sys.executable, "-m", "clipper_app.cli.main", "web", "--host", "127.0.0.1", "--port", str(port)],
                           cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    (DATA / "web.pid").write_text(str(web.pid))
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port) and web.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}/"


async def submit_and_watch() -> int:
    from clipper_app.cli.main import console, print_outputs, print_report, print_status, watch
    from clipper_app.client import ClipperClient, ensure_search_attributes

    client = await ClipperClient.connect()
    await ensure_search_attributes(client.client, get_settings().temporal_namespace)
    submitted = await client.submit(str(SAMPLE))
    console.print(f"job [bold]{submitted.job_id}[/]" + (" (already submitted)" if submitted.existing else ""))
    console.print(f"clipper's page: {WEB_URL}jobs/{submitted.job_id}")
    console.print("Web UI: http://127.0.0.1:8233/namespaces/default/workflows/" + submitted.job_id)
    status = await watch(client, submitted.job_id)
    print_status(status)
    if status.state.value != "done":
        return 1
    print_report(submitted.job_id)
    print_outputs(status)
    console.print(f"\n[bold]Listen, copy quotes and steer jobs at {WEB_URL}[/] (`make stop` ends it)")
    return 0


def stop_server() -> None:
    for name, what in (("web", "clipper web"), ("worker", "worker"), ("temporal", "Temporal dev server")):
        pid_file = DATA / f"{name}.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
                print(f"stopped the demo's {what}")
            except ProcessLookupError:
                pass
            pid_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-only", action="store_true")
    parser.add_argument("--stop", action="store_true")
    args = parser.parse_args()
    if args.stop:
        return stop_server()
    DATA.mkdir(exist_ok=True)
    ensure_server()
    if args.server_only:
        return None
    global WEB_URL
    start_worker()  # left running with `clipper web`, so the pages can steer jobs; `make stop` ends both
    WEB_URL = start_web()
    print(f"clipper web: {WEB_URL}")
    code = asyncio.run(submit_and_watch())
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
