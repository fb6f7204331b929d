"""`clipper web` for tests: the real app under a real uvicorn server on a free loopback port, in a thread with its
own event loop (its ClipperClient connects there, as in production), and raw HTTP for what httpx would tidy up
(dot segments, encoded slashes)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator

from clipper.config import Settings
from clipper_app.web.app import server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def web_server(settings: Settings, host: str = "127.0.0.1") -> Iterator[str]:
    """The API's base URL while the server runs; stopped (and its thread joined) on exit."""
    srv = server(settings, host, free_port())
    thread = threading.Thread(target=srv.run, daemon=True, name="web-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive(), "the web server thread died at start"
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    try:
        yield f"http://{host}:{srv.config.port}"
    finally:
        srv.should_exit = True
        thread.join(10)


def raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no normalisation), like `curl --path-as-is`."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()
