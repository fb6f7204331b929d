"""Runs one stage activity for a workflow and keeps the job's `JobStatus` in step with it.

Kept apart from `MediaJob` so the workflow reads like the pipeline. Everything here runs inside the
workflow sandbox: time comes from `workflow.now()`, never the system clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from clipper.config import DEFAULT_POLICIES
    from clipper.models import JobRequest, JobState, JobStatus, StageError, StagePolicy, StageState


class StageFailed(Exception):
    """A stage gave up: its retries are exhausted or its error is not retryable."""

    def __init__(self, stage: str, error: StageError) -> None:
        super().__init__(f"{stage} failed: {error.type}: {error.message}")
        self.stage = stage
        self.error = error


def retry_policy(policy: StagePolicy) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval_s),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.max_interval_s),
        maximum_attempts=policy.max_attempts,
    )


def stage_error(err: ActivityError) -> StageError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return StageError(type=cause.type or "ApplicationError", message=cause.message, attempts=details.get("attempt", 1))
    if isinstance(cause, TimeoutError):
        return StageError(type="StageTimedOut", message=f"the stage timed out ({cause.type.name if cause.type else 'timeout'})")
    return StageError(type=type(cause).__name__ if cause else "ActivityError", message=str(cause or err))


class StageRunner:
    def __init__(self, request: JobRequest, status: JobStatus) -> None:
        self.request = request
        self.status = status

    def policy(self, stage: str) -> StagePolicy:
        return self.request.policies.get(stage) or DEFAULT_POLICIES.get(stage) or StagePolicy()

    async def run(self, stage: str, activity: Any, arg: Any) -> Any:
        policy = self.policy(stage)
        entry = self.status.stage(stage)
        entry.state, entry.started_at, entry.finished_at, entry.error = StageState.running, workflow.now(), None, None
        entry.progress = 0.0
        self.status.current_stage = stage
        self.update_details()
        try:
            result = await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timedelta(seconds=policy.start_to_close_s(self.status.duration_s)),
                heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_s),
                retry_policy=retry_policy(policy),
                priority=Priority(priority_key=self.request.priority),
                summary=f"{stage}: {self.status.title or self.request.url}"[:200],
            )
        except ActivityError as err:
            entry.state, entry.finished_at, entry.error = StageState.failed, workflow.now(), stage_error(err)
            entry.attempt = entry.error.attempts
            self.update_details()
            raise StageFailed(stage, entry.error) from err
        entry.state, entry.finished_at, entry.progress = StageState.done, workflow.now(), 1.0
        entry.attempt = getattr(result, "attempt", entry.attempt + 1)
        for ref in result.artifacts():
            self.status.artifacts[ref.name] = ref
        self.update_details()
        return result

    def update_details(self) -> None:
        """Keep the job's progress and the Web UI's 'current details' line in step with the stages."""
        stages = self.status.stages
        self.status.progress = round(sum(s.progress for s in stages) / len(stages), 4)
        done = sum(1 for s in stages if s.state == StageState.done)
        line = f"**{self.status.state.value}**"
        if self.status.state == JobState.running and self.status.current_stage:
            line += f" · stage **{self.status.current_stage}** ({done + 1}/{len(stages)})"
        line += f" · {self.status.progress:.0%}"
        if self.status.title:
            line += f" · {self.status.title}"
        workflow.set_current_details(line)
