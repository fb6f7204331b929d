"""Deleting a job and everything it left (`clipper delete`, `DELETE /api/jobs/<id>`). A part of `ClipperClient`.

Only a job that has ended (done, failed, cancelled, abandoned: its workflow is closed) is deleted: a running job's
stages are still writing into its folder. What goes: its entries in the search index, its folder in the configured store (every artifact, its kept
versions, receipts; in an S3 store every object under the job's prefix and this host's cached copies), then every
closed run of its workflow and of the `NameSpeakers` workflows that named its speakers (ids `<job>/names-…`), so
`clipper list`, `GET /api/jobs` and the Web UI no longer show it.

The files go first: a delete cut short between the two leaves the job listed (and deleting it again finishes the
work); the other order could leave files no listed job leads to.

The server removes a run's history asynchronously: at once for a run that ended a while ago, but only once the
server has acknowledged the run's closing, about 30 s, for one that has just ended. `delete_job` waits for that
(up to `DELETE_WAIT_S`), so that once it returns the job is gone everywhere and deleting it again is `JobNotFound`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from clipper.errors import ClipperError, InvalidRequest
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from clipper_app.client.common import ClientBase, JobNotFound
from workflows import search_attributes as sa

JOB_TYPES = ("MediaJob", "ImportedJob")  # an imported job (workflows/imported_job.py) is deleted the same way
HELPER_TYPE = "NameSpeakers"  # its runs are `<job id>/names-<random>` (ClipperClient.name_speakers)
DELETE_WAIT_S = 60.0  # the server's acknowledgement of a just-closed run takes about 30 s (see the module's doc)
POLL_S = 0.25
Run = tuple[str, str, WorkflowExecutionStatus | None]  # workflow id, run id, the server's status (from visibility)


class JobStillRunning(ClipperError):
    """A job that has not ended cannot be deleted: its stages still write into its folder. Cancel it first
    (`clipper cancel JOB`; a job waiting after a failure: `clipper abandon JOB`), then delete it once it has ended."""


@dataclass
class Deleted:
    job_id: str
    files: int  # files and objects removed from the store
    runs: int  # workflow runs removed from the server: the job's own and its NameSpeakers runs
    pending: bool = False  # True when the server had not finished removing them within the wait


class DeleteMethods(ClientBase):
    store: ArtifactStore  # OutputMethods' (the configured store)
    unindex_job: Any  # SearchMethods'

    async def delete_job(self, job_id: str, wait_s: float = DELETE_WAIT_S) -> Deleted:
        """Delete the ended job `job_id`: its files, versions and workflow runs. `JobNotFound` for an unknown (or
        already deleted) job, `JobStillRunning` for one that has not ended, `InvalidRequest` for an id that is no
        job's (a batch's, or one that would lead out of the store's `jobs/` folder)."""
        runs, helpers = await self.deletable(job_id)
        try:
            await self.unindex_job(job_id)  # first: a failing index leaves the job whole (delete it again later)
            files = await asyncio.to_thread(self.store.delete_job, job_id)
            for workflow_id, run_id, _ in helpers + runs:  # the helpers first: nothing lists them once the job is gone
                await self._delete_run(workflow_id, run_id)
            gone = await self._wait_gone(job_id, [h[0] for h in helpers], wait_s)
        finally:
            self.forget(job_id)  # nothing kept of it is true any more
        return Deleted(job_id=job_id, files=files, runs=len(runs) + len(helpers), pending=not gone)

    async def deletable(self, job_id: str) -> tuple[list[Run], list[Run]]:
        """The job's runs and its helpers' runs, all closed; the errors of `delete_job` otherwise (nothing removed).
        The CLI asks this before it asks the person to confirm."""
        self.store.uri(job_id)  # refuses an id that would escape the store, before anything is asked or removed
        if any(c in job_id for c in "\"'\\"):
            raise InvalidRequest(f"invalid job id {job_id!r}")
        desc = await self.describe(job_id)
        if desc.workflow_type not in JOB_TYPES:
            raise InvalidRequest(f"{job_id} is a {desc.workflow_type}, not a job: delete its jobs one by one")
        if desc.close_time is None:
            raise JobStillRunning(_running(job_id, desc.typed_search_attributes.get(sa.CLIPPER_STATE)))
        # The list is the visibility store's, a moment behind: the run the server just described is closed for sure.
        runs = [r for r in await self._runs(f'WorkflowId = "{job_id}"') if r[1] != desc.run_id]
        runs.append((job_id, desc.run_id, desc.status))
        helpers = await self._runs(f'WorkflowType = "{HELPER_TYPE}" AND WorkflowId STARTS_WITH "{job_id}/"')
        if any(status == WorkflowExecutionStatus.RUNNING for *_, status in runs + helpers):
            raise JobStillRunning(f"{job_id} is being worked on right now (a new run, or its speakers being named): "
                                  "try again once it has ended")
        return runs, helpers

    async def _runs(self, query: str) -> list[Run]:
        return [(wf.id, wf.run_id, wf.status) async for wf in self.client.list_workflows(query)]

    async def _delete_run(self, workflow_id: str, run_id: str) -> None:
        request = DeleteWorkflowExecutionRequest(
            namespace=self.settings.temporal_namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id))
        try:
            await self.client.workflow_service.delete_workflow_execution(request)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:  # gone already (deleted meanwhile, or expired)
                raise

    async def _wait_gone(self, job_id: str, helpers: list[str], wait_s: float) -> bool:
        """Whether the server no longer has the job (nor lists it, nor its helpers) within `wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        ids = ", ".join(f'"{i}"' for i in [job_id, *helpers])
        while True:
            try:
                await self.describe(job_id)
            except JobNotFound:
                if (await self.client.count_workflows(f"WorkflowId IN ({ids})")).count == 0:
                    return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_S)


def _running(job_id: str, state: str | None) -> str:
    if state == JobState.failed.value:  # open and failed: waiting for a manual retry
        return (f"{job_id} is waiting for a retry after a failure: give up on it first (`clipper abandon {job_id}`, or "
                f"`clipper cancel {job_id}`), then delete it")
    return (f"{job_id} is {state or JobState.queued.value}: cancel it first (`clipper cancel {job_id}`), then delete "
            "it once it has ended")
