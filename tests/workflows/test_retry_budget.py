"""Two retry budgets: attempts that end in an error are limited by the stage's `max_attempts`;
attempts whose worker was lost (a heartbeat timeout) get `lost_worker_attempts` more on top.

MediaJob on the real dev server with stand-ins (tests/helpers/standins.py), except for the stage under test: its
stand-in runs the real activity runtime (`activities.runtime.run_stage`, with a real artifact store), which
counts errors and decides whether another attempt follows. A lost worker is a stand-in that stops heartbeating
and sleeps past its heartbeat timeout, as a killed worker would.
"""

from __future__ import annotations

import pytest
import asyncio
import json

from temporalio import activity

from activities.runtime import StageDeps, run_stage
from clipper.errors import TranscriptionFailed
from clipper.job.messages import QuotesOutput, TextStageInput, TranscribeInput, TranscribeOutput
from clipper.job.stages import StagePolicy
from clipper.job.stages import STAGES
from clipper.job.status import JobState, StageState
from clipper.store.local import ArtifactStore
from tests.helpers import run
from tests.helpers.standins import POLICY, StandIns, harness, status_when, until

LOST_FOR_GOOD_S = 3600.0  # a lost worker's attempt never ends by itself; the worker's shutdown cancels it


class RealRuntime(StandIns):
    """Stand-ins, but `quotes` and `transcribe` go through the real runtime: `lost` first attempts of
    `transcribe` are lost workers; every other attempt of the two raises `errors[stage]()`."""

    def __init__(self, store: ArtifactStore, settings, lost: int = 0, errors: dict | None = None) -> None:
        super().__init__()
        self.deps = StageDeps(settings=settings, store=store)
        self.lost = lost
        self.errors = errors or {}
        self.attempts: dict[str, list[int]] = {"quotes": [], "transcribe": []}

    async def failing_stage(self, stage: str, request, output_type):
        attempt = activity.info().attempt
        self.attempts[stage].append(attempt)
        if stage == "transcribe" and attempt <= self.lost:
            await asyncio.sleep(LOST_FOR_GOOD_S)  # no heartbeat: the server times this attempt out

        def work(_run):
            raise self.errors[stage]()
        return await run_stage(self.deps, stage, request, output_type, work)

    @activity.defn(name="quotes")
    async def quotes(self, request: TextStageInput) -> QuotesOutput:
        if "quotes" not in self.errors:
            return await super().quotes(request)
        return await self.failing_stage("quotes", request, QuotesOutput)

    @activity.defn(name="transcribe")
    async def transcribe(self, request: TranscribeInput) -> TranscribeOutput:
        if "transcribe" not in self.errors:
            return await super().transcribe(request)
        return await self.failing_stage("transcribe", request, TranscribeOutput)


def policies(**stage_policies: StagePolicy) -> dict[str, StagePolicy]:
    return {**{s: POLICY for s in STAGES}, **stage_policies}


@pytest.mark.slow
def test_a_deterministic_exception_is_tried_max_attempts_times_and_reported_with_its_type_and_stage(settings,
                                                                                                   tmp_path):
    """A bug (ZeroDivisionError) is retried exactly `max_attempts` times, though the retry policy would allow
    `lost_worker_attempts` more; the job then waits for a manual retry, and its status and notification name the
    exception's type and the stage, with the attempts used and no "will retry"."""
    store = ArtifactStore(tmp_path / "store")
    fakes = RealRuntime(store, settings, errors={"quotes": lambda: 1 / 0})
    quotes = POLICY.model_copy(update={"max_attempts": 3, "lost_worker_attempts": 4})

    async def body():
        async with harness(settings, fakes, policies=policies(quotes=quotes)) as (clipper, job):
            status = await status_when(clipper, job, lambda s: s.waiting_since is not None, "the job to wait")
            await until(lambda: fakes.of("notify"), what="the waiting_for_retry notice")
            return status, fakes.of("notify")[0].arg, job

    status, note, job = run(body())
    assert fakes.attempts["quotes"] == [1, 2, 3]
    assert status.state == JobState.failed and status.current_stage == "quotes"
    entry = status.stage("quotes")
    assert entry.state == StageState.failed and entry.error == status.error
    assert status.error.type == "ZeroDivisionError" and status.error.attempts == 3
    message = status.error.message
    assert message.startswith("unexpected ZeroDivisionError in stage quotes: division by zero"), message
    assert "gave up after 3 failed attempts" in message and "will retry" not in message
    assert (note.event, note.stage, note.error_type) == ("waiting_for_retry", "quotes", "ZeroDivisionError")
    assert note.error_message == message
    # The count is durable, in the job's store: a record per scheduled activity.
    records = [json.loads(p.read_text()) for p in store.job_dir(job).glob(".receipts/errors-*.json")]
    assert records == [{"errors": 3, "last_type": "ZeroDivisionError", "last_attempt": 3}]


@pytest.mark.slow
def test_lost_workers_do_not_use_up_the_error_budget(settings, tmp_path):
    """Three attempts lost (no heartbeat, timed out) and then two errors: with max_attempts=2 and
    lost_worker_attempts=3 that is five attempts, the last error final. Before the two budgets, the second
    timeout ended the stage (StageTimedOut)."""
    store = ArtifactStore(tmp_path / "store")
    busy = "the speech API is busy or failing (HTTP 503); will retry"  # an engine's wording, "will retry" and all
    fakes = RealRuntime(store, settings, lost=3, errors={"transcribe": lambda: TranscriptionFailed(busy)})
    transcribe = POLICY.model_copy(update={"max_attempts": 2, "lost_worker_attempts": 3, "heartbeat_timeout_s": 1})

    async def body():
        async with harness(settings, fakes, policies=policies(transcribe=transcribe)) as (clipper, job):
            return await status_when(clipper, job, lambda s: s.waiting_since is not None, "the job to wait")

    status = run(body())
    assert fakes.attempts["transcribe"] == [1, 2, 3, 4, 5]
    assert status.current_stage == "transcribe"
    assert status.error.type == "TranscriptionFailed" and status.error.attempts == 5
    assert status.error.message == ("the speech API is busy or failing (HTTP 503); gave up after 2 failed attempts "
                                    "and 3 lost workers")


@pytest.mark.slow
def test_without_lost_worker_attempts_a_timeout_uses_the_common_budget(settings, tmp_path):
    """A policy that grants lost workers nothing (CLIPPER_POLICIES__TRANSCRIBE__LOST_WORKER_ATTEMPTS=0) keeps one
    budget for both, as before there were two."""
    store = ArtifactStore(tmp_path / "store")
    fakes = RealRuntime(store, settings, lost=1, errors={"transcribe": lambda: TranscriptionFailed("busy")})
    transcribe = POLICY.model_copy(update={"max_attempts": 2, "lost_worker_attempts": 0, "heartbeat_timeout_s": 1})

    async def body():
        async with harness(settings, fakes, policies=policies(transcribe=transcribe)) as (clipper, job):
            return await status_when(clipper, job, lambda s: s.waiting_since is not None, "the job to wait")

    status = run(body())
    assert fakes.attempts["transcribe"] == [1, 2]
    assert status.error.type == "TranscriptionFailed"
    assert status.error.message == "busy; gave up after 1 failed attempt and 1 lost worker"
