"""Follows from a client: a feed or account watched by a Temporal Schedule, a job per new item.

`FollowMethods` is a part of `ClipperClient`. A follow is the schedule `follow-<hex>` (the hex from the source's
canonical URL: following the same source twice finds the first follow); its action starts workflow
`FollowCheck` (overlap SKIP: never two checks of one follow at once) with the follow's `FollowRequest` as input,
so the follow's job options travel in the schedule, never a secret. What the checks saw is the follow's record
in the store (`follow.json`), read here for `follows`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from clipper.asr.models import check_job_model
from clipper.errors import FollowNotFound, InvalidRequest
from clipper.follow.every import EVERY_DEFAULT_S, format_every, phase_s
from clipper.follow.model import (
    RECORD_FILE,
    FollowInfo,
    FollowRecord,
    FollowRequest,
    follow_id_for,
)
from clipper.job.batch import JobTemplate
from clipper.job.request import JobOptions
from clipper.job.stages import FOLLOW, StagePolicy
from clipper.job.status import PRIORITY_DEFAULT, check_priority
from clipper.media.urls import (
    NETWORK_SCHEMES,
    canonical_url,
    check_url_syntax,
    refuse_credentials,
)
from clipper.store.local import ArtifactStore
from clipper_app.client.common import ClientBase, Submitted, check_engines, job_settings
from workflows.follow_check import FollowCheck

FOLLOW_PREFIX = "follow-"
FOLLOW_ID = re.compile(FOLLOW_PREFIX + "[0-9a-f]{16}")  # follow_id_for's shape: nothing else is asked of the server


class FollowMethods(ClientBase):
    """follow, follows, pause/resume, unfollow, check now."""

    store: ArtifactStore  # OutputMethods'

    async def follow(self, source: str, every_s: int = EVERY_DEFAULT_S, options: JobOptions | None = None,
                     priority: int = PRIORITY_DEFAULT, since: datetime | None = None, new_only: bool = False,
                     concurrency: int | None = None) -> Submitted:
        """Start following `source` (a feed, channel, playlist or account URL); the first check runs at once."""
        source = source.strip()
        refuse_credentials(source)
        scheme, _, _ = check_url_syntax(source)
        if scheme not in NETWORK_SCHEMES:
            raise InvalidRequest(f"a followed source must be an http(s) URL, got {source!r}")
        options = options or JobOptions()
        check_engines(options)
        check_job_model(options, self.settings)
        check_priority(priority)
        concurrency = self.settings.batch_concurrency if concurrency is None else concurrency
        canonical = canonical_url(source)
        follow_id = follow_id_for(canonical)
        request = FollowRequest(
            follow_id=follow_id, source=canonical, every_s=every_s, since=since, new_only=new_only,
            max_failures=self.settings.follow_max_failures, concurrency=concurrency, policy=self.follow_policy(),
            job=JobTemplate(options=options, priority=priority, **job_settings(self.settings)))
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                FollowCheck.run, request, id=f"{follow_id}-check", task_queue=self.settings.task_queue,
                static_summary=f"follow: {canonical}"[:200]),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_s),
                                                              offset=timedelta(seconds=phase_s(follow_id, every_s)))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(note=f"clipper follow {canonical} every {format_every(every_s)}"[:200]))
        try:
            await self.client.create_schedule(follow_id, schedule, trigger_immediately=True,
                                              memo={"source": canonical, "every_s": every_s})
        except ScheduleAlreadyRunningError:
            return Submitted(job_id=follow_id, existing=True)
        return Submitted(job_id=follow_id, existing=False)

    def follow_policy(self) -> StagePolicy:
        """The check's retry policy: the stage table's, with this client's CLIPPER_POLICIES__FOLLOW__… over it."""
        override = self.settings.policies.get("follow")
        policy = FOLLOW.policy
        return policy.model_copy(update=override.model_dump(exclude_unset=True)) if override else policy

    async def follows(self) -> list[FollowInfo]:
        """Every follow on this server (its schedule's state, its record's counts), by id."""
        ids = [s.id async for s in await self.client.list_schedules() if s.id.startswith(FOLLOW_PREFIX)]
        found = await asyncio.gather(*(self._info_or_none(i) for i in sorted(ids)))
        return [f for f in found if f is not None]

    async def _info_or_none(self, follow_id: str) -> FollowInfo | None:
        try:
            return await self.follow_info(follow_id)
        except FollowNotFound:  # deleted since the (eventually consistent) list was made
            return None

    async def follow_info(self, follow_id: str) -> FollowInfo:
        desc = await self._describe(follow_id)
        memo = await desc.memo()
        state, info = desc.schedule.state, desc.info
        record = await asyncio.to_thread(self._record, follow_id) or FollowRecord(follow_id=follow_id,
                                                                                  source=memo.get("source", ""))
        return FollowInfo(
            follow_id=follow_id, source=memo.get("source", record.source), title=record.title,
            every_s=int(memo.get("every_s", EVERY_DEFAULT_S)), paused=state.paused,
            note=state.note, next_check_at=None if state.paused or not info.next_action_times
            else info.next_action_times[0], last_check_at=record.last_check_at, last_result=record.last_result,
            failures=record.failures, items_seen=record.items_seen, jobs_started=record.jobs_started,
            recent_jobs=record.recent_jobs)

    def _record(self, follow_id: str) -> FollowRecord | None:
        ref = self.store.valid_ref(follow_id, RECORD_FILE)
        return self.store.read_model(follow_id, ref, FollowRecord) if ref else None

    async def _describe(self, follow_id: str):
        if not FOLLOW_ID.fullmatch(follow_id):
            raise FollowNotFound(f"{follow_id!r} is not a follow id (follow-<hex>): clipper follows lists them")
        try:
            return await self.client.get_schedule_handle(follow_id).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            raise FollowNotFound(f"no follow {follow_id!r} on {self.settings.temporal_address}: "
                                 "clipper follows lists them") from None

    async def pause_follow(self, follow_id: str) -> FollowInfo:
        """No check runs until resumed; jobs already started go on."""
        await self._describe(follow_id)
        await self.client.get_schedule_handle(follow_id).pause(note="paused by clipper follow --pause")
        return await self.follow_info(follow_id)

    async def resume_follow(self, follow_id: str) -> FollowInfo:
        """Checks again at its interval (a follow that paused itself after failures starts counting anew)."""
        await self._describe(follow_id)
        await self.client.get_schedule_handle(follow_id).unpause(note="resumed by clipper follow --resume")
        return await self.follow_info(follow_id)

    async def check_follow_now(self, follow_id: str) -> None:
        """One check now, besides the interval's (skipped if one is running)."""
        await self._describe(follow_id)
        await self.client.get_schedule_handle(follow_id).trigger()

    async def unfollow(self, follow_id: str) -> None:
        """Deletes the schedule: no more checks (a check running now finishes); jobs started go on, the record
        stays in the store (following the source again picks up where it was: nothing seen is started again)."""
        await self._describe(follow_id)
        await self.client.get_schedule_handle(follow_id).delete()
