"""Reading many jobs at once: lists from the server's visibility store (clipper's search attributes) and
statistics over a time window (`clipper/ops/stats.py` does the arithmetic). A part of `ClipperClient`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from clipper.errors import InvalidRequest
from clipper.job.request import JobResult
from clipper.job.stages import STAGES
from clipper.job.status import JobState, StageState, StageStatus
from clipper.ops.stats import WAITING, JobRecord, StageRecord, Stats, compute_stats
from clipper_app.client.reads import StatusMethods
from workflows import search_attributes as sa


class ListingMethods(StatusMethods):
    async def list_jobs(self, state: str | None = None, stage: str | None = None, source: str | None = None,
                        limit: int = 50) -> list[JobSummary]:
        """Jobs from a visibility query on clipper's search attributes, newest first. A job no worker has
        picked up yet has no state, stage, etc."""
        clauses = ["WorkflowType IN ('MediaJob', 'ImportedJob')"]  # imported: finished elsewhere (clipper import)
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
        return await self._summaries(clauses, limit)

    async def list_batches(self, state: str | None = None, limit: int = 50) -> list[JobSummary]:
        """Batches (playlists, URL lists), newest first; `job_id` is the batch id."""
        clauses = ["WorkflowType = 'BatchJob'"]
        if state is not None:
            if state not in {s.value for s in JobState}:
                raise InvalidRequest(f"unknown state {state!r}; known: {', '.join(s.value for s in JobState)}")
            clauses.append(f'{sa.CLIPPER_STATE.name} = "{state}"')
        return await self._summaries(clauses, limit)

    async def _summaries(self, clauses: list[str], limit: int) -> list[JobSummary]:
        if limit < 1:
            raise InvalidRequest(f"limit must be at least 1, got {limit}")
        query = " AND ".join(clauses)
        # Many pages refresh the same list every second: one visibility query answers those asking at once.
        return list(await self.reads.lists.get((query, limit), lambda: self._list(query, limit)))

    async def _list(self, query: str, limit: int) -> list[JobSummary]:
        jobs = []
        async for wf in self.client.list_workflows(query, limit=limit):
            attrs = wf.typed_search_attributes
            jobs.append(JobSummary(
                job_id=wf.id, run_id=wf.run_id, status=wf.status.name.lower() if wf.status else "unknown",
                state=attrs.get(sa.CLIPPER_STATE), stage=attrs.get(sa.CLIPPER_STAGE) or None,
                progress=attrs.get(sa.CLIPPER_PROGRESS), priority=attrs.get(sa.CLIPPER_PRIORITY),
                source=attrs.get(sa.CLIPPER_SOURCE), started_at=wf.start_time, closed_at=wf.close_time,
                title=attrs.get(sa.CLIPPER_TITLE) or None,
            ))
        return jobs

    # --- statistics: over the jobs started in a time window ---

    async def stats(self, since: timedelta, limit: int = 1000, concurrency: int = 16) -> Stats:
        """Statistics of the MediaJobs started in the last `since` on this client's task queue (see
        clipper/ops/stats.py), from a visibility query plus, per job: the result of a done job (per-stage times and
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
    """One row of `list_jobs`. The clipper fields come from search attributes: None until a worker set them."""

    job_id: str
    run_id: str
    status: str  # the server's execution status: running, completed, failed, canceled, terminated, ...
    state: str | None = None  # ClipperState: queued running paused failed done cancelled
    stage: str | None = None
    progress: int | None = None  # 0-100
    priority: int | None = None
    source: str | None = None  # the media's host
    title: str | None = None  # the media's title (ClipperTitle), once the download knows it
    started_at: datetime | None = None
    closed_at: datetime | None = None
