"""What every stage activity shares: its dependencies, logging context, heartbeats and error translation.

Long work runs in a thread; the activity's own coroutine heartbeats the latest progress on a timer, so a
busy CPU never starves the heartbeat, and Temporal's cancellation (delivered through the heartbeat) reaches
the thread as a stop flag. Heartbeats go out every `HEARTBEAT_EVERY_S` and the worker sends them on at least
every `HEARTBEAT_THROTTLE` (clipper_app/workers/pools.py), so a cancel or `pause --now` reaches a running stage in about a
second rather than in 0.8 × its heartbeat timeout.

The error budget: an attempt that ends in an exception is counted, durably, in the job's store (a small record
per scheduled activity, `.receipts/errors-<run>-<activity id>.json`), because nothing of a failed attempt
reaches the next one through Temporal. The exception that uses up the stage's `max_attempts` errors is made
non-retryable here, whatever the retry policy still allows: the rest of that total is for lost workers
(attempts that timed out and so never got here; see `StagePolicy`). The workflow tells each activity its error
budget in a header (clipper_app/workers/retry_budget.py); without one, the retry policy's total is the budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import re
import threading
import time
from datetime import timedelta
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import StageMeasure
from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.job.messages import StageOutput
from clipper.job.request import JobOptions, MediaInfo
from clipper.job.status import StageProgress
from clipper.job.versions import archive_rerun
from clipper.media.urls import redact_credentials
from clipper.ops.rates import RateBook
from clipper.store.configured import open_store
from clipper.store.local import RECEIPTS, ArtifactStore  # noqa: F401 - RECEIPTS: re-exported

T = TypeVar("T")
O = TypeVar("O", bound=StageOutput)

# How often a running stage heartbeats, and the most the worker may hold a heartbeat back (Worker's
# max/default_heartbeat_throttle_interval; the SDK's default is 0.8 × the heartbeat timeout, up to 60 s). A
# cancellation reaches an activity only in the answer to a heartbeat, so these bound the control latency.
HEARTBEAT_EVERY_S = 0.5
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# The activity's error budget (its stage's `max_attempts`), from the header the workflow sent it; None: no header.
ERROR_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("clipper_error_budget", default=None)
# Engines and older messages said "will retry" themselves; whether another attempt follows is decided here.
_RETRY_NOTE = re.compile(r"[;,.]?\s*will retry\.?\s*$", re.IGNORECASE)


def fingerprint(request: BaseModel) -> str:
    """What makes two requests the same work: their content, not when their inputs were written."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in sorted(value.items()) if k != "created_at"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return hashlib.sha256(json.dumps(strip(request.model_dump(mode="json"))).encode()).hexdigest()


@dataclass
class StageDeps:
    """Everything a stage needs from the outside world, injected by the worker (and by tests)."""

    settings: Settings
    store: ArtifactStore
    # The providers' circuit breakers (clipper_app/client/breakers.py `BreakerClient`), set by a worker that has a Temporal
    # client; None: engines call their providers unguarded (activities/breaker.py `gate_for`).
    breakers: Any = None
    # The worker's Temporal client, for activities that start or steer workflows (a follow's check starts jobs).
    client: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StageDeps:
        store = open_store(settings)
        store.check()  # a worker that can't use its store says so at start, not in every stage it picks up
        return cls(settings=settings, store=store)


def to_application_error(err: ClipperError, message: str | None = None, non_retryable: bool | None = None,
                         **details: Any) -> ApplicationError:
    """The Temporal form of a typed error: its class name as the type, its message without any URL's password."""
    info = activity.info()
    retry_after = getattr(err, "retry_after_s", None)  # e.g. an LLM's 429 Retry-After: honour it
    return ApplicationError(
        redact_credentials(message if message is not None else err.message),
        {"attempt": info.attempt, "stage": info.activity_type, **details},
        type=err.type_name,
        non_retryable=err.non_retryable if non_retryable is None else non_retryable,
        next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
    )


class UnexpectedError(ClipperError):
    """An exception that is no typed error: a bug, or a library failing in a way nobody foresaw. Retried within
    the stage's error budget (it may be transient), reported with its own class name as the type."""

    non_retryable = False

    def __init__(self, exc: BaseException, stage: str) -> None:
        detail = " ".join(str(exc).split())[:300] or "no message"
        super().__init__(f"unexpected {type(exc).__name__} in stage {stage}: {detail} (the worker's log has the "
                         "traceback: event stage.crashed)")
        self.original = type(exc).__name__

    @property
    def type_name(self) -> str:
        return self.original


def retry_note(will_retry: bool, errors: int, budget: int, attempt: int) -> str:
    """What follows a retryable error's message: whether another attempt comes, and what was used up."""
    if will_retry:
        return f"; will retry (error {errors} of {budget})" if budget > 0 else "; will retry"
    lost = max(0, attempt - errors)
    return (f"; gave up after {errors} failed attempt{'s' if errors != 1 else ''}"
            + (f" and {lost} lost worker{'s' if lost != 1 else ''}" if lost else ""))


class StageRun:
    """One attempt of one stage: binds job id/stage/attempt to logs, logs state changes, maps errors."""

    def __init__(self, stage: str, job_id: str, store: ArtifactStore | None = None) -> None:
        info = activity.info()
        self.stage = stage
        self.job_id = job_id
        self.store = store  # where failed attempts are counted; None: not counted (the retry policy's total only)
        self.attempt = info.attempt
        self.first_scheduled = info.scheduled_time  # the stage's first attempt's (retries keep it)
        self.log = structlog.get_logger().bind(job_id=job_id, stage=stage, attempt=info.attempt)
        self.stop = threading.Event()
        self.loop = asyncio.get_running_loop()  # where the engines' threads send calls to Temporal (breakers)
        self._started = time.monotonic()
        previous = info.heartbeat_details
        self.previous_progress: dict[str, Any] = previous[0] if previous and isinstance(previous[0], dict) else {}
        # A retry shows where the attempt before it got until its work says more (loading a model takes seconds):
        # a first heartbeat of 0 would make the job's progress jump back while it resumes.
        try:
            self.progress = StageProgress.model_validate({**self.previous_progress, "waiting": None})
        except ValidationError:
            self.progress = StageProgress()
        self.measure = StageMeasure(stage=stage, attempt=info.attempt)

    async def __aenter__(self) -> StageRun:
        self.log.info("stage.started")
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> bool:
        elapsed = round(time.monotonic() - self._started, 3)
        self.measure.seconds = elapsed
        try:
            if exc is None:
                self.log.info("stage.completed", seconds=elapsed)
                return False
            self.stop.set()
            if isinstance(exc, asyncio.CancelledError):
                self.measure.outcome = "cancelled"
                self.log.info("stage.cancelled", seconds=elapsed)
                return False
            raise await self._failed(exc) from None
        finally:
            self.measure.record()

    async def _failed(self, exc: BaseException) -> ApplicationError:
        """The error this attempt ends with: counted against the error budget, told whether a retry follows."""
        err = exc if isinstance(exc, ClipperError) else UnexpectedError(exc, self.stage)
        self.measure.outcome, self.measure.error_type = "failed", err.type_name
        message = _RETRY_NOTE.sub("", err.message)
        if err.non_retryable:
            self.log.warning("stage.failed", error_type=err.type_name, error=message, retryable=False,
                             will_retry=False)
            return to_application_error(err, message)
        info = activity.info()
        total = info.retry_policy.maximum_attempts if info.retry_policy else 0
        budget = ERROR_BUDGET.get()
        budget = total if budget is None else budget
        errors = await asyncio.to_thread(self._count_error, info, err.type_name)
        will_retry = (budget <= 0 or errors < budget) and (total <= 0 or info.attempt < total)
        message += retry_note(will_retry, errors, budget, info.attempt)
        fields = dict(error_type=err.type_name, error=message, retryable=True, will_retry=will_retry, errors=errors,
                      error_budget=budget)
        if isinstance(err, UnexpectedError):
            self.log.error("stage.crashed", **fields, exc_info=exc)
        else:
            self.log.warning("stage.failed", **fields)
        return to_application_error(err, message, non_retryable=not will_retry, errors=errors,
                                    unexpected=isinstance(err, UnexpectedError))

    def _count_error(self, info: activity.Info, error_type: str) -> int:
        """Count this attempt's error in the job's store and return how many attempts of this activity ended in
        one. If the count can't be kept (the store is failing too), every attempt so far is taken for an error:
        the budget then ends no later than it would have without lost-worker attempts."""
        if self.store is None:
            return info.attempt
        name = f"errors-{info.workflow_run_id}-{info.activity_id}"
        try:
            raw = self.store.read_receipt(self.job_id, name)
            errors = int(json.loads(raw)["errors"]) + 1 if raw else 1
            self.store.put_receipt(self.job_id, name, json.dumps(
                {"errors": errors, "last_type": error_type, "last_attempt": info.attempt}).encode())
            return errors
        except (OSError, ValueError, KeyError, TypeError, ClipperError) as problem:
            self.log.warning("stage.error_count_lost", problem=str(problem)[:200])
            return info.attempt

    def count_chunk(self, done: int, total: int) -> None:
        """Progress callback for chunked work (quotes, summary)."""
        self.progress.done, self.progress.total = float(done), float(total)

    def heartbeat(self) -> None:
        activity.heartbeat(self.progress.model_dump())

    async def in_thread(self, fn: Callable[..., T], *args: Any, interval_s: float | None = None) -> T:
        """Run blocking `fn(*args)` in a thread, heartbeating `self.progress` until it returns.

        On cancellation the stop flag is set so the thread ends at its next check, and we wait for it,
        so it can clean up its temporary files before the activity reports cancelled.
        """
        if interval_s is None:
            timeout = activity.info().heartbeat_timeout
            interval_s = min(HEARTBEAT_EVERY_S, timeout.total_seconds() / 4) if timeout else HEARTBEAT_EVERY_S
        def measured() -> T:
            # Process CPU time: engines compute in their own native threads, which thread_time would miss.
            # With several activities at once on a worker, this counts their overlap too.
            cpu = time.process_time()
            try:
                return fn(*args)
            finally:
                self.measure.cpu_seconds += time.process_time() - cpu

        task = asyncio.ensure_future(asyncio.to_thread(measured))
        try:
            while True:
                self.heartbeat()
                done, _ = await asyncio.wait({task}, timeout=interval_s)
                if done:
                    return task.result()
        except asyncio.CancelledError:
            self.stop.set()
            # Keep heartbeating while the thread winds down, or the server would time this attempt out
            # and start another beside it.
            for _ in range(int(30 / interval_s) + 1):
                done, _ = await asyncio.wait({task}, timeout=interval_s)
                if done:
                    break
                self.heartbeat()
            if task.done() and not task.cancelled():
                task.exception()  # the thread's StopRequested is expected: retrieve it so asyncio stays quiet
            raise


def settings_for(settings: Settings, options: JobOptions) -> Settings:
    """The worker's settings with the job's own overrides (e.g. another model after a manual retry)."""
    from clipper.asr.models import with_model

    update = {"llm_model": options.llm_model, "quotes_max": options.max_quotes}
    if options.max_quotes is not None:
        update["quotes_scale"] = False  # the job's own number is a cap, not a floor
    settings = settings.model_copy(update={k: v for k, v in update.items() if v is not None})
    return with_model(settings, options.asr_model)


async def run_stage(
    deps: StageDeps, stage: str, request: Any, output_type: type[O], work: Callable[[StageRun], O],
    receipt_name: str | None = None,
) -> O:
    """One stage attempt: reuse a finished result for the same input, else run `work` in a thread.

    The receipt covers the gap between 'the work is done' and 'the server recorded it': an attempt that
    finished just before its worker died is not redone by the retry. `receipt_name` (e.g. "transcribe-3")
    marks one part of a stage run as several activities: it gets its own receipt, and its time is not the
    stage's processing rate.
    """
    async with StageRun(stage, request.job_id, deps.store) as run:
        receipt = receipt_name or stage
        key = fingerprint(request)
        # In threads: with the S3 store these are network calls (and maybe downloads), not for the event loop.
        reused = await asyncio.to_thread(_read_receipt, deps.store, request.job_id, receipt, key, output_type)
        if reused is not None:
            run.log.info("stage.reused")
            return reused
        if receipt_name is None:  # run again: keep what its last finished run produced (clipper/job/versions.py)
            await run.in_thread(archive_rerun, deps.store, request.job_id, stage, deps.settings.keep_versions)
        started = time.monotonic()
        output = await run.in_thread(work, run)
        elapsed = round(time.monotonic() - started, 3)
        output = output.model_copy(update={"attempt": run.attempt, "elapsed_s": elapsed})
        options = getattr(request, "options", None)  # what produced the outputs, for the version they may become
        record = json.dumps({"input": key, "output": output.model_dump(mode="json"),
                             "options": options.model_dump(mode="json") if options is not None else None}).encode()
        await asyncio.to_thread(deps.store.put_receipt, request.job_id, receipt, record)
        if receipt_name is None:
            audio_s = await asyncio.to_thread(_audio_seconds, deps.store, request.job_id)
            RateBook(deps.settings.storage_dir).record(stage, elapsed, audio_s)
            if stage == "transcribe":
                run.measure.audio_seconds = audio_s or 0.0
        source = getattr(output, "source", None)
        run.measure.bytes_downloaded = source.size if stage == "download" and source else 0
        return output


def _audio_seconds(store: ArtifactStore, job_id: str) -> float | None:
    ref = store.valid_ref(job_id, "media.json")  # verified, and fetched when another host wrote it
    try:
        return MediaInfo.model_validate_json(store.path(job_id, ref.name).read_bytes()).duration_s if ref else None
    except (OSError, ValidationError):
        return None


def _read_receipt(store: ArtifactStore, job_id: str, name: str, key: str, output_type: type[O]) -> O | None:
    try:
        raw = store.read_receipt(job_id, name)
        if raw is None:
            return None
        data = json.loads(raw)
        output = output_type.model_validate(data["output"]) if data.get("input") == key else None
    except (OSError, ValueError, KeyError, AttributeError, ValidationError):
        return None
    if output is None or any(store.valid_ref(job_id, ref.name) != ref for ref in output.artifacts()):
        return None  # an output changed or vanished since: do the work again
    return output
