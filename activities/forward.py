"""Activity `forward_priority`: a batch's `set_priority` passed on to its running jobs.

A workflow can signal another workflow but not send it an update, so the batch asks this activity to run
the update `set_priority` on each of its children through the worker's client. A child that has just closed
is skipped.
"""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime import StageDeps
from clipper.job.batch import ForwardPriority


class ForwardPriorityActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="forward_priority")
    async def run(self, request: ForwardPriority) -> list[str]:
        """Returns the jobs that took the new priority."""
        client, log, changed = activity.client(), structlog.get_logger(), []
        for job_id in request.job_ids:
            try:
                await client.get_workflow_handle(job_id).execute_update("set_priority", request.priority)
            except WorkflowUpdateFailedError as err:  # the job refused it: nothing a retry would change
                log.warning("batch.priority_refused", job_id=job_id, error=str(err.cause or err))
                continue
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: the job closed meanwhile
                    raise
                continue
            changed.append(job_id)
        return changed
