"""Runs the clipper worker: every workflow and stage activity on one task queue. Nothing else.

SIGTERM/SIGINT drain gracefully: the worker stops polling, running activities get
`CLIPPER_GRACEFUL_SHUTDOWN_S` to finish, and whatever is cut short resumes on another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.cleanup import CleanupActivity
from activities.clips import ClipsActivity
from activities.download import DownloadActivity
from activities.metrics import prometheus_runtime
from activities.notify import NotifyActivity
from activities.quotes import QuotesActivity
from activities.report import ReportActivity
from activities.runtime import StageDeps
from activities.summary import SummaryActivity
from activities.transcribe import TranscribeActivity
from activities.transcribe_chunks import MergeTranscriptActivity, PlanTranscriptionActivity, TranscribeChunkActivity
from clipper.config import Settings, get_settings
from clipper.log import configure_logging, get_logger
from clipper_client import connect, ensure_search_attributes
from workflows.media_job import MediaJob


STAGE_ACTIVITIES = (
    DownloadActivity, TranscribeActivity, QuotesActivity, SummaryActivity, ClipsActivity, ReportActivity,
    CleanupActivity, NotifyActivity, PlanTranscriptionActivity, TranscribeChunkActivity, MergeTranscriptActivity,
)


def build_worker(
    client: Client, settings: Settings, task_queue: str | None = None, interceptors: Sequence[Interceptor] = ()
) -> Worker:
    deps = StageDeps.from_settings(settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[MediaJob],
        activities=[stage(deps).run for stage in STAGE_ACTIVITIES],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
        # After a worker dies, its jobs' next workflow task waits this long on the dead worker's sticky
        # queue before any worker may take it (SDK default 10 s): keep the pause after a crash short.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        interceptors=list(interceptors),
    )


async def run_worker(settings: Settings, task_queue: str | None = None) -> None:
    log = get_logger(task_queue=task_queue or settings.task_queue)
    runtime = prometheus_runtime(settings.metrics_port) if settings.metrics_port else None
    client = await connect(settings, runtime)
    await ensure_search_attributes(client, settings.temporal_namespace)
    worker = build_worker(client, settings, task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker.started", address=settings.temporal_address, storage=str(settings.storage_dir),
                 metrics_port=settings.metrics_port)
        await stop.wait()
        log.info("worker.draining")
    log.info("worker.stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a clipper worker.")
    parser.add_argument("--task-queue", help="task queue (default: CLIPPER_TASK_QUEUE or 'clipper')")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    asyncio.run(run_worker(settings, args.task_queue))


if __name__ == "__main__":
    main()
