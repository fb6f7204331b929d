"""clipper's workers: the job workflows and the stage activities, registered by pool from the stage table.

Pools (`clipper/job/stages.py`): `workflow` polls the job's own queue (`clipper`): the MediaJob and BatchJob
workflows, the small batch activities, and every stage activity of jobs submitted with
CLIPPER_WORKER_POOLS=false; `io`, `cpu` and `llm` poll `clipper-io`, `clipper-cpu`, `clipper-llm` and run the
activities of the stages the table puts there. `worker.py` runs every pool in one process; `--queues cpu` (or
`io,llm`, ...) runs a subset, so each pool scales on its own hosts (with a shared artifact store).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities import activity_classes
from activities.metrics import create_zero_series
from activities.runtime import HEARTBEAT_THROTTLE, StageDeps
from clipper.config import Settings
from clipper.errors import InvalidRequest
from clipper.job.stages import ACTIVITY_STAGES, POOLS, pool_queue
from clipper_app.client.breakers import BreakerClient
from clipper_app.workers.retry_budget import RetryBudgetInterceptor
from workflows.batch_job import BatchJob
from workflows.follow_check import FollowCheck
from workflows.imported_job import ImportedJob
from workflows.media_job import MediaJob
from workflows.name_speakers import NameSpeakers
from workflows.provider_breaker import ProviderBreaker

# Registration follows the stage table: each activity type runs on its stage's pool (ACTIVITY_STAGES), found
# among the activity classes by its type name. The workflow pool also serves every stage: jobs submitted with
# CLIPPER_WORKER_POOLS=false schedule their stages on the job's own queue.
ACTIVITY_TYPES: dict[str, type] = {name: activity_classes()[name] for name in ACTIVITY_STAGES}
POOL_ACTIVITIES: dict[str, tuple[type, ...]] = {
    pool: tuple(cls for name, cls in ACTIVITY_TYPES.items() if ACTIVITY_STAGES[name].pool == pool)
    for pool in POOLS if pool != "workflow"
}
STAGE_ACTIVITIES: tuple[type, ...] = tuple(ACTIVITY_TYPES.values())


def activity_type(cls: type) -> str:
    return activity._Definition.must_from_callable(cls.run).name


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
    deps.client = client
    if settings.breaker_enabled:  # the providers' breakers live on the job's queue, shared by its workers
        deps.breakers = BreakerClient(client, queue, settings.breaker_policy())
    workers = {}
    for pool in pools:
        common = dict(
            task_queue=pool_queue(queue, pool),
            max_concurrent_activities=settings.pool_concurrency.get(pool, settings.max_concurrent_activities),
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            interceptors=[RetryBudgetInterceptor(), *interceptors],
            # Cancellation (cancel, pause --now) reaches an activity only in a heartbeat's answer; by default the
            # SDK holds heartbeats back for 0.8 x the heartbeat timeout (24-48 s here): send them every second.
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        )
        if pool == "workflow":
            workers[pool] = Worker(
                client, workflows=[MediaJob, BatchJob, NameSpeakers, ProviderBreaker, ImportedJob, FollowCheck],
                activities=[a(deps).run for a in STAGE_ACTIVITIES],
                max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
                max_concurrent_workflow_task_polls=settings.workflow_task_polls,
                # After a worker dies, its jobs' next workflow task waits this long on the dead worker's sticky
                # queue before any worker may take it (SDK default 10 s): keep the pause after a crash short.
                sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
                **common)
        else:
            # The server spaces out llm activities across every llm worker (a rate limit for the provider).
            rate = settings.llm_activities_per_s if pool == "llm" and settings.llm_activities_per_s > 0 else None
            workers[pool] = Worker(client, activities=[a(deps).run for a in POOL_ACTIVITIES[pool]],
                                   max_task_queue_activities_per_second=rate, **common)
        registered = STAGE_ACTIVITIES if pool == "workflow" else POOL_ACTIVITIES[pool]
        create_zero_series(client, common["task_queue"], [activity_type(a) for a in registered])
    return WorkerPools(workers)
