"""A job's status and its listed artifacts, read at the lowest cost that is still true. A part of `ClipperClient`.

A running job's status is its workflow's `status` query, with live progress from the running stages' heartbeats;
a query is answered by a worker that replays the job's history, so it costs a worker's time and needs a worker.
A job that has ended (its workflow closed) never changes: a finished one is read from what it left, its
`JobResult` (the history's last event, which the server answers alone, no worker), and one that failed or was
cancelled is queried once. Either is kept for the life of the client, per run (`JobView`); a describe (the
server alone) says which run of the job is current, so a job id that starts a new run (a failed job submitted
again) is read afresh.

Every read goes through `Recent` (clipper_app/client/recent.py): concurrent reads of one job share one fetch, and
with `read_max_age_s` (the web app: 1 s) a job's view is reused for that long, so fifty requests at once, or
many pages polling one job, cost one describe (and for a running job one query) per job per second; a job's store
manifest (read for every artifact and page) the same.
`forget(job_id)` drops what is kept of a job; the client calls it after every write it sends (a control, a
submit, speaker names, an import), and a delete must too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError

from clipper.job.request import JobResult
from clipper.job.status import JobState, JobStatus, RunningActivity, StageProgress
from clipper.store.refs import ArtifactRef
from clipper_app.client.common import NO_WORKER, SERVER_STATES, ClientBase, JobNotFinished, JobNotFound
from clipper_app.client.recent import Recent
from workflows import search_attributes as sa
from workflows.media_job import MediaJob

RESULT_TYPES = ("MediaJob", "ImportedJob")  # workflows whose result is a JobResult
CLOSED_KEPT = 256  # closed jobs' views kept per client (a result holds every artifact's reference)


@dataclass(frozen=True)
class JobView:
    """What is known of one run of a job: its status; for a closed run the server's execution status (completed,
    failed, canceled, ...) and, when it completed, its result."""

    status: JobStatus
    closed: bool = False
    execution: str = "running"
    result: JobResult | None = None
    final: bool = True  # False: the server's word only (no worker answered), not kept past max_age


class Reads:
    """The client's kept reads: each job's current view (briefly), closed runs' views (for good), job lists."""

    def __init__(self, max_age_s: float) -> None:
        self.views: Recent[str, JobView] = Recent(max_age_s)
        self.closed: Recent[tuple[str, str], JobView] = Recent(None, size=CLOSED_KEPT)
        self.lists: Recent[tuple[str, int], Any] = Recent(max_age_s, size=64)
        self.manifests: Recent[str, dict[str, ArtifactRef]] = Recent(max_age_s, size=CLOSED_KEPT)

    def forget(self, job_id: str) -> None:
        self.views.forget(job_id)
        self.manifests.forget(job_id)
        self.closed.forget_where(lambda key: key[0] == job_id)
        self.lists.clear()  # a list may show the job as it was


class StatusMethods(ClientBase):
    read_max_age_s = 0.0  # how long a job's view is reused; 0: only concurrent reads share (see module doc)

    @functools.cached_property
    def reads(self) -> Reads:
        return Reads(self.read_max_age_s)

    def forget(self, job_id: str) -> None:
        """Drop what this client keeps of the job: its next read asks the server."""
        self.reads.forget(job_id)

    async def status(self, job_id: str) -> JobStatus:
        """The job's status: a closed job's as it ended, a running job's from its `status` query with live
        progress from running stages' heartbeats (`JobStatus.refresh`'s formula over the fresher progress). The
        caller's own copy (a JSON round trip: five times cheaper than a deep copy)."""
        status = (await self.job_view(job_id)).status
        return JobStatus.model_validate_json(status.model_dump_json())

    async def job_view(self, job_id: str) -> JobView:
        """The job's current view, shared with every concurrent caller (and for `read_max_age_s` with later
        ones): read it, never change it. The web app serves it as it is."""
        return await self.reads.views.get(job_id, lambda: self._view(job_id))

    async def listed_artifacts(self, job_id: str) -> dict[str, ArtifactRef]:
        """The artifacts the job lists: a finished job's result's; a running one's so far (its finished stages',
        so the audio can be heard while it is transcribed, and everything once it is done but still notifying).
        `JobNotFinished` for a job that failed or was cancelled."""
        view = await self.job_view(job_id)
        if not view.closed:
            return view.status.artifacts
        if view.result is None:
            raise JobNotFinished(f"{job_id} is {view.execution}: its outputs are read once it has finished")
        return view.result.artifacts

    async def _view(self, job_id: str) -> JobView:
        desc = await self.describe(job_id)
        if desc.workflow_type not in RESULT_TYPES:  # a batch or a helper workflow: its status is no job's
            raise JobNotFound(f"{job_id} is not a job but a {desc.workflow_type} workflow")
        if desc.close_time is None:
            return JobView(status=await self._live_status(job_id, desc))
        key = (job_id, desc.run_id or "")
        view = await self.reads.closed.get(key, lambda: self._closed_view(job_id, desc))
        if not view.final:
            self.reads.closed.forget(key)  # a worker may answer next time
        return view

    async def _closed_view(self, job_id: str, desc: WorkflowExecutionDescription) -> JobView:
        execution = desc.status.name.lower() if desc.status else "closed"
        handle = self.client.get_workflow_handle(job_id, run_id=desc.run_id, result_type=JobResult)
        if desc.status == WorkflowExecutionStatus.COMPLETED:  # a job's workflow (`_view`): its result is a JobResult
            with self.translating(job_id):
                result = await handle.result(follow_runs=False)
            return JobView(status=result.status, closed=True, execution=execution, result=result)
        try:  # failed, cancelled, terminated: its status is the workflow's, as it ended
            with self.translating(job_id):
                status = await handle.query(MediaJob.status, rpc_timeout=timedelta(seconds=self.query_timeout_s))
        except RPCError as err:
            if err.status not in NO_WORKER:
                raise
            return JobView(status=await self._server_status(job_id, desc), closed=True, execution=execution,
                           final=False)
        return JobView(status=status, closed=True, execution=execution)

    async def _live_status(self, job_id: str, desc: WorkflowExecutionDescription) -> JobStatus:
        """`desc`: the describe that found the job running, what the server knows if no worker answers."""
        try:
            with self.translating(job_id):
                status = await self.handle(job_id).query(
                    MediaJob.status, rpc_timeout=timedelta(seconds=self.query_timeout_s))
        except RPCError as err:
            if err.status not in NO_WORKER:
                raise
            return await self._server_status(job_id, desc)
        # The pending activities are read after the query: a chunk the workflow has counted as finished is no
        # longer pending, so it is never counted twice (one finishing in between is missed for one look).
        desc = await self.describe(job_id)
        # Every running activity counts for its stage: chunks, plan and merge for `transcribe` (fold_running).
        status.fold_running([RunningActivity(activity_type=p.activity_type.name, attempt=p.attempt,
                                             progress=await self._heartbeat(p))
                             for p in desc.raw_description.pending_activities])
        return status

    async def _server_status(self, job_id: str, desc: WorkflowExecutionDescription) -> JobStatus:
        """No worker is answering queries: what the server knows, instead of hanging — the execution's status and
        times, and the job's last search attributes (state, stage, progress, priority, title), so a reader that
        saw the job at 75 % does not see it drop to 0 while a query cannot be answered."""
        attrs = desc.typed_search_attributes
        state = SERVER_STATES.get(desc.status, JobState.queued)
        if desc.close_time is None and attrs.get(sa.CLIPPER_STATE) in {s.value for s in JobState}:
            state = JobState(attrs.get(sa.CLIPPER_STATE))
        status = JobStatus(job_id=job_id, url=await desc.static_summary() or "", state=state,
                           started_at=desc.start_time, finished_at=desc.close_time,
                           current_stage=attrs.get(sa.CLIPPER_STAGE) or None, title=attrs.get(sa.CLIPPER_TITLE))
        status.progress = (attrs.get(sa.CLIPPER_PROGRESS) or 0) / 100
        if attrs.get(sa.CLIPPER_PRIORITY) is not None:
            status.priority = attrs.get(sa.CLIPPER_PRIORITY)
        return status

    async def _heartbeat(self, pending: Any) -> StageProgress | None:
        """The progress in a pending activity's last heartbeat; None without one (or with details that are no
        `StageProgress`: an activity of another program, say)."""
        if not pending.heartbeat_details.payloads:
            return None
        try:
            details = await self.client.data_converter.decode(pending.heartbeat_details.payloads, [StageProgress])
        except (ValueError, TypeError):
            return None
        return details[0] if details and isinstance(details[0], StageProgress) else None
