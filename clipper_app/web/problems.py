"""Errors as RFC 9457 problem details (`application/problem+json`), in one place.

Every refusal carries `type`, `title`, `status`, `detail`, and `error`: the typed error's class name, the same
name the CLI prints (`error JobClosed: ...`), so a caller can branch on it without parsing text.

The status follows what went wrong, not where:
- 404: `JobNotFound` (unknown job or batch id), `ArtifactNotFound`, `FollowNotFound`, and routes that do not exist;
- 409: a control that does not apply to the job's current state: `JobClosed` (the job has ended),
  `JobNotFinished` (outputs asked of a job still running), `JobStillRunning` (a delete of a job not ended), and `retry`/`abandon` on a job that is not waiting
  after a failure. The client raises `InvalidRequest` for that last one (`ClipperClient.ensure_waiting`): the
  request itself is well formed, the job is just not in the state for it, so the API answers 409 and keeps the
  error name the CLI shows (see `NotApplicable`);
- 422: invalid input: pydantic validation, bad JSON, `InvalidRequest` and its subclasses, and the URL errors
  (`UnsupportedUrl`, `ForbiddenAddress`, `CredentialsInUrl`, `LocalPathNotAllowed`), any other input error;
- 401 a missing or wrong bearer token, 413 a body over the limit (clipper_app/web/security.py);
- 503 a retryable error (the artifact store or Temporal unreachable: the client turns the server's own failures
  into `TemporalUnavailable`, so this module needs no Temporal SDK); 500 a corrupt artifact.
"""

from __future__ import annotations

import html
import inspect
from http import HTTPStatus

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipper.errors import ClipperError, CorruptArtifact, FollowNotFound, error_class
from clipper_app.client import (
    SERVER_ERRORS, ArtifactNotFound, JobClosed, JobNotFinished, JobNotFound, JobStillRunning, unavailable,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/problems/"  # + the error's name: a page this app serves, saying what the error means (`problem_page`)
# Problems that are not typed errors of ours: what their page says.
OTHER_PROBLEMS = {
    "ValidationError": "The request does not match the API's schema (see /openapi.json): a missing or unknown field, "
                       "a value of the wrong type or out of range. `detail` names the field.",
    "NotFound": "No such route or page.",
    "MethodNotAllowed": "The route exists, but not for this HTTP method.",
    "HTTPError": "An HTTP-level refusal; `status` and `detail` say which.",
    "InternalError": "An error the server did not expect: a bug. The server's log has what happened.",
}

NOT_FOUND = (JobNotFound, ArtifactNotFound, FollowNotFound)
CONFLICT = (JobClosed, JobNotFinished, JobStillRunning)


class Problem(BaseModel):
    """RFC 9457 problem details, plus `error`: the typed error's name."""

    type: str
    title: str
    status: int
    detail: str
    error: str


class NotApplicable(ClipperError):
    """A control that does not apply to the job's state (409). Keeps the original error's name and message, so
    the API says what the CLI says (`error InvalidRequest: clip-… is running, not waiting for a manual retry`)."""

    def __init__(self, cause: ClipperError) -> None:
        super().__init__(cause.message)
        self.cause = cause

    @property
    def type_name(self) -> str:
        return self.cause.type_name


class Unauthorized(ClipperError):
    """A write (or, with CLIPPER_WEB_PROTECT_READS, a read) without the right `Authorization: Bearer` token."""


class BodyTooLarge(ClipperError):
    """The request body is larger than CLIPPER_WEB_MAX_BODY_BYTES."""


class UnknownHost(ClipperError):
    """The request names a host this server does not answer for (421): a page on another site reaching a loopback
    server by a name it controls (DNS rebinding) gets nothing. CLIPPER_WEB_HOSTS adds the names people use."""


class CrossOrigin(ClipperError):
    """A state-changing request sent by a page of another site (its Origin or Sec-Fetch-Site says so): 403."""


def status_of(err: ClipperError) -> int:
    if isinstance(err, NOT_FOUND):
        return 404
    if isinstance(err, (*CONFLICT, NotApplicable)):
        return 409
    if isinstance(err, Unauthorized):
        return 401
    if isinstance(err, BodyTooLarge):
        return 413
    if isinstance(err, UnknownHost):
        return 421
    if isinstance(err, CrossOrigin):
        return 403
    if isinstance(err, CorruptArtifact):
        return 500
    return 422 if err.non_retryable else 503


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body = Problem(type=TYPE_BASE + error, title=title, status=status, detail=detail, error=error)
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_for(err: ClipperError) -> JSONResponse:
    status = status_of(err)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(status, err.type_name, err.message.splitlines()[0] if err.message else "", headers)


def _validation_detail(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def problem_text(name: str) -> str | None:
    """What the problem `name` means: its typed error's docstring, or a line of `OTHER_PROBLEMS`; None if unknown."""
    cls = error_class(name)
    if cls is not None and cls is not ClipperError:
        return " ".join((inspect.getdoc(cls) or name).split())
    return OTHER_PROBLEMS.get(name)


def install(app: FastAPI) -> None:
    """Every error the app can meet answers as a problem: typed errors, validation, unknown routes, and an
    unexpected server error (logged, never shown)."""

    @app.get(TYPE_BASE + "{name}", include_in_schema=False, response_class=HTMLResponse)
    async def problem_page(name: str) -> HTMLResponse:
        """What a problem `type` points at: the error's meaning, from its class's docstring."""
        text = problem_text(name)
        if text is None:
            raise StarletteHTTPException(404, f"no problem type {name[:80]!r}")
        return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{html.escape(name)}</title>"
                            f"<h1>{html.escape(name)}</h1><p>{html.escape(text)}</p>")

    @app.exception_handler(ClipperError)
    async def _typed(_: Request, err: ClipperError) -> JSONResponse:
        return problem_for(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return problem(422, "ValidationError", _validation_detail(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(err.status_code, "HTTPError")
        return problem(err.status_code, name, str(err.detail), getattr(err, "headers", None))

    async def _temporal(_: Request, err: Exception) -> JSONResponse:
        typed = unavailable(err)  # TemporalUnavailable: retryable, so 503
        structlog.get_logger().warning("web.temporal_error", status=typed.status)
        return problem_for(typed)

    for kind in SERVER_ERRORS:
        app.add_exception_handler(kind, _temporal)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        # Starlette still raises the error after this answer, so the server logs it with its traceback.
        return problem(500, "InternalError", "the server met an error it did not expect; its log says which")
