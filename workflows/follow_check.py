"""FollowCheck: one check of a follow, started by the follow's Temporal Schedule (`follow-<hex>`, overlap SKIP).

The work is in activity `check_follow` (activities/follow.py): list the source, start a job for each item not seen
(its workflow id derived from the follow and the item, so a start repeated after a crash is refused by Temporal
rather than doubled), record what it saw. A source that keeps failing through the activity's retries ends in
`follow_failed`, which counts the failures in a row and, after the follow's limit, pauses the schedule; the
workflow then notifies through the job notification channels. A check never fails as a workflow: its result
says what went wrong, and the next interval tries again.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from clipper.follow.model import FollowCheckResult, FollowFailure, FollowRequest
    from clipper.job.stages import BY_NAME, StagePolicy, pool_queue
    from clipper.ops.notify import Notification
    from workflows.stage_runner import retry_policy

NOTIFY = BY_NAME["notify"]


@workflow.defn(name="FollowCheck")
class FollowCheck:
    @workflow.run
    async def run(self, request: FollowRequest) -> FollowCheckResult:
        workflow.set_current_details(f"checking {request.source}")
        try:
            result = await self.activity("check_follow", request, request.policy)
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise
            cause = err.cause
            error = f"{getattr(cause, 'type', None) or type(cause).__name__}: {getattr(cause, 'message', cause)}"
            failure = FollowFailure(request=request, error=error[:500])
            result = await self.activity("follow_failed", failure, BY_NAME["follow"].policy)
            if result.paused:
                await self.notify(request, result)
        workflow.set_current_details(
            f"{request.source}: " + (f"error {result.error}" if result.error else f"{result.new} new, "
                                     f"{result.started} started") + (" · paused" if result.paused else ""))
        return result

    async def activity(self, name: str, arg: object, policy: StagePolicy) -> FollowCheckResult:
        return await workflow.execute_activity(
            name, arg, result_type=FollowCheckResult, retry_policy=retry_policy(policy),
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_s(None)),
            heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_s))

    async def notify(self, request: FollowRequest, result: FollowCheckResult) -> None:
        """The operator hears of a follow that paused itself, as of a failed job (email and/or webhook)."""
        if "failed" not in request.job.notify_on:
            return
        note = Notification(job_id=request.follow_id, event="failed", state="paused", url=request.source,
                            error_type=(result.error or "").partition(":")[0] or None,
                            error_message=f"the follow paused itself after {result.failures} failed checks in a "
                                          f"row: {result.error}; clipper follow --resume {request.follow_id}",
                            stage="follow", at=workflow.now())
        queue = workflow.info().task_queue
        try:
            await workflow.execute_activity(
                NOTIFY.activity_types[0], note, retry_policy=retry_policy(NOTIFY.policy),
                task_queue=pool_queue(queue, NOTIFY.pool) if request.job.worker_pools else queue,
                start_to_close_timeout=timedelta(seconds=NOTIFY.policy.start_to_close_s(None)))
        except ActivityError as err:
            workflow.logger.warning("follow %s: notification not delivered: %s", request.follow_id, err.cause or err)
