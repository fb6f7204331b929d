"""A download's bytes counted where they arrive, and a watchdog that ends a transfer that stalls, trickles or
is told to stop.

Why at the socket: yt-dlp's progress hooks fire only after a whole block has arrived, and it sizes its blocks to
the recent rate, so a server that trickles 1 byte/s gives no hook for many minutes and never trips the socket
timeout (a byte comes every second). Every connection yt-dlp opens goes through our request handler
(`ssrf.GuardedUrllibRH`), which hands the response a reader that counts each `recv` here.

Why a thread of its own: a blocked read returns only when bytes come, so nothing inside yt-dlp's thread can end
it. The watchdog looks every `TICK_S`; to end the transfer it shuts the download's sockets down: the blocked
read returns at once, yt-dlp fails, and the caller asks `error()` why. It knows nothing of Temporal:
`should_stop` is whatever flag the caller sets (the activity's cancel, `pause --now`).

Only time spent waiting for bytes counts as transfer time: yt-dlp parsing a page, writing to disk or
post-processing is not a stall.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from yt_dlp.networking._urllib import HTTPHandler, _create_http_connection

from clipper.config import Settings
from clipper.errors import ClipperError, DownloadStalled, JobCancelled

TICK_S = 0.2  # how often the watchdog looks: a stop request ends the transfer within about this long

STOPPED, STALLED, SLOW = "stopped", "stalled", "slow"


@dataclass(frozen=True)
class TransferLimits:
    stall_s: float = 0.0  # no byte for this long while waiting for one; 0 = off
    min_bytes_per_s: float = 0.0  # average over the last window_s of transfer time; 0 = off
    window_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferLimits:
        return cls(settings.download_stall_s, settings.download_min_bytes_per_s, settings.download_rate_window_s)


class TransferWatch:
    """What one download received, and why it was ended (`reason`), if it was."""

    def __init__(self, limits: TransferLimits, should_stop: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.should_stop = should_stop
        self._clock = clock
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._reading = 0
        self.received = 0  # bytes off the wire in this attempt (headers included)
        self.reason: str | None = None
        self._rate = 0.0  # the average that was too low, for the message
        self._transfer_s = 0.0  # time spent waiting for or receiving bytes
        self._last_tick: float | None = None
        self._counted = 0
        self._last_byte_s = 0.0
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])  # (transfer time, received)

    # --- the connections' side (yt-dlp's threads) ---

    def admit(self) -> None:
        """Before a connection is made: none once the transfer was ended."""
        if self.reason is not None:
            raise ConnectionAbortedError(f"the download was ended ({self.reason})")

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self.reason is not None:
            _shut(sock)

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        with self._lock:
            self._reading += 1
        try:
            yield
        finally:
            with self._lock:
                self._reading -= 1

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.received += nbytes

    # --- the watchdog's side ---

    def tick(self) -> str | None:
        """One look: end the transfer if it must end; returns the reason it ended, if it has."""
        if self.reason is None and self.should_stop is not None and self.should_stop():
            self.abort(STOPPED)
        now = self._clock()
        with self._lock:
            elapsed = 0.0 if self._last_tick is None else now - self._last_tick
            self._last_tick = now
            progressed = self.received > self._counted
            if self.reason is not None or not (self._reading or progressed):
                return self.reason
            self._transfer_s += elapsed
            if progressed:
                self._counted, self._last_byte_s = self.received, self._transfer_s
            reason = self._verdict()
        if reason is not None:
            self.abort(reason)
        return self.reason

    def _verdict(self) -> str | None:
        limits, now = self.limits, self._transfer_s
        if limits.stall_s and now - self._last_byte_s >= limits.stall_s:
            return STALLED
        self._samples.append((now, self.received))
        while len(self._samples) > 1 and self._samples[1][0] <= now - limits.window_s:
            self._samples.popleft()  # keep the newest sample at or before the window's start
        start, received = self._samples[0]
        if limits.min_bytes_per_s and now >= limits.window_s and now > start:
            self._rate = (self.received - received) / (now - start)
            if self._rate < limits.min_bytes_per_s:
                return SLOW
        return None

    def abort(self, reason: str) -> None:
        """End the transfer: every open socket shut down (a blocked read returns), no new connection."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    @contextlib.contextmanager
    def watching(self) -> Iterator[TransferWatch]:
        """Run the watchdog thread for the duration of the block."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(TICK_S) and self.tick() is None:
                pass

        thread = threading.Thread(target=loop, name="download-watchdog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join(timeout=5)

    def error(self, what: str) -> ClipperError | None:
        """The typed error for a transfer this watch ended (`what`: "the download of <url>"), else None."""
        limits = self.limits
        if self.reason == STOPPED:
            return JobCancelled(f"{what} was cancelled")
        kept = "what arrived is kept: another attempt resumes from there"
        if self.reason == STALLED:
            return DownloadStalled(
                f"{what} stalled: the server sent nothing for {limits.stall_s:g} s (CLIPPER_DOWNLOAD_STALL_S); {kept}")
        if self.reason == SLOW:
            return DownloadStalled(
                f"{what} is too slow: {self._rate:.0f} bytes/s over the last {limits.window_s:g} s, below the "
                f"minimum of {limits.min_bytes_per_s:g} (CLIPPER_DOWNLOAD_MIN_BYTES_PER_S); {kept}")
        return None


def _shut(sock: socket.socket) -> None:
    try:
        # socket.socket's own shutdown also for TLS sockets: a read blocked in another thread keeps its SSL
        # object, and sees the end of the stream.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


# --- the plumbing: http.client connections whose response reader counts for a watch ---


class _CountingReader(socket.SocketIO):
    """The raw reader under an HTTP response: every recv counted, its socket known to the watch."""

    def __init__(self, sock: socket.socket, watch: TransferWatch) -> None:
        super().__init__(sock, "rb")
        sock._io_refs += 1  # what socket.makefile does: the socket closes when its last reader does
        self._watch = watch
        watch.opened(sock)

    def readinto(self, buffer: Any) -> int | None:
        with self._watch.waiting():
            nbytes = super().readinto(buffer)
        if nbytes:
            self._watch.add(nbytes)
        return nbytes

    def close(self) -> None:
        if not self.closed:
            self._watch.closed(self._sock)
        super().close()


class _WatchedSocket:
    """A connected socket as http.client uses it (sendall, makefile, close), whose binary reader counts."""

    def __init__(self, sock: socket.socket, watch: TransferWatch) -> None:
        self._sock, self._watch = sock, watch

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if mode == "rb":
            return io.BufferedReader(_CountingReader(self._sock, self._watch), buffering or io.DEFAULT_BUFFER_SIZE)
        return self._sock.makefile(mode, buffering, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class WatchedHTTPOpen(urllib.request.BaseHandler):
    """Opens http(s) connections as yt-dlp's own handler (`stock`) would, with their sockets under `watch`.

    Runs just before the stock handler (lower `handler_order` runs first), which then never opens one itself;
    its request and response processing (headers, decompression) stay as they are.
    """

    handler_order = HTTPHandler.handler_order - 1

    def __init__(self, stock: HTTPHandler, watch: TransferWatch) -> None:
        self.stock, self.watch = stock, watch

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.stock.do_open(self._factory(http.client.HTTPConnection, req), req)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.stock.do_open(self._factory(http.client.HTTPSConnection, req), req, context=self.stock._context)

    def _factory(self, base: type[http.client.HTTPConnection], req: urllib.request.Request) -> Callable[..., Any]:
        conn_class = self.stock._make_conn_class(base, req)  # a SOCKS proxy's connection class, if any
        watch, source_address = self.watch, self.stock._source_address

        def create(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            conn = _create_http_connection(conn_class, source_address, *args, **kwargs)
            plain_connect = conn.connect

            def connect() -> None:
                watch.admit()
                plain_connect()  # TCP, proxy tunnel, TLS: the socket is ready to use
                conn.sock = _WatchedSocket(conn.sock, watch)

            conn.connect = connect  # type: ignore[method-assign]
            return conn

        return create
