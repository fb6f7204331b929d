"""A small real HTTP server for download tests.

`python -m http.server` ignores Range headers, so it cannot show that a download resumes. This one honours
`Range: bytes=N-` (and `bytes=N-M`), can answer a path with a given status (for the next N requests or all) or a
redirect, can cut the connection after K bytes on the first body-carrying request for a path, can trickle a body
(a byte every few seconds, or nothing more after a head) or hold a request until the test releases it, and
records every request it saw, with how many body bytes it managed to send and whether the client hung up.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML_NO_MEDIA = (
    b"<!doctype html><html><head><title>Just a page</title></head>"
    b"<body><h1>Nothing to see</h1><p>No audio or video here.</p></body></html>"
)

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_BLOCK = 64 * 1024


@dataclass
class SeenRequest:
    method: str
    path: str
    range: str | None
    headers: dict[str, str] = field(default_factory=dict)
    body_sent: int = 0  # body bytes written before the response ended (or the client hung up)
    hung_up: threading.Event = field(default_factory=threading.Event)  # seen while trickling or held
    hung_up_at: float | None = None  # time.monotonic() when the server saw it


class MediaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, str]] = dict(files)
        self.statuses: dict[str, int] = {}
        self.status_times: dict[str, int] = {}  # path -> how many more requests get its status (absent: all)
        # path -> (head bytes, seconds per later byte, seconds before the server gives up and hangs up itself)
        self.trickles: dict[str, tuple[int, float | None, float | None]] = {}
        self.holds: dict[str, tuple[threading.Event, threading.Event]] = {}  # path -> (arrived, released)
        self.stopping = threading.Event()
        self.redirects: dict[str, tuple[str, int]] = {}  # path -> (Location, status)
        # path -> (bytes to send before hanging up, how many more fresh GETs to cut; None = all of them)
        self.drops: dict[str, tuple[int, int | None]] = {}
        self.no_length: set[str] = set()  # paths answered without Content-Length (body ends at close)
        self.counts: Counter[str] = Counter()
        self.requests: list[SeenRequest] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-body (cancelled or aborted download) is expected here, not a test failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        self.stopping.set()  # trickling and held responses end too
        for _, released in self.holds.values():
            released.set()
        super().server_close()

    # --- test controls ---

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path if path.startswith('/') else '/' + path}"

    def set_status(self, path: str, status: int, times: int | None = None) -> None:
        """Answer requests for `path` with `status` and a short text body: all of them, or the next `times`
        (then the path is served as usual, like media that appears after a while)."""
        self.statuses[path] = status
        if times is not None:
            self.status_times[path] = times

    def trickle(self, path: str, head: int = 0, every_s: float | None = 1.0, for_s: float | None = None) -> None:
        """Send `path`'s body slowly: `head` bytes at once, then one byte every `every_s` seconds (None: nothing
        more), until the body ends, the client hangs up (recorded in `hung_up`), `for_s` seconds have passed
        (then the server hangs up itself: the client sees a short body) or the server stops. The headers promise
        the whole length, as a real stalled server's do."""
        self.trickles[path] = (head, every_s, for_s)

    def hold(self, path: str) -> threading.Event:
        """Keep requests for `path` waiting, before any byte of the answer, until `release(path)`. Returns an
        event set when such a request has arrived. A held request whose client is gone when released gets
        nothing (its `body_sent` stays 0)."""
        arrived, released = threading.Event(), threading.Event()
        self.holds[path] = (arrived, released)
        return arrived

    def release(self, path: str) -> None:
        self.holds.pop(path)[1].set()

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer every request for `path` with `status` and `Location: location`."""
        self.redirects[path] = (location, status)

    def drop_after(self, path: str, nbytes: int, times: int | None = 1) -> None:
        """Cut the connection after `nbytes` of body on the next `times` GETs for `path` that have no Range.

        Requests that resume (carry a Range header) are always served in full. Note that yt-dlp's generic
        extractor sends a GET of its own first (it reads the headers, not the body), so to fail the real
        download use `times=2`, or `times=None` to cut every fresh GET: then only a resumed download can finish.
        """
        self.drops[path] = (nbytes, times)

    def omit_length(self, path: str) -> None:
        """Send `path` without a Content-Length header, like a live or generated stream."""
        self.no_length.add(path)

    def ranges(self, path: str) -> list[str]:
        """Every Range header received for `path`, in order."""
        return [r.range for r in self.requests if r.path == path and r.range]

    def seen(self, path: str) -> list[SeenRequest]:
        """Every request received for `path`, in order."""
        with self.lock:
            return [r for r in self.requests if r.path == path]

    # --- used by the handler ---

    def record(self, method: str, path: str, headers: dict[str, str]) -> SeenRequest:
        seen = SeenRequest(method, path, headers.get("Range"), headers)
        with self.lock:
            self.counts[path] += 1
            self.requests.append(seen)
        return seen

    def take_status(self, path: str) -> int | None:
        with self.lock:
            status = self.statuses.get(path)
            if status is not None and path in self.status_times:
                self.status_times[path] -= 1
                if self.status_times[path] <= 0:
                    del self.statuses[path], self.status_times[path]
            return status

    def take_drop(self, path: str) -> int | None:
        with self.lock:
            if path not in self.drops:
                return None
            nbytes, times = self.drops[path]
            if times is not None:
                if times <= 1:
                    del self.drops[path]
                else:
                    self.drops[path] = (nbytes, times - 1)
            return nbytes


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        seen = self.server.record(self.command, path, dict(self.headers.items()))
        if (hold := self.server.holds.get(path)) is not None:
            hold[0].set()
            hold[1].wait()
            if self._client_gone(seen, 0):
                self.close_connection = True
                return
        if path in self.server.redirects:
            location, code = self.server.redirects[path]
            self.send_response(code)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = self.server.take_status(path)
        if status is not None or path not in self.server.files:
            self._send_plain(status or 404, send_body)
            return
        body, content_type = self.server.files[path]
        start, end, code = 0, len(body) - 1, 200
        if match := _RANGE.match(self.headers.get("Range", "").strip()):
            start = int(match.group(1))
            end = min(int(match.group(2)), end) if match.group(2) else end
            if start >= len(body) or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 206
        chunk = body[start : end + 1]
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if path in self.server.no_length:
            self.close_connection = True  # HTTP/1.1 without length or chunking: closing the socket ends the body
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        self.end_headers()
        if not send_body:
            return
        if path in self.server.trickles:
            self._trickle(seen, chunk, *self.server.trickles[path])
            return
        drop = self.server.take_drop(path) if self.command == "GET" and code == 200 else None
        if drop is not None:
            # Promise the full length, send part of it, then hang up: the client sees a short read.
            self.wfile.write(chunk[:drop])
            self.wfile.flush()
            seen.body_sent = drop
            self.close_connection = True
            return
        # In blocks, counting what the socket took: a client that hangs up early makes the next write fail.
        for start in range(0, len(chunk), _BLOCK):
            try:
                self.wfile.write(chunk[start : start + _BLOCK])
            except ConnectionError:
                self.close_connection = True
                return
            seen.body_sent += len(chunk[start : start + _BLOCK])

    def _trickle(self, seen: SeenRequest, body: bytes, head: int, every_s: float | None, for_s: float | None) -> None:
        self.close_connection = True
        give_up = time.monotonic() + (for_s if for_s is not None else float("inf"))
        try:
            self.wfile.write(body[:head])
            self.wfile.flush()
            seen.body_sent = min(head, len(body))
            while seen.body_sent < len(body) and not self.server.stopping.is_set() and time.monotonic() < give_up:
                if self._client_gone(seen, 0.2 if every_s is None else every_s):
                    return
                if every_s is not None:
                    self.wfile.write(body[seen.body_sent : seen.body_sent + 1])
                    self.wfile.flush()
                    seen.body_sent += 1
        except ConnectionError:
            self._client_gone(seen, 0)

    def _client_gone(self, seen: SeenRequest, wait_s: float) -> bool:
        """Wait up to `wait_s` for the client to hang up (its end of the connection readable at EOF)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], wait_s)
            gone = bool(readable) and self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if gone and not seen.hung_up.is_set():
            seen.hung_up_at = time.monotonic()
            seen.hung_up.set()
        return gone

    def _send_plain(self, status: int, send_body: bool) -> None:
        body = f"{status} {self.responses.get(status, ('',))[0]}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """Run `server` in a thread for the duration of the block, then shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serve(files: dict[str, tuple[bytes, str]]) -> Iterator[MediaServer]:
    """Run a MediaServer on 127.0.0.1 (random port) for the duration of the block."""
    with serving(MediaServer(files)) as server:
        yield server
