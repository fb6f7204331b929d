"""MediaJob's controls in seconds, with stand-in activities (tests/helpers/standins.py): pause at the stage
boundary and --now, cancel, priority, manual retry and abandon. Tests assert which stand-ins ran, in what order,
with which input and priority, and what the client reports."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from clipper.errors import InvalidRequest
from clipper.job.status import JobState, StageState
from clipper_app.client import JobCancelled, JobFailed
from tests.helpers import PIPELINE, after, run, through
from tests.helpers.standins import (
    StandIns, fail, harness, outcome, run_job, scheduled, status_when, until, wait_for_retry,
)
from workflows.media_job import MediaJob

# --- 1. pause ---

@pytest.mark.slow
def test_pause_waits_at_the_stage_boundary_and_resume_continues(settings):
    """A plain pause lets the running stage finish but starts no further stage until resumed."""
    fakes = StandIns(held={"transcribe"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await until(lambda: fakes.names() == ["download", "transcribe"], what="transcribe to start")
            await clipper.pause(job)
            await status_when(clipper, job, lambda s: s.state == JobState.paused, "paused")
            fakes.held.clear()
            status = await status_when(clipper, job, lambda s: s.stage("transcribe").state == StageState.done,
                                       "transcribe to finish")
            assert status.state == JobState.paused and status.paused_since is not None
            assert status.stage("quotes").state == StageState.pending
            assert await scheduled(clipper, job) == ["download", "transcribe"]
            await clipper.resume(job)
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done and result.status.paused_since is None
    assert fakes.names() == PIPELINE and fakes.cancelled == []


@pytest.mark.slow
def test_pause_now_cancels_the_running_stage_and_resume_starts_it_again(settings):
    """`pause --now` cancels the running activity through its heartbeat; it is not restarted until resume."""
    fakes = StandIns(held={"transcribe"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await until(lambda: fakes.of("transcribe"), what="transcribe to start")
            await clipper.pause(job, now=True)
            await until(lambda: fakes.cancelled == ["transcribe"], what="the stand-in to be cancelled")
            status = await status_when(clipper, job, lambda s: s.stage("transcribe").state == StageState.pending,
                                       "the interrupted stage to be pending again")
            assert status.state == JobState.paused
            assert await scheduled(clipper, job) == ["download", "transcribe"]  # not restarted while paused
            fakes.held.clear()
            await clipper.resume(job)
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done
    assert fakes.names() == [*through("transcribe"), "transcribe", *after("transcribe")]
    assert fakes.cancelled == ["transcribe"]


# --- 2. cancel ---

@pytest.mark.parametrize("when", ["running", "paused"])
def test_cancel_ends_the_job_and_discards_scratch(settings, when):
    """Cancelled mid-stage (the stand-in is cancelled) or while paused at a boundary: the job ends cancelled,
    no later stage starts, and the cleanup helper runs once for the job."""
    fakes = StandIns(held={"transcribe"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await until(lambda: fakes.of("transcribe"), what="transcribe to start")
            if when == "paused":
                await clipper.pause(job)
                await status_when(clipper, job, lambda s: s.state == JobState.paused, "paused")
                fakes.held.clear()
                await status_when(clipper, job, lambda s: s.stage("transcribe").state == StageState.done, "transcribe")
            await clipper.cancel(job)
            with pytest.raises(JobCancelled):
                await outcome(clipper, job)
            return job, await clipper.status(job)

    job, status = run(body())
    assert status.state == JobState.cancelled and status.finished_at is not None
    assert fakes.names() == ["download", "transcribe", "discard_scratch"]
    assert fakes.of("discard_scratch")[0].arg == job
    assert fakes.cancelled == (["transcribe"] if when == "running" else [])
    # Every stage shows how it ended: none reads running or pending after the job is over.
    states = {s.name: s.state for s in status.stages}
    assert states == {"download": StageState.done,
                      "transcribe": StageState.cancelled if when == "running" else StageState.done,
                      **{name: StageState.skipped for name in after("transcribe")}}


# --- 3. priority ---

def test_set_priority_applies_to_activities_started_afterwards(settings):
    """The update changes the priority of later activities only; out-of-range values are refused by the client
    (typed InvalidRequest) and, sent past it, by the workflow's validator without a trace in the history."""
    fakes = StandIns(held={"transcribe"})

    async def body():
        async with harness(settings, fakes, priority=4) as (clipper, job):
            await until(lambda: fakes.of("transcribe"), what="transcribe to start")
            assert await clipper.set_priority(job, 1) == 1
            for bad in (0, 6, True):
                with pytest.raises(InvalidRequest):
                    await clipper.set_priority(job, bad)
            with pytest.raises(WorkflowUpdateFailedError):
                await clipper.handle(job).execute_update(MediaJob.set_priority, 9)
            assert (await clipper.status(job)).priority == 1
            fakes.held.clear()
            result = await outcome(clipper, job)
            accepted = [e async for e in clipper.handle(job).fetch_history_events()
                        if e.HasField("workflow_execution_update_accepted_event_attributes")]
            return result, len(accepted)

    result, accepted = run(body())
    assert result.status.priority == 1 and accepted == 1
    assert [(c.name, c.priority) for c in fakes.calls] == [
        *[(s, 4) for s in through("transcribe")], *[(s, 1) for s in after("transcribe")]]


# --- 4. manual retry / abandon ---

def test_manual_retry_reruns_the_stage_with_changed_options(settings):
    """A non-retryable failure makes the job wait; `retry` with new options re-runs that stage with them, and
    the later stages get them too."""
    fakes = StandIns(failures={"quotes": [fail("SomeError")]})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await wait_for_retry(clipper, fakes, job)
            with pytest.raises(InvalidRequest):
                await clipper.retry(job, {"colour": "red"})  # refused before anything is sent
            await clipper.retry(job, {"text_engine": "offline"})
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done and result.status.waiting_since is None and result.status.error is None
    assert fakes.names() == [*through("quotes"), "notify", "quotes", *after("quotes")]
    assert fakes.of("notify")[0].arg.event == "waiting_for_retry"
    assert [c.arg.options.text_engine for c in fakes.of("quotes")] == [None, "offline"]
    assert fakes.of("summary")[0].arg.options.text_engine == "offline"
    assert fakes.of("clips")[0].arg.options.text_engine == "offline"


def test_abandon_fails_the_job_with_the_stage_error(settings):
    fakes = StandIns(failures={"quotes": [fail("SomeError")]})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await wait_for_retry(clipper, fakes, job)
            await clipper.abandon(job)
            with pytest.raises(JobFailed) as failed:
                await outcome(clipper, job)
            return failed.value, await clipper.status(job)

    failed, status = run(body())
    assert (failed.stage, failed.error_type, failed.error_message) == ("quotes", "SomeError", "no quotes today")
    assert [(s.name, s.state) for s in status.stages] == [
        *[(n, StageState.done) for n in through("speakers")], ("quotes", StageState.failed),
        *[(n, StageState.skipped) for n in after("quotes")]]
    assert fakes.names() == ["download", "transcribe", "speakers", "quotes", "notify", "notify", "discard_scratch"]
    assert [c.arg.event for c in fakes.of("notify")] == ["waiting_for_retry", "failed"]


# A job waiting for a manual retry can be paused: the retry then waits for resume.

def test_a_pause_while_waiting_for_a_retry_holds_the_retried_stage(settings):
    fakes = StandIns(failures={"quotes": [fail("SomeError")]})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await wait_for_retry(clipper, fakes, job)
            await clipper.pause(job)
            await clipper.retry(job)
            status = await status_when(clipper, job, lambda s: s.waiting_since is None, "the retry to be taken")
            assert status.state == JobState.paused  # resume() and wait_for_retry() expect exactly this case
            assert (await scheduled(clipper, job)).count("quotes") == 1
            await clipper.resume(job)
            return await outcome(clipper, job)

    assert run(body()).state == JobState.done


# Whether an error ends the job is a property of its class, inherited: LanguageNotSupported is an InvalidRequest.

@pytest.mark.parametrize("error_type", ["InvalidRequest", "LanguageNotSupported", "UnknownAsrModel"])
def test_an_input_error_a_stage_meets_fails_the_job_at_once(settings, error_type):
    fakes = StandIns(failures={"transcribe": [fail(error_type, "transcribe in English or choose base")]})
    with pytest.raises(JobFailed) as raised:
        run(run_job(settings, fakes))  # `run_job` fails the test if the job waits for a retry instead
    failed = raised.value
    assert (failed.stage, failed.error_type) == ("transcribe", error_type)
    assert [c.arg.event for c in fakes.of("notify")] == ["failed"]
