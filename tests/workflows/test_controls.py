"""Steering running jobs on the real dev server: pause/resume, pause --now, cancel, priority, manual retry,
search attributes and ETA."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from clipper.job.outputs import Transcript
from clipper.job.request import JobOptions, JobResult
from clipper.job.status import JobState, StageState
from clipper.store.files import JsonlLog
from clipper.store.local import ArtifactStore
from clipper_app.client import JobCancelled, JobFailed
from tests.helpers import later_stages_off, run

from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches, scheduled_activities, wait_for_state
from tests.helpers.jobs import stage_pending, steering, until


class ActivityLog(Interceptor):
    """Records the order in which activities start executing on the worker: (type, job id)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        log = self

        class Record(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                log.started.append((activity.info().activity_type, activity.info().workflow_id))
                return await super().execute_activity(input)

        return Record(next)






def partial_segments(store: ArtifactStore, job_id: str) -> int:
    logs = list((store.root / "jobs" / job_id / ".tmp").glob("transcript-*.partial.jsonl"))
    return len(JsonlLog(logs[0]).read()) if logs else 0


@pytest.mark.slow
def test_pause_waits_at_the_stage_boundary_then_resume_finishes(settings, media_server):
    async def body():
        async with steering(settings) as clipper:
            job = (await clipper.submit(media_server.url("/episode.mp3"))).job_id
            await until(lambda: _stage_is(clipper, job, "transcribe", StageState.running), what="transcription")
            await clipper.pause(job)
            status = await wait_for_state(clipper, job, JobState.paused)
            assert status.paused_since is not None
            # The running stage finishes; the next one does not start while paused.
            await until(lambda: _stage_is(clipper, job, "transcribe", StageState.done), what="transcribe to finish")
            await asyncio.sleep(1.5)
            status = await clipper.status(job)
            assert status.state == JobState.paused and status.stage("quotes").state == StageState.pending
            paused = await clipper.client.list_workflows(f'WorkflowId = "{job}" AND ClipperState = "paused"').__anext__()
            assert paused.id == job
            await clipper.resume(job)
            result = await clipper.result(job)
        return result, await scheduled_activities(settings, job)

    result, scheduled = run(body())
    assert result.state == JobState.done
    assert scheduled[:4] == ["download", "transcribe", "speakers", "quotes"] and scheduled.count("transcribe") == 1


async def _stage_is(clipper, job, stage, state):
    return (await clipper.status(job)).stage(stage).state == state


@pytest.mark.slow
def test_pause_now_cancels_transcription_and_resume_continues_from_saved_segments(settings, long_sample):
    settings = later_stages_off(settings)
    store = ArtifactStore(settings.storage_dir)

    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            await until(lambda: partial_segments(store, job) >= 2, what="saved segments")
            await clipper.pause(job, now=True)
            status = await until(lambda: stage_pending(clipper, job, "transcribe"), what="transcribe interrupted")
            assert status.state == JobState.paused
            kept = partial_segments(store, job)
            assert kept >= 2, "the saved segments must survive a pause --now"
            await clipper.resume(job)
            return job, kept, await clipper.result(job)

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        job, kept, result = run(body(server.url("/long.mp3")))
    assert result.state == JobState.done
    transcript = Transcript.model_validate_json(store.path(job, "transcript.json").read_bytes())
    assert transcript.meta["resumed_from_s"] > 0




@pytest.mark.slow
def test_cancel_mid_transcription_keeps_finished_work_and_removes_temp_files(settings, long_sample):
    store = ArtifactStore(settings.storage_dir)

    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            await until(lambda: partial_segments(store, job) >= 1, what="transcription under way")
            await clipper.cancel(job)
            with pytest.raises(JobCancelled):
                await clipper.result(job)
            return job, await clipper.status(job)

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        job, status = run(body(server.url("/long.mp3")))
    assert status.state == JobState.cancelled
    manifest = store.read_manifest(job).artifacts
    assert {"audio.wav", "media.json"} <= set(manifest) and "transcript.json" not in manifest
    assert_manifest_matches(store, job)
    scratch = store.job_dir(job) / ".tmp"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())


@pytest.mark.slow
def test_priority_one_is_dispatched_before_priority_five(settings, media_server):
    """One activity slot, busy; a backlog of priority-5 jobs, then a priority-1 job: it goes first."""
    # Every stage on the one queue, so the downloads of the backlog wait behind the blocker's transcription.
    settings = settings.model_copy(update={"max_concurrent_activities": 1, "worker_pools": False})
    recorder = ActivityLog()

    async def body():
        async with steering(settings, interceptors=[recorder]) as clipper:
            blocker = (await clipper.submit(media_server.url("/episode.mp3") + "?job=blocker")).job_id
            await until(lambda: ("transcribe", blocker) in recorder.started, what="blocker transcribing")
            low = [(await clipper.submit(media_server.url(f"/episode.mp3?job=low{i}"), priority=5)).job_id
                   for i in range(3)]
            high = (await clipper.submit(media_server.url("/episode.mp3?job=high"), priority=1)).job_id
            backlog = set(low) | {high}
            await until(lambda: sum(j in backlog for _, j in recorder.started) >= 2, what="backlog dispatch")
            for job in [blocker, *backlog]:
                await clipper.handle(job).terminate("test over")
            return [j for t, j in recorder.started if t == "download" and j in backlog], high

    downloads, high = run(body())
    assert downloads[0] == high, downloads


@pytest.mark.slow
def test_failed_stage_waits_for_manual_retry_with_new_options(settings, media_server):
    async def body():
        async with steering(settings) as clipper:
            # No LLM configured: the quotes stage fails with EngineNotConfigured and waits.
            job = (await clipper.submit(media_server.url("/episode.mp3"), JobOptions(text_engine="llm"))).job_id
            status = await wait_for_state(clipper, job, JobState.failed)
            assert status.waiting_since is not None and status.error.type == "EngineNotConfigured"
            assert status.stage("quotes").state == StageState.failed
            await clipper.retry(job, {"text_engine": "offline"})
            return await clipper.result(job)

    result = run(body())
    assert isinstance(result, JobResult) and result.state == JobState.done
    assert result.status.stage("quotes").state == StageState.done


@pytest.mark.slow
def test_unanswered_failure_fails_after_the_retry_wait(settings, media_server):
    settings = settings.model_copy(update={"retry_wait_s": 1.0})

    async def body():
        async with steering(settings) as clipper:
            job = (await clipper.submit(media_server.url("/episode.mp3"), JobOptions(text_engine="llm"))).job_id
            with pytest.raises(JobFailed) as err:
                await asyncio.wait_for(clipper.result(job), 60)
            return err.value

    failed = run(body())
    assert failed.error_type == "EngineNotConfigured" and failed.stage == "quotes"


@pytest.mark.slow
def test_eta_is_reported_while_running_and_cleared_when_done(settings, long_sample):
    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            status = await until(lambda: _eta(clipper, job), what="an ETA")
            result = await clipper.result(job)
            return status, result

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        status, result = run(body(server.url("/long.mp3")))
    assert status.eta_s > 0 and status.duration_s > 200
    assert result.status.eta_s is None
    assert all(s.rate is not None and s.rate >= 0 for s in result.status.stages)


async def _eta(clipper, job):
    status = await clipper.status(job)
    return status if status.eta_s and status.state == JobState.running else None


@pytest.mark.slow
def test_cancel_after_a_spent_pause_now_still_cancels(settings, long_sample):
    """A pause --now whose activity finished anyway must not turn a later cancel into a restart."""

    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            await clipper.pause(job, now=True)  # lands while download runs (or before it starts)
            await wait_for_state(clipper, job, JobState.paused)
            await clipper.resume(job)
            await until(lambda: _stage_is(clipper, job, "transcribe", StageState.running), what="transcription")
            await clipper.cancel(job)
            with pytest.raises(JobCancelled) as err:
                await clipper.result(job)
            return err.value, await scheduled_activities(settings, job)

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        cause, scheduled = run(body(server.url("/long.mp3")))
    assert isinstance(cause, JobCancelled)
    assert scheduled.count("transcribe") == 1 and "quotes" not in scheduled
