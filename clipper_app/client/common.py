"""What every part of the client shares: the connection, the typed errors, and the one translation of the
server's "no such workflow" into `JobNotFound` / `JobClosed`.

Nothing here knows about jobs or batches in particular, so `jobs`, `batches` and `stats` all import it and
never each other (no import cycles).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import (
    Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle,
)
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from clipper.config import Settings, get_settings
from clipper.errors import ClipperError, InvalidRequest, JobCancelled
from clipper.job.request import JobOptions
from clipper.job.status import JobState
from clipper.ops.rates import RateBook
from clipper_app.client.unavailable import TemporalUnavailable


class JobNotFound(ClipperError):
    """No job (or batch) with that id exists on the server."""


class JobClosed(ClipperError):
    """The job has already ended: it takes no more signals or updates."""


class JobFailed(ClipperError):
    """The job ended failed. `stage` is where (None when it failed outside a stage), `error_type` the error's type
    name (e.g. `MediaNotFound`), `message` the error's own message, without the type repeated in front."""

    def __init__(self, job_id: str, stage: str | None, error_type: str, message: str) -> None:
        super().__init__(f"{job_id} failed" + (f" in {stage}" if stage else "") + f": {message}")
        self.job_id, self.stage, self.error_type, self.error_message = job_id, stage, error_type, message

    @property
    def type_name(self) -> str:  # `error MediaNotFound: clip-… failed in download: …`, the type said once
        return self.error_type


class JobNotFinished(ClipperError):
    """The job has no outputs to read yet (it is running, paused, waiting for a retry) or never will (it failed
    or was cancelled): `clipper status` says which."""


class ArtifactNotFound(ClipperError):
    """The finished job has no artifact by that name (e.g. a clip rank it did not cut)."""


class BatchFailed(ClipperError):
    """A batch ended with failed items, or failed or was cancelled itself."""


@dataclass
class Submitted:
    job_id: str
    existing: bool  # True when the same media was already submitted: we return that job
    # The secret the job's webhook deliveries are signed with (clipper/ops/signing.py), when they are signed with
    # the job's own; None without a webhook or with CLIPPER_WEBHOOK_SECRET. Kept out of reprs (and so of logs).
    webhook_secret: str | None = field(default=None, repr=False)


def ended_badly(job_id: str, err: WorkflowFailureError) -> ClipperError:
    """A job's or batch's failed result as a typed error: `JobCancelled`, or `JobFailed` with the details MediaJob
    attaches (its `StageError` and stage) when there are some, else the cause's own type and message."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return JobCancelled(f"{job_id} was cancelled")
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        message = details.get("message") or cause.message
        return JobFailed(job_id, details.get("stage"), cause.type or "ApplicationError", message)
    return JobFailed(job_id, None, type(cause).__name__ if cause else "WorkflowFailed", str(cause or err))


# What the server's execution status says of a job when no worker answers its `status` query.
SERVER_STATES = {
    WorkflowExecutionStatus.RUNNING: JobState.queued,
    WorkflowExecutionStatus.COMPLETED: JobState.done,
    WorkflowExecutionStatus.FAILED: JobState.failed,
    WorkflowExecutionStatus.TIMED_OUT: JobState.failed,
    WorkflowExecutionStatus.CANCELED: JobState.cancelled,
    WorkflowExecutionStatus.TERMINATED: JobState.cancelled,
}
# A query no worker answered: say what the server knows instead of hanging.
NO_WORKER = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE)


async def connect(settings: Settings | None = None, runtime: Runtime | None = None) -> Client:
    """A Temporal client for the settings' server; `TemporalUnavailable` saying where it looked when none answers."""
    settings = settings or get_settings()
    try:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter,
            runtime=runtime,
        )
    except RuntimeError as err:  # the SDK's bridge says "Failed client connect: …" with a transport error
        if "connect" not in str(err).lower():
            raise
        raise TemporalUnavailable(
            f"no Temporal server answers at {settings.temporal_address} (namespace {settings.temporal_namespace}): "
            "start one (`make server`, or `temporal server start-dev`) or set TEMPORAL_ADDRESS") from None


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register clipper's search attributes; a no-op when they exist (safe from every worker at start)."""
    from workflows.search_attributes import SEARCH_ATTRIBUTES

    kinds = {SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
             SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT}
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    missing = {key.name: kinds[key.indexed_value_type] for key in SEARCH_ATTRIBUTES
               if key.name not in existing.custom_attributes}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:  # another worker won the race
            raise


def check_engines(options: JobOptions) -> None:
    """A mistyped engine name is an input error: refuse it before it becomes a job that waits for a retry."""
    from clipper.asr import ENGINES
    from clipper.llm import TEXT_ENGINES

    for field, known in (("asr_engine", ENGINES), ("text_engine", TEXT_ENGINES)):
        value = getattr(options, field)
        if value is not None and value.strip().lower() not in known:
            raise InvalidRequest(f"unknown {field} {value!r}; choose one of {', '.join(known)}")


def job_settings(settings: Settings) -> dict[str, Any]:
    """What a submitting client puts into every JobRequest from its own settings (policies, limits, ...)."""
    return dict(policies=settings.stage_policies(), retry_wait_s=settings.retry_wait_s,
                rates=RateBook(settings.storage_dir).read(), notify_on=settings.notify_events(),
                asr_chunk_s=settings.asr_chunk_s, worker_pools=settings.worker_pools)


class ClientBase:
    """The connection and settings, and the one place that turns the server's NOT_FOUND into a typed error."""

    query_timeout_s = 5.0

    def __init__(self, client: Client, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or get_settings()

    def handle(self, job_id: str, result_type: type | None = None) -> WorkflowHandle:
        return self.client.get_workflow_handle(job_id, result_type=result_type)

    def not_found(self, job_id: str, kind: str = "job") -> JobNotFound:
        return JobNotFound(f"no {kind} {job_id!r} on {self.settings.temporal_address}")

    @contextlib.contextmanager
    def translating(self, job_id: str, kind: str = "job") -> Iterator[None]:
        """Inside: the server's NOT_FOUND for `job_id` surfaces as `JobNotFound`, never as a raw `RPCError`."""
        try:
            yield
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            raise self.not_found(job_id, kind) from None

    def forget(self, job_id: str) -> None:
        """Drop whatever this client keeps of the job (after a write, a delete): nothing here; the client's reads
        keep views of jobs and override it (clipper_app/client/reads.py)."""

    async def describe(self, job_id: str, kind: str = "job") -> WorkflowExecutionDescription:
        with self.translating(job_id, kind):
            return await self.handle(job_id).describe()

    async def exists(self, job_id: str) -> bool:
        """A job that a submit of the same media would join (running, done, or continued as new)."""
        try:
            desc = await self.describe(job_id)
        except JobNotFound:
            return False
        return desc.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED,
                               WorkflowExecutionStatus.CONTINUED_AS_NEW)

    async def signalling(self, job_id: str, send: Any) -> Any:
        """Send a signal/update (`send()` returns the awaitable); a job that ended says so (`JobClosed`)."""
        try:
            return await send()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            desc = await self.describe(job_id)  # JobNotFound when there is no such job at all
            state = desc.status.name.lower() if desc.status else "closed"
            raise JobClosed(f"{job_id} has already ended ({state})") from None
