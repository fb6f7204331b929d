"""Who may do what, and how much they may send.

- Loopback by default. On any other address the server refuses to start without CLIPPER_WEB_TOKEN
  (`check_bind`): writes open to a network would let anyone cancel anyone's jobs.
- With a token, submit and every control need `Authorization: Bearer <token>` (`require_writer`); reads too when
  CLIPPER_WEB_PROTECT_READS=true (`require_reader`). Without a token (loopback only) everything is open.
- No cookies are read or set, so there is no CSRF surface: a browser never sends the token on its own.
- The token is compared in constant time and never logged (it is in `Settings.secrets()` for the redactor).
- `BodyLimit` refuses request bodies over CLIPPER_WEB_MAX_BODY_BYTES with 413 before the app reads them.
- Loopback is not a trust boundary: any web page the user visits can send requests to 127.0.0.1. `HostGuard`
  answers only for the server's own names (a foreign Host is 421: DNS rebinding gets nothing) and refuses
  state-changing requests that a browser says come from another site (Origin, Sec-Fetch-Site: 403). Clients that
  are not browsers send neither header and are not affected.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper_app.web.problems import (
    PROBLEM_JSON, BodyTooLarge, CrossOrigin, Unauthorized, UnknownHost, problem_for,
)

bearer = HTTPBearer(auto_error=False, description="CLIPPER_WEB_TOKEN; required off loopback")


class WebTokenRequired(ClipperError):
    """`clipper web` on a non-loopback address without CLIPPER_WEB_TOKEN: refused at start."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to those (e.g. localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def token_of(settings: Settings) -> str:
    return settings.web_token.get_secret_value() if settings.web_token is not None else ""


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve writes to a network without a token (raises `WebTokenRequired`)."""
    if not is_loopback(host) and not token_of(settings):
        raise WebTokenRequired(
            f"refusing to listen on {host}, which is not a loopback address, without a token: set "
            "CLIPPER_WEB_TOKEN (submit and every control then need `Authorization: Bearer <token>`), or bind "
            "127.0.0.1")


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    expected = token_of(request.app.state.settings)
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong bearer token: send `Authorization: Bearer <CLIPPER_WEB_TOKEN>`"
                           if given else "this needs `Authorization: Bearer <CLIPPER_WEB_TOKEN>`")


async def require_writer(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    _check(request, credentials)


async def require_reader(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    if request.app.state.settings.web_protect_reads:
        _check(request, credentials)


DRAIN_FACTOR = 16  # an oversized body is read and dropped up to this many times the limit before the 413


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, by its Content-Length at once, or as it streams in
    (chunked). The API's bodies are small, so the body is read here first and handed to the app whole: a
    refusal never races a half-read request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._drain(receive, 0)
            await self._refuse(send)
            return
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                if message.get("more_body", False):
                    await self._drain(receive, seen)
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        body, given = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal given
            if given:
                return await receive()  # http.disconnect when the client goes
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.limit} bytes (CLIPPER_WEB_MAX_BODY_BYTES)"

    async def _drain(self, receive: Receive, seen: int) -> None:
        """Read (and drop) what the client is still sending, up to a few times the limit, so it reads our 413
        rather than a connection reset; a body larger than that is cut off by closing the connection."""
        while seen <= DRAIN_FACTOR * self.limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Send) -> None:
        await _send(send, BodyTooLarge(self._message()), close=True)


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def served_hosts(settings: Settings, bind: str | None = None) -> set[str]:
    """The host names the server answers for: loopback's, the address it is bound to, and CLIPPER_WEB_HOSTS."""
    names = {*LOCAL_NAMES, *settings.web_hosts}
    if bind and bind not in ("0.0.0.0", "::", ""):
        names.add(bind)
    return {_name(n) for n in names}


def _name(host: str) -> str:
    """`Example.com.:8080` → `example.com`; `[::1]:8080` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


class HostGuard:
    """ASGI middleware: 421 for a Host the server does not answer for; 403 for a write from another site's page."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app, self.hosts = app, set(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = _name(headers.get(b"host", ""))
        if host not in self.hosts:
            await _send(send, UnknownHost(f"this server does not answer for the host {host[:80]!r}: use "
                                          f"http://127.0.0.1/ or add the name to CLIPPER_WEB_HOSTS"))
            return
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get(b"origin")
            foreign = origin is not None and (origin == "null" or _name(urlsplit(origin).netloc) not in self.hosts)
            if foreign or headers.get(b"sec-fetch-site") == "cross-site":
                await _send(send, CrossOrigin("refused: this request comes from a page of another site; submit "
                                              "and control jobs from clipper's own pages, the CLI or an API client"))
                return
        await self.app(scope, receive, send)


async def _send(send: Send, err: ClipperError, close: bool = False) -> None:
    """The typed error's problem JSON, sent from ASGI middleware (before any route runs); `close`: end the
    connection after it (the rest of an oversized body is not read)."""
    response = problem_for(err)
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": response.body})
