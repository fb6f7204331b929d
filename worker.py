"""Runs clipper workers: the job workflows and the stage activities, by pool.

Pools (clipper/config.py `POOLS`): `workflow` polls the job's own queue (`clipper`): the MediaJob and
BatchJob workflows, the small batch activities, and every stage activity of jobs started before the pools
existed; `io` (`clipper-io`: download, clips, report, cleanup, notify), `cpu` (`clipper-cpu`: transcribe)
and `llm` (`clipper-llm`: quotes, summary). `worker.py` runs every pool in one process; `--queues cpu` (or
`io,llm`, ...) runs a subset, so each pool scales on its own hosts (with a shared artifact store).

SIGTERM/SIGINT drain gracefully: the worker stops polling, running activities get
`CLIPPER_GRACEFUL_SHUTDOWN_S` to finish, and whatever is cut short resumes on another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.cleanup import CleanupActivity
from activities.clips import ClipsActivity
from activities.download import DownloadActivity
from activities.expand import ExpandBatchActivity, ReadBatchItemsActivity
from activities.forward import ForwardPriorityActivity
from activities.metrics import prometheus_runtime
from activities.notify import NotifyActivity
from activities.quotes import QuotesActivity
from activities.report import ReportActivity
from activities.runtime import StageDeps
from activities.summary import SummaryActivity
from activities.transcribe import TranscribeActivity
from activities.transcribe_chunks import MergeTranscriptActivity, PlanTranscriptionActivity, TranscribeChunkActivity
from clipper.config import POOLS, Settings, get_settings, pool_queue
from clipper.errors import InvalidRequest
from clipper.log import configure_logging, get_logger
from clipper_client import connect, ensure_search_attributes
from workflows.batch_job import BatchJob
from workflows.media_job import MediaJob

POOL_ACTIVITIES = {
    "io": (DownloadActivity, ClipsActivity, ReportActivity, CleanupActivity, NotifyActivity),
    "cpu": (TranscribeActivity, PlanTranscriptionActivity, TranscribeChunkActivity, MergeTranscriptActivity),
    "llm": (QuotesActivity, SummaryActivity),
}
BATCH_ACTIVITIES = (ExpandBatchActivity, ReadBatchItemsActivity, ForwardPriorityActivity)
# The workflow pool also serves every stage: jobs started before the pools (or with CLIPPER_WORKER_POOLS off)
# schedule their stages on the job's own queue.
STAGE_ACTIVITIES = (*BATCH_ACTIVITIES, *(a for pool in POOL_ACTIVITIES.values() for a in pool))


def parse_pools(text: str | None) -> tuple[str, ...]:
    """`io,cpu` → ("io", "cpu"); None/empty/"all" → every pool. Unknown names are a clear error."""
    if not text or text.strip() == "all":
        return POOLS
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in POOLS]
    if unknown or not names:
        raise InvalidRequest(f"unknown pool(s) {', '.join(unknown) or repr(text)}: choose from {', '.join(POOLS)}")
    return names


class WorkerPools(contextlib.AbstractAsyncContextManager):
    """One SDK `Worker` per pool, on one client, started and drained together."""

    def __init__(self, workers: dict[str, Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> WorkerPools:
        for worker in self.workers.values():
            await self._stack.enter_async_context(worker)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._stack.aclose()


def build_worker(
    client: Client, settings: Settings, task_queue: str | None = None, interceptors: Sequence[Interceptor] = (),
    pools: Sequence[str] = POOLS,
) -> WorkerPools:
    deps, queue = StageDeps.from_settings(settings), task_queue or settings.task_queue
    workers = {}
    for pool in pools:
        common = dict(
            task_queue=pool_queue(queue, pool),
            max_concurrent_activities=settings.pool_concurrency.get(pool, settings.max_concurrent_activities),
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            interceptors=list(interceptors),
        )
        if pool == "workflow":
            workers[pool] = Worker(
                client, workflows=[MediaJob, BatchJob], activities=[a(deps).run for a in STAGE_ACTIVITIES],
                max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
                # After a worker dies, its jobs' next workflow task waits this long on the dead worker's sticky
                # queue before any worker may take it (SDK default 10 s): keep the pause after a crash short.
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
                **common)
        else:
            # The server spaces out llm activities across every llm worker (a rate limit for the provider).
            rate = settings.llm_activities_per_s if pool == "llm" and settings.llm_activities_per_s > 0 else None
            workers[pool] = Worker(client, activities=[a(deps).run for a in POOL_ACTIVITIES[pool]],
                                   max_task_queue_activities_per_second=rate, **common)
    return WorkerPools(workers)


async def run_worker(settings: Settings, task_queue: str | None = None, pools: Sequence[str] = POOLS) -> None:
    log = get_logger(task_queue=task_queue or settings.task_queue, pools=list(pools))
    runtime = prometheus_runtime(settings.metrics_port) if settings.metrics_port else None
    client = await connect(settings, runtime)
    await ensure_search_attributes(client, settings.temporal_namespace)
    worker = build_worker(client, settings, task_queue, pools=pools)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker.started", address=settings.temporal_address, storage=str(settings.storage_dir),
                 metrics_port=settings.metrics_port, queues=[w.task_queue for w in worker.workers.values()])
        await stop.wait()
        log.info("worker.draining")
    log.info("worker.stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a clipper worker.")
    parser.add_argument("--task-queue", help="the jobs' task queue (default: CLIPPER_TASK_QUEUE or 'clipper'); "
                                             "pools poll <queue>-io, <queue>-cpu, <queue>-llm")
    parser.add_argument("--queues", metavar="POOLS", help=f"pools to run, comma-separated: {', '.join(POOLS)} "
                                                          "(default: all)")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        pools = parse_pools(args.queues)
    except InvalidRequest as err:
        parser.error(str(err))
    asyncio.run(run_worker(settings, args.task_queue, pools))


if __name__ == "__main__":
    main()
