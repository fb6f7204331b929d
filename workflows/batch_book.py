"""The books of a `BatchJob`: its `BatchStatus`, where it is in the item list, and what it hands the next run.

Plain bookkeeping, no Temporal calls except the clock and the Web UI's details line; it runs in the workflow
sandbox. The status stays small whatever the batch's length: counts cover every item, `items` keeps the
running ones, the failed ones (up to KEEP_FAILED) and the KEEP_FINISHED most recently finished others.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from clipper.job.batch import (
        BatchCarry, BatchEntry, BatchItem, BatchRequest, BatchResult, BatchStatus, ExpandOutput,
    )
    from clipper.job.status import FINISHED, JobState
    from clipper.store.refs import ArtifactRef

KEEP_FINISHED = 20
KEEP_FAILED = 100


class BatchBook:
    def __init__(self, batch_id: str, request: BatchRequest) -> None:
        carry = request.carry
        self.items: ArtifactRef | None = carry.items if carry else None
        self.cursor = carry.cursor if carry else 0  # index of the next item to start
        self.pause_now: bool | None = carry.pause_now if carry else None  # None: not paused
        if carry:
            self.status = carry.status.model_copy(update={"run": carry.status.run + 1})
        else:
            self.status = BatchStatus(batch_id=batch_id, source=request.source, priority=request.job.priority)
        self.status.concurrency = request.concurrency

    @property
    def paused(self) -> bool:
        return self.pause_now is not None

    @property
    def running(self) -> int:
        return self.status.counts.running

    @property
    def closed(self) -> bool:
        return self.status.state in FINISHED

    def job_id(self, index: int) -> str:
        return f"{self.status.batch_id}-{index:04d}"

    def begin(self) -> None:
        if self.status.started_at is None:
            self.status.started_at = workflow.now()
        if self.status.state == JobState.queued:
            self.status.state = JobState.running
        self.publish()

    def expanded(self, out: ExpandOutput) -> None:
        self.items, self.status.counts.total, self.status.title = out.items, out.count, out.title
        self.publish()

    def start(self, entry: BatchEntry) -> BatchItem:
        item = BatchItem(index=self.cursor, job_id=self.job_id(self.cursor), url=entry.url, title=entry.title)
        self.cursor += 1
        self.status.items.append(item)
        self.publish()
        return item

    def close(self, item: BatchItem, state: JobState, error: str | None = None, existing: bool = False) -> None:
        item.state, item.error, item.existing = state, error, existing
        finished = [i for i in self.status.items if i.state in FINISHED]
        failed = [i for i in finished if i.state == JobState.failed][-KEEP_FAILED:]
        others = [i for i in finished if i.state != JobState.failed][-KEEP_FINISHED:]
        kept = {id(i) for i in failed + others}
        self.status.items = [i for i in self.status.items if i.state not in FINISHED or id(i) in kept]
        self.publish(closed=state)

    def pause(self, now: bool) -> None:
        self.pause_now = now or bool(self.pause_now)
        if not self.closed:
            self.status.state, self.status.paused_since = JobState.paused, self.status.paused_since or workflow.now()
        self.publish()

    def resume(self) -> None:
        self.pause_now, self.status.paused_since = None, None
        if not self.closed:
            self.status.state = JobState.running
        self.publish()

    def finish(self, state: JobState, error: str | None = None) -> None:
        self.status.state, self.status.finished_at, self.status.error = state, workflow.now(), error
        self.status.paused_since = None
        self.publish()

    def carry(self) -> BatchCarry:
        assert self.items is not None
        return BatchCarry(status=self.status, items=self.items, cursor=self.cursor, pause_now=self.pause_now)

    def result(self) -> BatchResult:
        failed = [i for i in self.status.items if i.state == JobState.failed]
        return BatchResult(batch_id=self.status.batch_id, state=self.status.state, counts=self.status.counts,
                           failed=failed, status=self.status)

    def publish(self, closed: JobState | None = None) -> None:
        """Counts from the books, and the Web UI's details line."""
        counts = self.status.counts
        if closed is not None:
            setattr(counts, closed.value, getattr(counts, closed.value) + 1)
        counts.running = sum(1 for i in self.status.items if i.state == JobState.running)
        counts.queued = max(0, counts.total - self.cursor)
        line = (f"**{self.status.state.value}** · {counts.done}/{counts.total} done · {counts.failed} failed · "
                f"{counts.running} running · {counts.queued} queued · priority {self.status.priority}")
        if self.status.paused_since:
            line += f" · paused since {self.status.paused_since:%H:%M:%S} UTC"
        workflow.set_current_details(line + (f" · {self.status.title}" if self.status.title else ""))
