"""Reading a streamed chat completion: tokens are the server's sign of life, a stop flag ends the read.

A small local model answers at a few tokens per second, so a limit on the whole request would cut off healthy
answers, while no limit would let a dead server hold the stage. The answer is streamed instead, and the HTTP
read timeout (CLIPPER_LLM_TIMEOUT_S) applies between bytes: the longest silence allowed, before the first token
(the server reading the prompt) and between tokens. Each token also counts as progress (`on_tokens`), which the
stage puts in its heartbeat.

Cancellation: a stage's stop flag is watched while a request is open; when it turns true the request's socket
is shut down, which wakes the read blocked on it at once (waiting for the first token, or between tokens), and
the call raises `StopRequested`. The socket is known because every request opens its own connection (no
keep-alive: a connection costs nothing next to an answer) and the connection's trace hands it to us.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clipper.asr.base import StopRequested

WATCH_EVERY_S = 0.1


@dataclass
class Answer:
    content: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None  # None: the server did not say
    completion_tokens: int | None = None


class Slot:
    """The socket of one request in flight (None until its connection is made)."""

    sock: socket.socket | None = None


class Sockets:
    """The socket each thread's current request uses, learnt from httpcore's connection trace."""

    def __init__(self) -> None:
        self._local = threading.local()

    def hook(self, request: Any) -> None:
        """httpx `request` event hook (in the requesting thread): trace this request's connection."""
        slot = self.slot()

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                stream = info.get("return_value")
                slot.sock = stream.get_extra_info("socket") if stream is not None else None

        request.extensions["trace"] = trace

    def begin(self) -> Slot:
        """A fresh slot for the calling thread's next request; the object itself can be read from any thread."""
        self._local.slot = Slot()
        return self._local.slot

    def slot(self) -> Slot:
        slot = getattr(self._local, "slot", None)
        return slot if slot is not None else self.begin()


class Watch:
    """While open: when `should_stop()` turns true, shut the socket of the request made in this thread."""

    def __init__(self, sockets: Sockets, should_stop: Callable[[], bool] | None) -> None:
        self.sockets, self.should_stop = sockets, should_stop
        self.stopped = False
        self._done = threading.Event()

    def __enter__(self) -> Watch:
        slot = self.sockets.begin()
        if self.should_stop is not None:
            if self.should_stop():
                raise StopRequested("text stage stopped on request")
            threading.Thread(target=self._run, args=(slot,), daemon=True, name="clipper-llm-watch").start()
        return self

    def _run(self, box: Slot) -> None:
        while not self._done.wait(WATCH_EVERY_S):
            if self.should_stop is not None and self.should_stop():
                self.stopped = True
                sock = getattr(box, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    def check(self) -> None:
        if self.stopped or (self.should_stop is not None and self.should_stop()):
            self.stopped = True
            raise StopRequested("text stage stopped on request")

    def __exit__(self, *exc: Any) -> None:
        self._done.set()


def read_stream(stream: Any, watch: Watch, on_tokens: Callable[[int], None] | None) -> Answer:
    """The streamed answer's text, finish reason and usage; stops (and closes the stream) when asked to."""
    out = Answer()
    parts: list[str] = []
    try:
        for chunk in stream:
            watch.check()
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                out.prompt_tokens = getattr(usage, "prompt_tokens", None)
                out.completion_tokens = getattr(usage, "completion_tokens", None)
            for choice in getattr(chunk, "choices", None) or []:
                delta = getattr(choice, "delta", None)
                text = getattr(delta, "content", None) if delta is not None else None
                if text:
                    parts.append(text)
                    if on_tokens is not None:
                        on_tokens(1)
                if getattr(choice, "finish_reason", None):
                    out.finish_reason = choice.finish_reason
    finally:
        stream.close()
    watch.check()  # a shut-down socket can also look like the end of the answer
    out.content = "".join(parts)
    return out
