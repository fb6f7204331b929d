"""Activities `check_follow` and `follow_failed`: a follow's check, over the plain functions of clipper/follow/.

`check_follow` lists the source (in a thread: network and parsing), starts a `MediaJob` for each item not seen
before, at most `concurrency` starts in flight, and writes the follow's record (`follow.json`, atomically) last.
Each job's workflow id comes from the follow and the item: when a worker dies between a start and the record,
the retried check's start of the same id is refused by the server (`WorkflowAlreadyStartedError`; a closed job
too: the id's reuse policy is REJECT_DUPLICATE), and the item is simply counted as seen. `follow_failed` records
a check that gave up and pauses the follow's schedule after its limit of failures in a row.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.runtime import ERROR_BUDGET, StageDeps, to_application_error
from clipper.errors import ClipperError
from clipper.follow.feed import list_source, passes_with_time
from clipper.follow.model import (
    FOLLOW_STAGE,
    RECORD_FILE,
    CheckPlan,
    FeedItem,
    FollowCheckResult,
    FollowFailure,
    FollowJob,
    FollowRecord,
    FollowRequest,
    job_id_for_item,
    plan_check,
    remember,
    started,
)
from clipper.job.request import JobRequest
from clipper.store.local import now_utc

HEARTBEAT_EVERY_S = 2.0
# Prometheus (the SDK's meter, as the stages' metrics: activities/metrics.py), each with the activity's namespace,
# task queue and type; `clipper_follow_items_seen` per follow, so `count()` of it is the follows checked.
CHECKS = "clipper_follow_checks_total"  # result: ok | failed
ITEMS_FOUND = "clipper_follow_items_found_total"  # new items a check found (started, skipped or left)
JOBS_STARTED = "clipper_follow_jobs_started_total"
FAILURES = "clipper_follow_failures_total"  # failed checks by error type (one per check that gave up)
ITEMS_SEEN = "clipper_follow_items_seen"


def record_metrics(follow_id: str, result: FollowCheckResult, seen: int) -> None:
    meter = activity.metric_meter()
    meter.create_counter(CHECKS, "Follow checks").add(1, {"result": "failed" if result.error else "ok"})
    if result.error:
        kind = result.error.partition(":")[0] or "Error"
        meter.create_counter(FAILURES, "Follow checks that gave up").add(1, {"error_type": kind})
    else:
        meter.create_counter(ITEMS_FOUND, "New items follow checks found").add(result.new + result.skipped)
        meter.create_counter(JOBS_STARTED, "Jobs follow checks started").add(result.started)
    meter.create_gauge(ITEMS_SEEN, "Items a follow has seen").set(seen, {"follow_id": follow_id})


async def _heartbeats() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_S)


def load_record(deps: StageDeps, request: FollowRequest) -> FollowRecord:
    ref = deps.store.valid_ref(request.follow_id, RECORD_FILE)
    if ref is None:
        return FollowRecord(follow_id=request.follow_id, source=request.source)
    return deps.store.read_model(request.follow_id, ref, FollowRecord)


class CheckFollowActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="check_follow")
    async def run(self, request: FollowRequest) -> FollowCheckResult:
        # Heartbeats all along (listing a long feed included): a check whose worker died is retried within the
        # row's short heartbeat timeout, not held until its start-to-close timeout (the schedule skips meanwhile).
        beating = asyncio.create_task(_heartbeats())
        try:
            return await self.check(request)
        finally:
            beating.cancel()

    async def check(self, request: FollowRequest) -> FollowCheckResult:
        log = structlog.get_logger().bind(follow_id=request.follow_id, attempt=activity.info().attempt)
        try:
            record = await asyncio.to_thread(load_record, self.deps, request)
            plan, title = await asyncio.to_thread(self.plan, request, record)
        except ClipperError as err:
            log.warning("follow.source_failed", error=err.type_name, message=err.message)
            # The error budget (the policy's max_attempts; lost workers' attempts come on top of it in the policy):
            # asked of the runtime's header, approximated by the attempt number since a check keeps no error count.
            budget = ERROR_BUDGET.get()
            spent = budget is not None and activity.info().attempt >= budget
            raise to_application_error(err, non_retryable=spent or not passes_with_time(err)) from None
        jobs = await self.start_jobs(request, plan)
        remember(record, [*plan.skip, *(key for key, _ in plan.start)])
        started(record, jobs)
        record.title = title or record.title
        record.checks += 1
        record.first_done, record.last_check_at, record.failures = True, now_utc(), 0
        record.paused_by_failures = False
        record.last_result = f"ok: {len(plan.start) + plan.left} new" + (f", {plan.left} left for the next check"
                                                                        if plan.left else "")
        await asyncio.to_thread(self.deps.store.put_model, request.follow_id, RECORD_FILE, record, FOLLOW_STAGE)
        log.info("follow.checked", listed=plan.listed, started=len(jobs), skipped=len(plan.skip), left=plan.left)
        result = FollowCheckResult(follow_id=request.follow_id, listed=plan.listed, new=len(plan.start) + plan.left,
                                   started=len(jobs), skipped=len(plan.skip), left=plan.left)
        record_metrics(request.follow_id, result, record.items_seen)
        return result

    def plan(self, request: FollowRequest, record: FollowRecord) -> tuple[CheckPlan, str | None]:
        listing = list_source(request.source, self.deps.settings)
        plan = plan_check(request, record, listing.items())
        return plan, listing.title

    async def start_jobs(self, request: FollowRequest, plan: CheckPlan) -> list[FollowJob]:
        client, queue = self.deps.client, activity.info().task_queue
        gate, jobs = asyncio.Semaphore(request.concurrency), []

        async def start(key: str, item: FeedItem) -> None:
            job_id = job_id_for_item(key)
            job = JobRequest.model_validate({**request.job.model_dump(), "url": item.url})
            async with gate:
                try:
                    await client.start_workflow(
                        "MediaJob", job, id=job_id, task_queue=queue, priority=Priority(priority_key=job.priority),
                        # Never a second job for an item: not while it runs, not after it ended.
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        static_summary=f"{request.follow_id}: {item.title or item.url}"[:200],
                        static_details=f"clipper job for {item.url}, started by {request.follow_id}")
                except WorkflowAlreadyStartedError:
                    pass  # started by an earlier attempt of this check that died before its record was written
                jobs.append(FollowJob(job_id=job_id, url=item.url, title=item.title, at=now_utc()))

        await asyncio.gather(*(start(key, item) for key, item in plan.start))
        return jobs


class FollowFailedActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="follow_failed")
    async def run(self, failure: FollowFailure) -> FollowCheckResult:
        request = failure.request
        record = await asyncio.to_thread(load_record, self.deps, request)
        record.checks += 1
        record.failures += 1
        record.last_check_at, record.last_result = now_utc(), f"error {failure.error}"
        pause = record.failures >= request.max_failures and not record.paused_by_failures
        if pause:
            note = (f"paused after {record.failures} failed checks in a row: {failure.error}"[:300])
            await self.deps.client.get_schedule_handle(request.follow_id).pause(note=note)
            record.paused_by_failures = True
        await asyncio.to_thread(self.deps.store.put_model, request.follow_id, RECORD_FILE, record, FOLLOW_STAGE)
        structlog.get_logger().warning("follow.check_failed", follow_id=request.follow_id, error=failure.error,
                                       failures=record.failures, paused=pause)
        result = FollowCheckResult(follow_id=request.follow_id, error=failure.error, failures=record.failures,
                                   paused=pause)
        record_metrics(request.follow_id, result, record.items_seen)
        return result
