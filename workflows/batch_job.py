"""BatchJob: a playlist or list of URLs, one child MediaJob per item, at most `concurrency` at once.

The list lives in the store (activity `expand_batch`); each run reads a window of it, starts its items, waits
for them and continues as new with a reference and a cursor (`batch_book.py` keeps the books, `batch_control.py`
passes pause/resume/set_priority on). A child that fails is counted, not fatal; cancelling the batch cancels
its running children and starts no more.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError, ApplicationError, CancelledError, ChildWorkflowError, WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from clipper.job.batch import (
        BatchEntry, BatchItem, BatchRequest, BatchResult, ExpandInput, ExpandOutput, ReadItemsInput,
    )
    from clipper.job.request import JobRequest, PauseRequest
    from clipper.job.status import JobState
    from workflows.batch_book import BatchBook
    from workflows.batch_control import BatchControl


@workflow.defn(name="BatchJob")
class BatchJob(BatchControl):
    @workflow.init
    def __init__(self, request: BatchRequest) -> None:
        self.book = BatchBook(workflow.info().workflow_id, request)
        self.children = {}

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        book, tasks, batch_id = self.book, [], self.book.status.batch_id
        book.begin()
        try:
            if book.items is None:
                book.expanded(await self.activity("expand_batch", ExpandInput(
                    batch_id=batch_id, source=request.source, urls=request.urls), ExpandOutput, minutes=10))
            for entry in await self.activity("read_batch_items", ReadItemsInput(
                    batch_id=batch_id, items=book.items, offset=book.cursor, limit=request.window), list[BatchEntry]):
                await workflow.wait_condition(lambda: not book.paused and book.running < request.concurrency)
                if tasks and workflow.info().is_continue_as_new_suggested():
                    break
                tasks.append(asyncio.create_task(self.item(book.start(entry), request)))
            await asyncio.gather(*tasks)  # this run's items end before the next run: none is carried over
            await workflow.wait_condition(workflow.all_handlers_finished)
        except (ActivityError, asyncio.CancelledError) as err:
            if isinstance(err, ActivityError) and not isinstance(err.cause, CancelledError):
                # No list (expand_batch or read_batch_items gave up): the batch fails with the activity's error.
                book.finish(JobState.failed, f"{getattr(err.cause, 'type', None) or 'Error'}: {err.cause or err}")
                raise ApplicationError(book.status.error, type=getattr(err.cause, "type", None), non_retryable=True)
            for task in tasks:  # cancelled: stop the running children and wait until they have stopped
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            book.finish(JobState.cancelled)
            raise asyncio.CancelledError() from None
        if book.cursor < book.status.counts.total:
            workflow.continue_as_new(request.model_copy(update={"urls": [], "carry": book.carry()}))
        book.finish(JobState.done)
        return book.result()

    async def item(self, item: BatchItem, request: BatchRequest) -> None:
        """One child job from start to close; its outcome goes into the books, never up (but cancellation)."""
        priority, state, error, existing = self.book.status.priority, JobState.done, None, False
        job = JobRequest.model_validate({**request.job.model_dump(), "url": item.url, "priority": priority})
        handle = None
        try:
            handle = await workflow.start_child_workflow(
                "MediaJob", job, id=item.job_id, priority=Priority(priority_key=priority),
                # An item that succeeded before (the batch run again under its id) is not redone; a failed one is.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"{self.book.status.batch_id} #{item.index}: {item.url}"[:200])
            self.children[item.job_id] = handle
            if self.book.paused:  # paused or re-prioritised while this child was starting
                await self.signal(handle, "pause", PauseRequest(now=bool(self.book.pause_now)))
            if self.book.status.priority != priority:
                await self.forward_priority([item.job_id])
            await handle
        except WorkflowAlreadyStartedError:
            existing = True
        except ChildWorkflowError as err:
            cancelled = isinstance(err.cause, CancelledError)
            state = JobState.cancelled if cancelled else JobState.failed
            kind = getattr(err.cause, "type", None) or type(err.cause).__name__
            error = None if cancelled else f"{kind}: {err.cause}"[:300]
        except asyncio.CancelledError:
            state = JobState.cancelled
            if handle is not None and not handle.done():  # cancelled while steering it: cancel the child too
                handle.cancel()
                await asyncio.gather(handle, return_exceptions=True)
            raise
        finally:
            self.children.pop(item.job_id, None)
            if item.state == JobState.running:
                self.book.close(item, state, error, existing)
