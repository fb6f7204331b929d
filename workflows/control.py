"""How people steer a running job: signals, updates and the search attributes the Web UI filters on.

`JobControl` is a base class of the job workflows; its handlers only change state and publish it. The
stage runner acts on that state at stage boundaries (pause), on the running activity (pause --now) and
after a failure (retry / abandon). Everything is plain JSON, so the `temporal` CLI and other SDKs can send it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from clipper.job.request import PauseRequest, RetryRequest
    from clipper.job.status import JobStatus, check_priority

if TYPE_CHECKING:
    from workflows.stage_runner import StageRunner



class JobControl:
    """Signal, update and query handlers shared by job workflows. Subclasses set `self.job`/`self.stages`."""

    job: JobStatus
    stages: StageRunner

    @workflow.signal
    def pause(self, request: PauseRequest | None = None) -> None:
        if self.job.finished_at is not None:  # ended; a job waiting for a retry (state failed) can still pause
            return
        self.stages.pause((request or PauseRequest()).now)

    @workflow.signal
    def resume(self) -> None:
        self.stages.resume()

    @workflow.signal
    def retry(self, request: RetryRequest | None = None) -> None:
        self.stages.request_retry(request or RetryRequest())

    @workflow.signal
    def abandon(self) -> None:
        self.stages.abandoned = True

    @workflow.update
    def set_priority(self, priority: int) -> int:
        """Activities the job starts from now on carry this priority (1 highest … 5 lowest)."""
        self.job.priority = priority
        self.stages.publish()
        return priority

    @set_priority.validator
    def _check_priority(self, priority: int) -> None:
        check_priority(priority)  # a rejected update leaves no trace in the history

    @workflow.query
    def status(self) -> JobStatus:
        return self.job
