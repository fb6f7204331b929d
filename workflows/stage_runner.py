"""Runs one stage activity for a workflow and keeps the job's `JobStatus` in step with it.

Also where control takes effect: a pause waits at the stage boundary (or cancels the running activity for
`pause --now`), and a stage that gives up waits for a manual `retry` or `abandon`. Everything here runs in
the workflow sandbox: time comes from `workflow.now()`, never the system clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from clipper.errors import InvalidRequest, ends_job
    from clipper.job.request import JobRequest, RetryRequest
    from clipper.job.stages import StagePolicy
    from clipper.job.stages import BY_NAME, DEFAULT_POLICIES, DEFAULT_RATES, pool_queue
    from clipper.job.status import JobState, JobStatus, StageError, StageState
    from clipper.ops.notify import CALLBACK_EVENTS, Notification
    from workflows import search_attributes as sa

# A patch since the 1.0 baseline (docs/versions.md): the media's title as the search attribute `ClipperTitle`.
TITLE_ATTRIBUTE = "title-attribute"


class StageFailed(Exception):
    """A stage gave up: its retries are exhausted or its error is not retryable."""

    def __init__(self, stage: str, error: StageError) -> None:
        super().__init__(f"{stage} failed: {error.type}: {error.message}")
        self.stage = stage
        self.error = error


@dataclass
class StageRetryPolicy(RetryPolicy):
    """Temporal's retry policy (`maximum_attempts` = errors + lost workers), plus the stage's error budget, which
    clipper_app/workers/retry_budget.py hands to the activity in a header (the runtime stops retrying errors there)."""

    error_attempts: int | None = None


def retry_policy(policy: StagePolicy) -> RetryPolicy:
    return StageRetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval_s),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.max_interval_s),
        maximum_attempts=policy.total_attempts,
        error_attempts=policy.max_attempts,
    )


def stage_error(err: ActivityError) -> StageError:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return StageError(type=cause.type or "ApplicationError", message=cause.message,
                          attempts=details.get("attempt", 1))
    if isinstance(cause, TimeoutError):
        kind = cause.type.name if cause.type else "timeout"
        return StageError(type="StageTimedOut", message=f"the stage timed out ({kind})")
    return StageError(type=type(cause).__name__ if cause else "ActivityError", message=str(cause or err))


class StageRunner:
    def __init__(self, request: JobRequest, status: JobStatus) -> None:
        self.request = request
        self.status = status
        self.status.rates = {**DEFAULT_RATES, **request.rates}  # the ETA's inputs, shown to clients too
        self.paused = False
        # `pause --now` count: an activity that started before the latest one was interrupted, not cancelled.
        self.interrupts = 0
        self.running: list[workflow.ActivityHandle] = []  # in start order (a set's order is not deterministic)
        self.retry: RetryRequest | None = None
        self.abandoned = False
        self.published: tuple | None = None

    def queue(self, stage: str) -> str | None:
        """The task queue of the stage's pool (e.g. clipper-cpu); None: the job's own queue."""
        if not self.request.worker_pools:
            return None
        return pool_queue(workflow.info().task_queue, BY_NAME[stage].pool)

    def policy(self, stage: str) -> StagePolicy:
        return self.request.policies.get(stage) or DEFAULT_POLICIES.get(stage) or StagePolicy()

    async def run(self, stage: str, arg: Any, returns: Any, *, activity: str | None = None, part: bool = False,
                  boundary: bool = True) -> Any:
        """Run the stage's activity to success, through pauses and manual retries.

        Activities are called by their type name from the stage table (`activity`: one of the stage's types;
        default its only one), so the workflows import no activity code; `returns` is the result's model.

        `part=True`: the activity is one of several that make up the stage (chunked transcription), maybe
        running side by side; the caller opens and closes the stage (`open_stage`, `close_stage`), but a
        failure still fails the stage and waits for a manual retry. `boundary=False`: this start is not a
        place where a pause takes effect (it continues the step before); a restart after pause --now still is.
        """
        entry = self.status.stage(stage)
        retried = False
        while True:
            if boundary:
                await workflow.wait_condition(lambda: not self.paused)  # a pause takes effect here
            boundary = True
            self.raise_if_cancelled()
            interrupts = self.interrupts  # a pause --now before this start does not concern this activity
            if "options" in type(arg).model_fields:  # a manual retry may have changed them
                arg = arg.model_copy(update={"options": self.request.options})
            if part:
                if retried or entry.state != StageState.failed:  # another part's failure stays shown while it waits
                    entry.state, entry.error = StageState.running, None
            else:
                self.open_stage(stage)
            try:
                result = await self.start(stage, activity or BY_NAME[stage].activity_types[0], arg, returns)
            except ActivityError as err:
                if self.interrupts != interrupts:  # pause --now: run it again once resumed
                    entry.state = StageState.pending
                    continue
                # A cancelled job stops here, also when its activity ended otherwise (its worker died: timeout).
                if isinstance(err.cause, CancelledError) or workflow.cancellation_reason() is not None:
                    raise asyncio.CancelledError() from err
                error = stage_error(err)  # kept here: another part of the stage may change the entry meanwhile
                entry.state, entry.finished_at, entry.error, entry.attempt = (
                    StageState.failed, workflow.now(), error, error.attempts)
                if not ends_job(error.type) and await self.wait_for_retry():
                    retried = True
                    continue
                self.publish()
                raise StageFailed(stage, error) from err
            if part:
                return result
            self.close_stage(stage, result)
            self.raise_if_cancelled()
            return result

    def open_stage(self, stage: str) -> None:
        entry = self.status.stage(stage)
        entry.state, entry.started_at, entry.finished_at, entry.error = StageState.running, workflow.now(), None, None
        entry.progress, self.status.current_stage = 0.0, stage
        self.publish()

    def close_stage(self, stage: str, result: Any) -> None:
        entry = self.status.stage(stage)
        entry.state, entry.finished_at, entry.progress = StageState.done, workflow.now(), 1.0
        entry.attempt = getattr(result, "attempt", entry.attempt + 1)
        info = getattr(result, "info", None)  # the download stage is the one that learns the duration
        duration = self.status.duration_s or (info.duration_s if info else None)
        if duration:
            entry.rate = round(getattr(result, "elapsed_s", 0.0) / duration, 5)
        for ref in result.artifacts():
            self.status.artifacts[ref.name] = ref
        self.publish()

    def raise_if_cancelled(self) -> None:
        """A cancel that reached an activity only after it finished is not lost: stop at this boundary."""
        if workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError()

    async def start(self, stage: str, activity: str, arg: Any, returns: Any) -> Any:
        policy = self.policy(stage)
        handle = workflow.start_activity(
            activity,
            arg,
            result_type=returns,
            task_queue=self.queue(stage),
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_s(self.status.duration_s)),
            heartbeat_timeout=timedelta(seconds=policy.heartbeat_timeout_s),
            retry_policy=retry_policy(policy),
            priority=Priority(priority_key=self.status.priority),
            # Wait for the activity to stop and clean up before moving on: never two attempts at once.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{stage}: {self.status.title or self.status.url}"[:200],  # status.url: no password in it
        )
        self.running.append(handle)
        try:
            return await handle
        finally:
            self.running.remove(handle)

    async def run_helper(self, name: str, arg: Any, summary: str) -> None:
        """An activity of the job that is not a stage (cleanup, notify, names): its type and policy from the stage
        table; what it returns is not used."""
        helper = BY_NAME[name]
        policy = helper.policy
        await workflow.execute_activity(
            helper.activity_types[0], arg, task_queue=self.queue(name), retry_policy=retry_policy(policy),
            start_to_close_timeout=timedelta(seconds=policy.start_to_close_s(None)),
            priority=Priority(priority_key=self.status.priority), summary=summary)

    # --- control ---

    def pause(self, now: bool) -> None:
        self.paused = True
        self.status.state, self.status.paused_since = JobState.paused, workflow.now()
        if now and self.running:
            self.interrupts += 1
            for handle in list(self.running):
                handle.cancel()
        self.publish()

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused, self.status.paused_since = False, None
        self.status.state = JobState.failed if self.status.waiting_since else JobState.running
        self.publish()

    def request_retry(self, request: RetryRequest) -> None:
        if self.status.waiting_since is not None:
            self.retry = request

    async def wait_for_retry(self) -> bool:
        """After a stage gave up: wait for `retry` (maybe with new options) or `abandon`, up to a limit."""
        self.retry, self.abandoned = None, False
        self.status.state, self.status.waiting_since = JobState.failed, workflow.now()
        self.status.error = self.status.stage(self.status.current_stage).error
        self.publish()
        notifying = asyncio.create_task(self.notify("waiting_for_retry"))  # in the background: a retry needn't wait
        try:
            await workflow.wait_condition(lambda: self.retry is not None or self.abandoned,
                                          timeout=timedelta(seconds=self.request.retry_wait_s))
        except asyncio.TimeoutError:
            return False
        finally:
            self.status.waiting_since = None
            if not notifying.done():  # the job moved on: a notice still retrying is stale
                notifying.cancel()
        if self.abandoned or self.retry is None:
            return False
        try:
            self.request.options = self.request.options.changed(self.retry.options)
        except InvalidRequest:
            workflow.logger.warning("retry with invalid options ignored: %s", self.retry.options)
        self.status.state = JobState.paused if self.paused else JobState.running
        self.status.error = None
        return True

    async def notify(self, event: str) -> None:
        """Email/webhook about the job, through the channels the workers configure. Never fails the job: a
        notification still undeliverable after its retries is logged; one cancelled as the job moved on is dropped."""
        callback = self.request.callback_url if event in CALLBACK_EVENTS else None
        if event not in self.request.notify_on and not callback:
            return
        job, error = self.status, self.status.error
        note = Notification(job_id=job.job_id, event=event, state=job.state.value, title=job.title, url=job.url,
                            error_type=error.type if error else None, error_message=error.message if error else None,
                            stage=job.current_stage, at=workflow.now(), callback_url=callback,
                            notify_operator=event in self.request.notify_on)
        try:
            await self.run_helper("notify", note, f"notify {event}: {job.job_id}")
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError):
                workflow.logger.warning("notification %s not delivered: %s", event, err.cause or err)

    # --- publishing ---

    def publish(self) -> None:
        """Keep progress, ETA, the Web UI's details line and the search attributes in step with the job."""
        stages, job = self.status.stages, self.status
        job.refresh()
        done = sum(1 for s in stages if s.state == StageState.done)
        line = f"**{job.state.value}**"
        if job.current_stage and job.state != JobState.done:
            line += f" · stage **{job.current_stage}** ({min(done + 1, len(stages))}/{len(stages)})"
        line += f" · {job.progress:.0%}"
        if job.eta_s is not None and job.state == JobState.running:
            line += f" · ETA {int(job.eta_s // 60)}:{int(job.eta_s % 60):02d}"
        if job.paused_since:
            line += f" · paused since {job.paused_since:%H:%M:%S} UTC"
        if job.error:
            line += f" · {job.error.type}: {job.error.message[:120]}"
        line += f" · priority {job.priority}" + (f" · {job.title}" if job.title else "")
        workflow.set_current_details(line)
        # The title joins the attributes once known (patch TITLE_ATTRIBUTE): asked only then, so a job that started
        # before the patch, replayed, upserts exactly what it did.
        title = job.title[:sa.TITLE_CHARS] if job.title and workflow.patched(TITLE_ATTRIBUTE) else ""
        values = (job.state.value, job.current_stage or "", job.priority, int(job.progress * 100), title)
        if values != self.published:  # one history event per real change, not per call
            self.published = values
            workflow.upsert_search_attributes([
                sa.CLIPPER_STATE.value_set(values[0]),
                sa.CLIPPER_STAGE.value_set(values[1]),
                sa.CLIPPER_PRIORITY.value_set(values[2]),
                sa.CLIPPER_PROGRESS.value_set(values[3]),
                sa.CLIPPER_SOURCE.value_set(sa.source_host(job.url)),
                *([sa.CLIPPER_TITLE.value_set(title)] if title else []),
            ])
