"""The Temporal server's own failures, as the client's callers see them: they never import temporalio.

The client turns what the server says about a job (no such workflow, already closed) into typed errors itself.
What remains is the server not answering, or refusing for a reason of its own (unavailable, deadline exceeded,
permission denied): `SERVER_ERRORS` are the exception types that escape a client call then, and `unavailable`
turns one into `TemporalUnavailable`, a typed, retryable error. The web app maps it like any other typed error
(503 problem JSON), so the knowledge of which SDK exception means "the server" stays inside the client.
"""

from __future__ import annotations

from temporalio.service import RPCError

from clipper.errors import ClipperError

SERVER_ERRORS: tuple[type[Exception], ...] = (RPCError,)


class TemporalUnavailable(ClipperError):
    """The Temporal server did not answer (or refused for its own reasons): try again. `status` is its RPC status
    name when it gave one (for logs; the message stays the same for every status)."""

    non_retryable = False

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


def unavailable(err: Exception) -> TemporalUnavailable:
    """A `SERVER_ERRORS` exception as the typed error."""
    status = getattr(err, "status", None)
    return TemporalUnavailable("the Temporal server did not answer; try again",
                               getattr(status, "name", None) if status else None)
