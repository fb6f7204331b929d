"""What every stage activity shares: its dependencies, logging context, heartbeats and error translation.

Long work runs in a thread; the activity's own coroutine heartbeats the latest progress on a timer, so a
busy CPU never starves the heartbeat, and Temporal's cancellation (delivered through the heartbeat) reaches
the thread as a stop flag.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.models import StageProgress
from clipper.store import ArtifactStore

T = TypeVar("T")


@dataclass
class StageDeps:
    """Everything a stage needs from the outside world, injected by the worker (and by tests)."""

    settings: Settings
    store: ArtifactStore

    @classmethod
    def from_settings(cls, settings: Settings) -> StageDeps:
        return cls(settings=settings, store=ArtifactStore(settings.storage_dir))


def to_application_error(err: ClipperError) -> ApplicationError:
    info = activity.info()
    return ApplicationError(
        err.message,
        {"attempt": info.attempt, "stage": info.activity_type},
        type=err.type_name,
        non_retryable=err.non_retryable,
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

    async def __aenter__(self) -> StageRun:
        self.log.info("stage.started")
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> bool:
        elapsed = round(time.monotonic() - self._started, 3)
        if exc is None:
            self.log.info("stage.completed", seconds=elapsed)
            return False
        self.stop.set()
        if isinstance(exc, asyncio.CancelledError):
            self.log.info("stage.cancelled", seconds=elapsed)
            return False
        if isinstance(exc, ClipperError):
            self.log.warning("stage.failed", error_type=exc.type_name, error=exc.message, retryable=not exc.non_retryable)
            raise to_application_error(exc) from None
        self.log.error("stage.crashed", error_type=type(exc).__name__, error=str(exc)[:500])
        return False

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
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            while True:
                self.heartbeat()
                done, _ = await asyncio.wait({task}, timeout=interval_s)
                if done:
                    return task.result()
        except asyncio.CancelledError:
            self.stop.set()
            await asyncio.wait({task}, timeout=30)
            raise
