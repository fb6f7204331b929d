"""How people steer a running batch: the same signal, update and query names and payloads as a MediaJob's
(workflows/control.py), so `clipper pause|resume|priority|cancel <batch id>`, the `temporal` CLI and other SDKs
work on a batch as on a job. Each is passed on to the batch's running children; children started later
get the batch's state when they start (see `BatchJob.item`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from clipper.job.batch import BatchStatus, ForwardPriority
    from clipper.job.request import PauseRequest
    from clipper.job.stages import BY_NAME
    from clipper.job.status import check_priority
    from workflows.batch_book import BatchBook
    from workflows.stage_runner import retry_policy

RETRY = retry_policy(BY_NAME["batch"].policy)


class BatchControl:
    book: BatchBook
    children: dict[str, workflow.ChildWorkflowHandle]  # running children by job id, in start order

    async def activity(self, name: str, arg: Any, returns: Any, minutes: float = 2) -> Any:
        """One of the batch's activities (stage table row `batch`), by its type name."""
        return await workflow.execute_activity(
            name, arg, result_type=returns, start_to_close_timeout=timedelta(minutes=minutes), retry_policy=RETRY,
            priority=Priority(priority_key=self.book.status.priority))

    async def forward_priority(self, job_ids: list[str]) -> None:
        """The update `set_priority` on these children, through an activity (a workflow cannot send updates)."""
        if not job_ids:
            return
        try:
            forward = ForwardPriority(job_ids=job_ids, priority=self.book.status.priority)
            await self.activity("forward_priority", forward, list[str])
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError() from None
            workflow.logger.warning("priority not passed on to %s: %s", job_ids, err.cause or err)

    async def signal(self, handle: workflow.ChildWorkflowHandle, name: str, *args: object) -> None:
        try:
            await handle.signal(name, args=args)
        except Exception as err:  # noqa: BLE001 - the child closed meanwhile: nothing left to steer
            workflow.logger.info("%s not passed on to %s: %s", name, handle.id, err)

    async def signal_children(self, name: str, *args: object) -> None:
        await asyncio.gather(*(self.signal(h, name, *args) for h in list(self.children.values())))

    @workflow.signal
    async def pause(self, request: PauseRequest | None = None) -> None:
        """A paused batch starts no new item; its running jobs pause (at their next stage, or `now`)."""
        if not self.book.closed:
            self.book.pause((request or PauseRequest()).now)
            await self.signal_children("pause", request or PauseRequest())

    @workflow.signal
    async def resume(self) -> None:
        if self.book.paused:
            self.book.resume()
            await self.signal_children("resume")

    @workflow.update
    async def set_priority(self, priority: int) -> int:
        """The batch's running jobs and every job it starts from now on get this priority (1 highest … 5 lowest)."""
        self.book.status.priority = priority
        self.book.publish()
        await self.forward_priority(list(self.children))
        return priority

    @set_priority.validator
    def _check_priority(self, priority: int) -> None:
        check_priority(priority)

    @workflow.query
    def status(self) -> BatchStatus:
        return self.book.status
