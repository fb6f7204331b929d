"""What every stage activity shares: its dependencies, logging context, heartbeats and error translation.

Long work runs in a thread; the activity's own coroutine heartbeats the latest progress on a timer, so a
busy CPU never starves the heartbeat, and Temporal's cancellation (delivered through the heartbeat) reaches
the thread as a stop flag.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.models import JobOptions, MediaInfo, StageOutput, StageProgress
from activities.metrics import StageMeasure
from clipper.rates import RateBook
from clipper.store import RECEIPTS, ArtifactStore  # noqa: F401 - RECEIPTS: re-exported
from clipper.stores import open_store

T = TypeVar("T")
O = TypeVar("O", bound=StageOutput)


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

    @classmethod
    def from_settings(cls, settings: Settings) -> StageDeps:
        store = open_store(settings)
        store.check()  # a worker that can't use its store says so at start, not in every stage it picks up
        return cls(settings=settings, store=store)


def to_application_error(err: ClipperError) -> ApplicationError:
    info = activity.info()
    retry_after = getattr(err, "retry_after_s", None)  # e.g. an LLM's 429 Retry-After: honour it
    return ApplicationError(
        err.message,
        {"attempt": info.attempt, "stage": info.activity_type},
        type=err.type_name,
        non_retryable=err.non_retryable,
        next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
    )


class StageRun:
    """One attempt of one stage: binds job id/stage/attempt to logs, logs state changes, maps errors."""

    def __init__(self, stage: str, job_id: str) -> None:
        info = activity.info()
        self.stage = stage
        self.job_id = job_id
        self.attempt = info.attempt
        self.log = structlog.get_logger().bind(job_id=job_id, stage=stage, attempt=info.attempt)
        self.progress = StageProgress()
        self.stop = threading.Event()
        self._started = time.monotonic()
        previous = info.heartbeat_details
        self.previous_progress: dict[str, Any] = previous[0] if previous and isinstance(previous[0], dict) else {}
        self.measure = StageMeasure(stage=stage, attempt=info.attempt)

    async def __aenter__(self) -> StageRun:
        self.log.info("stage.started")
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> bool:
        elapsed = round(time.monotonic() - self._started, 3)
        self.measure.seconds = elapsed
        try:
            return self._finish(exc, elapsed)
        finally:
            self.measure.record()

    def _finish(self, exc: BaseException | None, elapsed: float) -> bool:
        if exc is None:
            self.log.info("stage.completed", seconds=elapsed)
            return False
        self.stop.set()
        if isinstance(exc, asyncio.CancelledError):
            self.measure.outcome = "cancelled"
            self.log.info("stage.cancelled", seconds=elapsed)
            return False
        self.measure.outcome = "failed"
        if isinstance(exc, ClipperError):
            self.measure.error_type = exc.type_name
            self.log.warning("stage.failed", error_type=exc.type_name, error=exc.message, retryable=not exc.non_retryable)
            raise to_application_error(exc) from None
        self.measure.error_type = type(exc).__name__
        self.log.error("stage.crashed", error_type=type(exc).__name__, error=str(exc)[:500])
        return False

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
            interval_s = min(5.0, timeout.total_seconds() / 4) if timeout else 5.0
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
    update = {"llm_model": options.llm_model, "quotes_max": options.max_quotes}
    return settings.model_copy(update={k: v for k, v in update.items() if v is not None})


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
    async with StageRun(stage, request.job_id) as run:
        receipt = receipt_name or stage
        key = fingerprint(request)
        # In threads: with the S3 store these are network calls (and maybe downloads), not for the event loop.
        reused = await asyncio.to_thread(_read_receipt, deps.store, request.job_id, receipt, key, output_type)
        if reused is not None:
            run.log.info("stage.reused")
            return reused
        started = time.monotonic()
        output = await run.in_thread(work, run)
        elapsed = round(time.monotonic() - started, 3)
        output = output.model_copy(update={"attempt": run.attempt, "elapsed_s": elapsed})
        record = json.dumps({"input": key, "output": output.model_dump(mode="json")}).encode()
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
