"""A typed client for clipper jobs: what the CLI uses, and what another Python service can import.

Callers never need to know workflow internals: they submit a URL, read a `JobStatus`, wait for a
`JobResult`. Live progress of a running stage comes from its heartbeat details (no history events).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import (
    Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError,
)
from temporalio.common import Priority, SearchAttributeIndexedValueType, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from clipper.batch_models import BatchResult, BatchStatus
from clipper.config import DEFAULT_RATES, STAGE_OVERHEAD_S, Settings, get_settings
from clipper.rates import RateBook
from clipper.stats import WAITING, JobRecord, StageRecord, Stats, compute_stats
from clipper.errors import ClipperError, InvalidRequest
from clipper.media.urls import canonical_url, check_url_syntax, job_id_for
from clipper.models import (
    STAGES, JobOptions, JobRequest, JobResult, JobState, JobStatus, PauseRequest, RetryRequest, StageProgress,
    StageState, StageStatus,
)
from job_history import AuditEntry, audit_log
from workflows.media_job import MediaJob


class JobNotFound(ClipperError):
    """No job with that id exists on the server."""


@dataclass
class Submitted:
    job_id: str
    existing: bool  # True when the same media was already submitted: we return that job


def check_engines(options: JobOptions) -> None:
    """A mistyped engine name is an input error: refuse it before it becomes a job that waits for a retry."""
    from clipper.asr import ENGINES
    from clipper.llm import TEXT_ENGINES

    for field, known in (("asr_engine", ENGINES), ("text_engine", TEXT_ENGINES)):
        value = getattr(options, field)
        if value is not None and value.strip().lower() not in known:
            raise InvalidRequest(f"unknown {field} {value!r}; choose one of {', '.join(known)}")


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


async def connect(settings: Settings | None = None, runtime: Runtime | None = None) -> Client:
    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter,
        runtime=runtime,
    )


SERVER_STATES = {
    WorkflowExecutionStatus.RUNNING: JobState.queued,
    WorkflowExecutionStatus.COMPLETED: JobState.done,
    WorkflowExecutionStatus.FAILED: JobState.failed,
    WorkflowExecutionStatus.TIMED_OUT: JobState.failed,
    WorkflowExecutionStatus.CANCELED: JobState.cancelled,
    WorkflowExecutionStatus.TERMINATED: JobState.cancelled,
}


def job_settings(settings: Settings) -> dict[str, Any]:
    """What a submitting client puts into every JobRequest from its own settings (policies, limits, ...)."""
    return dict(policies=settings.stage_policies(), retry_wait_s=settings.retry_wait_s,
                rates=RateBook(settings.storage_dir).read(), notify_on=settings.notify_events(),
                asr_chunk_s=settings.asr_chunk_s, worker_pools=settings.worker_pools)


class ClipperClient:
    query_timeout_s = 5.0

    def __init__(self, client: Client, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or get_settings()

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> ClipperClient:
        settings = settings or get_settings()
        return cls(await connect(settings), settings)

    def handle(self, job_id: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(job_id)

    async def submit(self, url: str, options: JobOptions | None = None, priority: int = 3) -> Submitted:
        url = url.strip()
        check_url_syntax(url)  # refuse what no worker could fetch before it becomes a job
        check_engines(options or JobOptions())
        if not 1 <= priority <= 5:
            raise InvalidRequest(f"priority must be 1 (highest) to 5 (lowest), got {priority}")
        canonical, job_id = canonical_url(url), job_id_for(url)
        request = JobRequest(url=canonical, options=options or JobOptions(), priority=priority,
                             **job_settings(self.settings))
        existing = await self._exists(job_id)
        try:
            await self.client.start_workflow(
                MediaJob.run,
                request,
                id=job_id,
                task_queue=self.settings.task_queue,
                # Same media while running or after success → the existing job; after failure → a new run.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                priority=Priority(priority_key=priority),
                static_summary=canonical[:200],
                static_details=f"clipper job for {canonical}",
            )
        except WorkflowAlreadyStartedError:
            existing = True
        return Submitted(job_id=job_id, existing=existing)

    async def _exists(self, job_id: str) -> bool:
        try:
            desc = await self.handle(job_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return desc.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)

    async def status(self, job_id: str) -> JobStatus:
        """The job's status from its `status` query, with live progress from running stages' heartbeats."""
        handle = self.handle(job_id)
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFound(f"no job {job_id!r} on {self.settings.temporal_address}") from None
            raise
        try:
            status = await handle.query(MediaJob.status, rpc_timeout=timedelta(seconds=self.query_timeout_s))
        except RPCError as err:
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE):
                raise
            # No worker is answering queries: say what the server knows instead of hanging.
            return JobStatus(job_id=job_id, url=await desc.static_summary() or "",
                             state=SERVER_STATES.get(desc.status, JobState.queued),
                             started_at=desc.start_time, finished_at=desc.close_time)
        for pending in desc.raw_description.pending_activities:
            stage = next((s for s in status.stages if s.name == pending.activity_type.name), None)
            if stage is None or stage.state != StageState.running:
                continue
            stage.attempt = pending.attempt
            if pending.heartbeat_details.payloads:
                details = await self.client.data_converter.decode(pending.heartbeat_details.payloads, [StageProgress])
                stage.progress = details[0].fraction if details else stage.progress
        status.progress = round(sum(s.progress for s in status.stages) / max(1, len(status.stages)), 4)
        running = next((s for s in status.stages if s.state == StageState.running), None)
        if status.eta_s is not None and running is not None and status.duration_s:
            # The workflow's ETA counts the running stage as not begun; take off what its heartbeat says is done.
            stage_total = STAGE_OVERHEAD_S + DEFAULT_RATES.get(running.name, 0.01) * status.duration_s
            status.eta_s = round(max(0.0, status.eta_s - stage_total * running.progress), 1)
        return status

    # --- control: plain-JSON signals and updates, the same any Temporal client can send ---

    async def pause(self, job_id: str, now: bool = False) -> None:
        await self.handle(job_id).signal(MediaJob.pause, PauseRequest(now=now))

    async def resume(self, job_id: str) -> None:
        await self.handle(job_id).signal(MediaJob.resume)

    async def retry(self, job_id: str, options: dict[str, Any] | None = None) -> None:
        """Retry a job waiting after a failure; `options` change JobOptions fields (e.g. llm_model)."""
        unknown = set(options or {}) - set(JobOptions.model_fields)
        if unknown:
            raise InvalidRequest(f"unknown option(s) {sorted(unknown)}; known: {sorted(JobOptions.model_fields)}")
        JobOptions.model_validate(options or {})
        await self.handle(job_id).signal(MediaJob.retry, RetryRequest(options=options or {}))

    async def abandon(self, job_id: str) -> None:
        await self.handle(job_id).signal(MediaJob.abandon)

    async def cancel(self, job_id: str) -> None:
        await self.handle(job_id).cancel()

    async def set_priority(self, job_id: str, priority: int) -> int:
        try:
            return await self.handle(job_id).execute_update(MediaJob.set_priority, priority)
        except WorkflowUpdateFailedError as err:
            raise InvalidRequest(getattr(err.cause, "message", None) or str(err.cause)) from None

    async def result(self, job_id: str) -> JobResult:
        return await self.client.get_workflow_handle(job_id, result_type=JobResult).result()

    # --- batches (batch_client.py): a playlist or a list of URLs as one BatchJob, a child job per item ---

    async def submit_batch(self, source: str | None = None, urls: list[str] | None = None, **options: Any) -> Submitted:
        """`source`: a playlist/feed URL the worker expands; or `urls`. Options: see batch_client.submit_batch."""
        from batch_client import submit_batch

        return await submit_batch(self, source, urls, **options)

    async def batch_status(self, batch_id: str) -> BatchStatus:
        from batch_client import batch_status

        return await batch_status(self, batch_id)

    async def batch_result(self, batch_id: str) -> BatchResult:
        from batch_client import batch_result

        return await batch_result(self, batch_id)

    # --- audit and listing: from the job's event history and the server's visibility store ---

    async def history(self, job_id: str) -> list[AuditEntry]:
        """The job's audit log (stages, attempts, retries, signals, updates, timers) from its event history."""
        try:
            history = await self.handle(job_id).fetch_history()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFound(f"no job {job_id!r} on {self.settings.temporal_address}") from None
            raise
        return audit_log(history, self.client.data_converter.payload_converter)

    async def list_jobs(self, state: str | None = None, stage: str | None = None, source: str | None = None,
                        limit: int = 50) -> list[JobSummary]:
        """Jobs from a visibility query on clipper's search attributes, newest first. Jobs started before
        the search attributes existed (or not yet picked up by a worker) have no state, stage, etc."""
        from workflows import search_attributes as sa

        clauses = ["WorkflowType = 'MediaJob'"]
        if state is not None:
            if state not in {s.value for s in JobState}:
                raise InvalidRequest(f"unknown state {state!r}; known: {', '.join(s.value for s in JobState)}")
            clauses.append(f'{sa.CLIPPER_STATE.name} = "{state}"')
        if stage is not None:
            if stage not in STAGES:
                raise InvalidRequest(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
            clauses.append(f'{sa.CLIPPER_STAGE.name} = "{stage}"')
        if source is not None:
            host = source.strip().lower()
            if not host or any(c in host for c in "\"' \\"):
                raise InvalidRequest(f"invalid source host {source!r}")
            clauses.append(f'{sa.CLIPPER_SOURCE.name} = "{host}"')
        if limit < 1:
            raise InvalidRequest(f"limit must be at least 1, got {limit}")
        jobs = []
        async for wf in self.client.list_workflows(" AND ".join(clauses), limit=limit):
            attrs = wf.typed_search_attributes
            jobs.append(JobSummary(
                job_id=wf.id, run_id=wf.run_id, status=wf.status.name.lower() if wf.status else "unknown",
                state=attrs.get(sa.CLIPPER_STATE), stage=attrs.get(sa.CLIPPER_STAGE) or None,
                progress=attrs.get(sa.CLIPPER_PROGRESS), priority=attrs.get(sa.CLIPPER_PRIORITY),
                source=attrs.get(sa.CLIPPER_SOURCE), started_at=wf.start_time, closed_at=wf.close_time,
            ))
        return jobs

    # --- statistics: over the jobs started in a time window ---

    async def stats(self, since: timedelta, limit: int = 1000, concurrency: int = 16) -> Stats:
        """Statistics of the MediaJobs started in the last `since` on this client's task queue (see
        clipper/stats.py), from a visibility query plus, per job: the result of a done job (per-stage times and
        attempts), the failure of a failed one (its type and attempts; its stage from `ClipperStage`), the
        `status` query of one waiting for a retry. At most `limit` jobs are read (`truncated` says when more
        matched)."""
        until = datetime.now(timezone.utc)
        start = until - since
        stamp = start.isoformat(timespec="seconds").replace("+00:00", "Z")
        executions = [wf async for wf in self.client.list_workflows(
            f'WorkflowType = "MediaJob" AND TaskQueue = "{self.settings.task_queue}" AND StartTime > "{stamp}"',
            limit=limit + 1)]
        gate = asyncio.Semaphore(concurrency)

        async def one(wf: WorkflowExecution) -> JobRecord:
            async with gate:
                return await self._job_record(wf)

        records = await asyncio.gather(*(one(wf) for wf in executions[:limit]))
        return compute_stats(list(records), start, until, truncated=len(executions) > limit)

    async def _job_record(self, wf: WorkflowExecution) -> JobRecord:
        from workflows import search_attributes as sa

        attrs = wf.typed_search_attributes
        sa_state, sa_stage = attrs.get(sa.CLIPPER_STATE), attrs.get(sa.CLIPPER_STAGE) or None
        record = JobRecord(job_id=wf.id, state="unknown", started_at=wf.start_time, finished_at=wf.close_time)
        handle = self.client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=JobResult)
        if wf.status == WorkflowExecutionStatus.COMPLETED:
            record.state = "done"
            try:
                status = (await handle.result(follow_runs=False)).status
            except Exception:  # noqa: BLE001 - a result this client cannot read still counts as a done job
                return record
            record.started_at = status.started_at or record.started_at
            record.finished_at = status.finished_at or record.finished_at
            record.stages = [_stage_record(s) for s in status.stages if s.state == StageState.done]
        elif wf.status in (WorkflowExecutionStatus.FAILED, WorkflowExecutionStatus.TIMED_OUT):
            record.state, record.failed_stage = "failed", sa_stage
            try:
                await handle.result(follow_runs=False)
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError):
                    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
                    record.error_type = cause.type or "ApplicationError"
                    stage, sep, _ = cause.message.partition(" failed: ")  # "<stage> failed: <type>: <message>"
                    record.failed_stage = record.failed_stage or (stage if sep and stage in STAGES else None)
                    if record.failed_stage and details.get("attempts"):
                        record.stages = [StageRecord(name=record.failed_stage, attempt=int(details["attempts"]))]
                else:
                    record.error_type = type(cause).__name__ if cause else "WorkflowFailed"
            except Exception:  # noqa: BLE001 - still counts as a failed job
                pass
        elif wf.status in (WorkflowExecutionStatus.CANCELED, WorkflowExecutionStatus.TERMINATED):
            record.state = "cancelled"
        elif wf.status == WorkflowExecutionStatus.RUNNING:
            record.state = sa_state or JobState.queued.value
            if sa_state == JobState.failed.value:  # open and failed: a stage gave up, the job waits
                record.state, record.failed_stage = WAITING, sa_stage
            if sa_state in (JobState.failed.value, JobState.done.value):  # waiting, or finishing (notifying)
                try:
                    status = await self.status(wf.id)
                except Exception:  # noqa: BLE001 - no worker answering: the search attributes are enough
                    return record
                if sa_state == JobState.failed.value:
                    record.state = WAITING if status.waiting_since else "failed"
                    record.error_type = status.error.type if status.error else None
                ended = (StageState.done, StageState.failed)
                record.stages = [_stage_record(s) for s in status.stages if s.state in ended]
        return record


def _stage_record(stage: StageStatus) -> StageRecord:
    seconds = None
    if stage.state == StageState.done and stage.started_at and stage.finished_at:
        seconds = (stage.finished_at - stage.started_at).total_seconds()
    return StageRecord(name=stage.name, attempt=stage.attempt, seconds=seconds)


class JobSummary(BaseModel):
    """One row of `list_jobs`. The clipper fields come from search attributes: None for jobs without them."""

    job_id: str
    run_id: str
    status: str  # the server's execution status: running, completed, failed, canceled, terminated, ...
    state: str | None = None  # ClipperState: queued running paused failed done cancelled
    stage: str | None = None
    progress: int | None = None  # 0-100
    priority: int | None = None
    source: str | None = None  # the media's host
    started_at: datetime | None = None
    closed_at: datetime | None = None
