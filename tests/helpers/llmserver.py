"""A real, local OpenAI-compatible chat completions server for tests, with scripted answers.

The `openai` SDK talks to it over HTTP exactly as it would to OpenAI or DeepSeek. Each test scripts the
answers: a queue of `Reply`s consumed in order, then (or instead) a `handler` that gets the parsed request
JSON and returns a `Reply`, a response body (dict) or the assistant's content (str). The server records every
request with its Authorization header, and the maximum number of requests in flight at once.

A request with `"stream": true` gets its answer as server-sent events, one word per event, like a real server:
at `tokens_per_s` (the reply's, else the server's; 0: at once), with the usage last when the client asked for
it (`stream_options.include_usage`). With `chars_per_token` set the server reports token counts like a model
(prompt tokens: the messages' characters / chars_per_token); `aborted` counts streams the client hung up on.
"""

from __future__ import annotations

from pydantic import SecretStr

import contextlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers.httpserver import serving

LINE = re.compile(r"^\[#(\d+) (\d+):(\d\d)\] (.*)$")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    tokens_per_s: float | None = None  # streamed answers: words per second (None: the server's pace)


@dataclass
class SeenRequest:
    method: str
    path: str
    json: dict[str, Any] | None
    authorization: str | None
    headers: dict[str, str]


def completion(content: str, model: str = "test-model", finish_reason: str = "stop") -> dict[str, Any]:
    """A chat.completion body whose single choice says `content`."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def answer(obj: Any, **kwargs: Any) -> Reply:
    """A 200 reply whose content is `obj` as JSON."""
    return Reply(body=completion(json.dumps(obj), **kwargs))


def error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body={"error": {"message": message, "type": type_, "code": code}},
                 headers=headers or {})


def system_prompt(request: dict[str, Any]) -> str:
    return next((m["content"] for m in request["messages"] if m["role"] == "system"), "")


def user_prompt(request: dict[str, Any]) -> str:
    return next((m["content"] for m in request["messages"] if m["role"] == "user"), "")


def task_prompt(request: dict[str, Any]) -> str:
    """What a request asks: the task after a chunk's excerpt (shared prefix, task last), else the system prompt."""
    user = user_prompt(request)
    return user[user.rfind("\n\nTask: ") + 2:] if "\n\nTask: " in user else system_prompt(request)


def excerpt_lines(request: dict[str, Any]) -> list[tuple[int, str]]:
    """(segment id, text) of every `[#id mm:ss] text` line in the user prompt."""
    out = []
    for line in user_prompt(request).splitlines():
        m = LINE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(4)))
    return out


Handler = Callable[[dict[str, Any]], "Reply | dict[str, Any] | str"]


class LLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replies: list[Reply] | None = None, handler: Handler | None = None,
                 models: tuple[str, ...] = ("test-model",), tokens_per_s: float = 0.0,
                 chars_per_token: float | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokens_per_s = tokens_per_s
        self.chars_per_token = chars_per_token
        self.aborted = 0  # streams the client closed before their end
        self.stream_ended: list[float] = []  # monotonic time each stream stopped being written (done or aborted)
        self.replies: deque[Reply] = deque(replies or [])
        self.handler = handler
        self.models = models
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def next_reply(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            scripted = self.replies.popleft() if self.replies else None
        if scripted is not None:
            return scripted
        if self.handler is None:
            return error(500, "no scripted answer left", "server_error")
        result = self.handler(request)
        if isinstance(result, Reply):
            return result
        if isinstance(result, str):
            return Reply(body=completion(result))
        return Reply(body=result)


class _Handler(BaseHTTPRequestHandler):
    server: LLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _record(self, payload: dict[str, Any] | None) -> None:
        with self.server.lock:
            self.server.requests.append(
                SeenRequest(self.command, self.path, payload, self.headers.get("Authorization"), dict(self.headers))
            )

    def _send(self, reply: Reply) -> None:
        body = reply.body
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            data = body.encode() if isinstance(body, str) else (body or b"")
            ctype = "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Reply, request: dict[str, Any]) -> None:
        """The completion `reply.body` as server-sent events, a word at a time."""
        body = reply.body
        choice = body["choices"][0]
        words = re.findall(r"\s*\S+\s*", choice["message"].get("content") or "") or [""]
        pace = reply.tokens_per_s if reply.tokens_per_s is not None else self.server.tokens_per_s
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": body.get("id", "chatcmpl-test"), "object": "chat.completion.chunk",
                "created": body.get("created", 0), "model": body.get("model", "test-model")}

        def event(data: Any) -> None:
            self.wfile.write(f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode())
            self.wfile.flush()

        try:
            for i, word in enumerate(words):
                if pace and i:
                    time.sleep(1.0 / pace)
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
                event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
            if (request.get("stream_options") or {}).get("include_usage") and body.get("usage"):
                event({**base, "choices": [], "usage": body["usage"]})
            event("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            with self.server.lock:
                self.server.aborted += 1
        finally:
            with self.server.lock:
                self.server.stream_ended.append(time.monotonic())

    def _usage(self, reply: Reply, request: dict[str, Any]) -> None:
        """Token counts like a model's, when the server is set to report them."""
        per = self.server.chars_per_token
        body = reply.body
        if not per or reply.status != 200 or not isinstance(body, dict) or not body.get("choices"):
            return
        prompt = sum(len(m.get("content") or "") for m in request.get("messages", []))
        content = body["choices"][0]["message"].get("content") or ""
        body["usage"] = {"prompt_tokens": math.ceil(prompt / per), "completion_tokens": len(content.split()),
                         "total_tokens": math.ceil(prompt / per) + len(content.split())}

    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            self._send(Reply(body={"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.server.models
            ]}))
        else:
            self._send(error(404, f"no route {self.path}"))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = None
        self._record(payload)
        if not self.path.rstrip("/").endswith("/chat/completions") or payload is None:
            self._send(error(404 if payload is not None else 400, f"cannot handle {self.path}"))
            return
        srv = self.server
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            reply = srv.next_reply(payload)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            self._usage(reply, payload)
            if payload.get("stream") and reply.status == 200 and isinstance(reply.body, dict) \
                    and reply.body.get("choices"):
                self._stream(reply, payload)
                return
            self._send(reply)
        finally:
            with srv.lock:
                srv.in_flight -= 1


@contextlib.contextmanager
def serve_llm(replies: list[Reply] | None = None, handler: Handler | None = None,
              models: tuple[str, ...] = ("test-model",), **pace: Any) -> Iterator[LLMServer]:
    with serving(LLMServer(replies, handler, models, **pace)) as server:
        yield server


KEY = "sk-test-planted-4f1d2c9e"  # the stand-in's API key: a test looks for it where it must never be


def model_answers(request: dict):
    """Like a model: quote two lines of the excerpt verbatim; summarise citing real segment ids."""
    lines = excerpt_lines(request)
    if "quote" in task_prompt(request).lower():
        return answer({"quotes": [{"text": text, "reason": "memorable"} for _, text in lines[3:5]]})
    points = [{"text": text, "segments": [sid, sid]} for sid, text in lines[:3]]
    return answer({"overview": "A talk about durable software.", "key_points": points})


def llm_settings(settings, server):
    return settings.model_copy(update=dict(
        llm_base_url=server.base_url, llm_api_key=SecretStr(KEY), llm_model="test-model", llm_timeout_s=10))
