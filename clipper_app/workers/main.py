"""`worker.py` / `clipper-worker`: run clipper's worker pools until SIGTERM or SIGINT.

SIGTERM/SIGINT drain gracefully: the worker stops polling, running activities get
`CLIPPER_GRACEFUL_SHUTDOWN_S` to finish, and whatever is cut short resumes on another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from activities.metrics import prometheus_runtime
from clipper.config import Settings, get_settings
from clipper.errors import ClipperError, InvalidRequest
from clipper.job.stages import POOLS
from clipper.ops.log import configure_logging, get_logger
from clipper_app.client.common import connect, ensure_search_attributes
from clipper_app.workers.pools import build_worker, parse_pools


async def run_worker(settings: Settings, task_queue: str | None = None, pools: Sequence[str] = POOLS) -> None:
    log = get_logger(task_queue=task_queue or settings.task_queue, pools=list(pools))
    runtime, metrics_port = None, None
    if settings.metrics_port is not None:  # MetricsPortInUse when taken: one line from main(), no traceback
        runtime, metrics_port = prometheus_runtime(settings.metrics_port, settings.metrics_host)
    client = await connect(settings, runtime)
    await ensure_search_attributes(client, settings.temporal_namespace)
    worker = build_worker(client, settings, task_queue, pools=pools)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker.started", address=settings.temporal_address, storage=str(settings.storage_dir),
                 metrics=f"http://{settings.metrics_host}:{metrics_port}/metrics" if metrics_port else None,
                 metrics_port=metrics_port, queues=[w.task_queue for w in worker.workers.values()])
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
    try:
        asyncio.run(run_worker(settings, args.task_queue, pools))
    except ClipperError as err:  # a worker that cannot start says why in one line, like the CLI
        print(f"error {err.type_name}: {err.message}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
