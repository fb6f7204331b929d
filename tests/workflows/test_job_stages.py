"""MediaJob's stage logic in seconds, with stand-in activities (tests/helpers/standins.py): a corrupt input
rebuilds the download, and chunked transcription fans out in a bounded window and merges in order."""

from __future__ import annotations

import pytest

from clipper.job.status import JobState, StageProgress, StageState
from clipper_app.client import JobCancelled, JobFailed
from tests.helpers import after, run, through
from tests.helpers.standins import StandIns, fail, harness, outcome, run_job, scheduled, status_when, until
from workflows.chunked_transcription import MAX_PARALLEL_CHUNKS
from workflows.media_job import MAX_REBUILDS

# --- 5. corrupt input ---

@pytest.mark.parametrize("stage", ["transcribe", "speakers", "clips"])
def test_corrupt_audio_rebuilds_the_download_and_runs_the_stage_again(settings, stage):
    """A consumer that finds the audio corrupt sends the job back to `download` with rebuild=True, at once
    (no wait for a manual retry, no notice)."""
    fakes = StandIns(failures={stage: [fail("CorruptArtifact", "audio.wav does not match its sha256")]})
    result = run(run_job(settings, fakes))
    assert result.state == JobState.done
    assert fakes.names() == [*through(stage), "download", stage, *after(stage)]
    assert [c.arg.rebuild for c in fakes.of("download")] == [False, True]


def test_corrupt_audio_gives_up_after_max_rebuilds(settings):
    fakes = StandIns(failures={"transcribe": [fail("CorruptArtifact", "still corrupt")] * (MAX_REBUILDS + 1)})
    with pytest.raises(JobFailed) as raised:
        run(run_job(settings, fakes))
    failed = raised.value
    assert (failed.stage, failed.error_type, failed.error_message) == ("transcribe", "CorruptArtifact", "still corrupt")
    assert fakes.names() == ["download", "transcribe"] * (MAX_REBUILDS + 1) + ["notify", "discard_scratch"]
    assert [c.arg.rebuild for c in fakes.of("download")] == [False] + [True] * MAX_REBUILDS


# --- 6. chunked transcription ---

@pytest.mark.slow
def test_chunks_fan_out_in_a_window_and_merge_in_order(settings):
    """Media longer than asr_chunk_s: plan → one transcribe_chunk per span, at most MAX_PARALLEL_CHUNKS at once,
    progress as chunks finish → merge of the chunk transcripts in span order."""
    spans = 6
    fakes = StandIns(duration_s=60.0, spans=spans, held={f"transcribe_chunk:{i}" for i in range(spans)})

    async def body():
        async with harness(settings, fakes, asr_chunk_s=10.0) as (clipper, job):
            await until(lambda: len(fakes.of("transcribe_chunk")) == MAX_PARALLEL_CHUNKS, what="a full window")
            status = await clipper.status(job)
            assert status.stage("transcribe").state == StageState.running
            assert status.stage("transcribe").progress == 0.0
            assert (await scheduled(clipper, job)).count("transcribe_chunk") == MAX_PARALLEL_CHUNKS
            fakes.held.discard("transcribe_chunk:0")
            await until(lambda: len(fakes.of("transcribe_chunk")) == MAX_PARALLEL_CHUNKS + 1, what="the next chunk")
            await status_when(clipper, job, lambda s: s.stage("transcribe").progress == round(1 / spans, 4),
                              "progress after one chunk")
            fakes.held.clear()
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done
    assert fakes.names() == (["download", "plan_transcription"] + ["transcribe_chunk"] * spans
                             + ["merge_transcript", *after("transcribe")])
    plan = fakes.of("plan_transcription")[0].arg
    assert (plan.chunk_s, plan.duration_s) == (10.0, 60.0)
    assert [c.arg.span.index for c in fakes.of("transcribe_chunk")] == list(range(spans))
    assert fakes.max_in_flight == MAX_PARALLEL_CHUNKS
    assert [r.name for r in fakes.of("merge_transcript")[0].arg.chunks] == [
        f"chunks/transcript-{i}.json" for i in range(spans)]
    transcribe = result.status.stage("transcribe")
    assert (transcribe.state, transcribe.progress) == (StageState.done, 1.0)


def test_cancel_during_the_chunks_stops_every_running_chunk(settings):
    """The cancel reaches every chunk in flight; the ones still waiting for a slot never start."""
    fakes = StandIns(spans=6, held={f"transcribe_chunk:{i}" for i in range(6)})

    async def body():
        async with harness(settings, fakes, asr_chunk_s=10.0) as (clipper, job):
            await until(lambda: len(fakes.of("transcribe_chunk")) == MAX_PARALLEL_CHUNKS, what="a full window")
            await clipper.cancel(job)
            with pytest.raises(JobCancelled):
                await outcome(clipper, job)

    run(body())
    assert fakes.names() == (["download", "plan_transcription"] + ["transcribe_chunk"] * MAX_PARALLEL_CHUNKS
                             + ["discard_scratch"])
    assert sorted(fakes.cancelled) == [f"transcribe_chunk:{i}" for i in range(MAX_PARALLEL_CHUNKS)]


def test_a_single_span_plan_falls_back_to_the_single_pass_transcribe(settings):
    fakes = StandIns(duration_s=12.0, spans=1)
    result = run(run_job(settings, fakes, asr_chunk_s=10.0))
    assert result.state == JobState.done
    assert fakes.names() == ["download", "plan_transcription", "transcribe", *after("transcribe")]


# A failed chunk keeps its error while the chunks after it run; abandoning it fails the job with that error.

def test_abandon_a_failed_chunk_after_later_chunks_started(settings):
    spans = 6
    fakes = StandIns(spans=spans, held={f"transcribe_chunk:{i}" for i in range(1, spans)},
                     failures={"transcribe_chunk": [fail("SomeError", "chunk 0 unreadable")]})  # chunk 0: at once

    async def body():
        async with harness(settings, fakes, asr_chunk_s=10.0) as (clipper, job):
            await status_when(clipper, job, lambda s: s.waiting_since is not None, "chunk 0 to wait for a retry")
            fakes.held.clear()  # chunks 1-3 finish; 4 and 5 start while chunk 0 waits
            await until(lambda: len(fakes.of("transcribe_chunk")) == spans, what="the other chunks")
            await clipper.abandon(job)
            with pytest.raises(JobFailed) as failed:
                await outcome(clipper, job, timeout=3)
            return failed.value

    failed = run(body())
    assert (failed.stage, failed.error_type, failed.error_message) == ("transcribe", "SomeError", "chunk 0 unreadable")


@pytest.mark.slow
def test_status_adds_the_running_chunks_progress_and_attempt_to_the_stage(settings):
    """While chunks run, `status` used to show (CLI status/watch) transcribe at 0 % with no attempt,
    because only an activity named like its stage was folded in. Now the plan, every chunk and the merge count
    for `transcribe`: finished chunks whole, running ones by their heartbeat; the attempt is the highest any of
    them is on; the ETA follows."""
    spans = 4  # 60 s in 15 s chunks
    fakes = StandIns(duration_s=60.0, spans=spans,
                     held={"plan_transcription", "merge_transcript", *(f"transcribe_chunk:{i}" for i in range(spans))})
    fakes.beats = {"transcribe_chunk:0": StageProgress(done=7.5, total=15.0),  # half of chunk 0
                   "transcribe_chunk:1": StageProgress(done=3.75, total=15.0)}  # a quarter of chunk 1, on attempt 2
    fakes.flaky = {"transcribe_chunk:1"}

    def transcribe(status):
        return status.stage("transcribe")

    async def body():
        async with harness(settings, fakes, asr_chunk_s=10.0) as (clipper, job):
            planning = await status_when(clipper, job, lambda s: transcribe(s).attempt == 1, "the plan's attempt")
            assert (transcribe(planning).state, transcribe(planning).progress) == (StageState.running, 0.0)
            fakes.held.discard("plan_transcription")
            running = await status_when(clipper, job, lambda s: transcribe(s).progress > 0, "the chunks' progress")
            running = await status_when(clipper, job, lambda s: transcribe(s).progress == round(0.75 / spans, 4),
                                        "both chunks' heartbeats")
            assert transcribe(running).attempt == 2  # chunk 1's second try
            assert (transcribe(running).parts, transcribe(running).parts_done) == (spans, 0)
            at_zero = running.model_copy(deep=True)
            transcribe(at_zero).progress = 0.0
            at_zero.refresh()
            assert running.eta_s < at_zero.eta_s and running.progress > at_zero.progress
            fakes.held.discard("transcribe_chunk:0")  # finished: counts whole, chunk 1 still by its heartbeat
            one_done = await status_when(clipper, job, lambda s: transcribe(s).parts_done == 1, "chunk 0 done")
            assert transcribe(one_done).progress == round(1.25 / spans, 4)
            fakes.held -= {f"transcribe_chunk:{i}" for i in range(spans)}
            merging = await status_when(clipper, job, lambda s: transcribe(s).parts_done == spans, "every chunk done")
            assert (transcribe(merging).state, transcribe(merging).progress) == (StageState.running, 1.0)
            assert transcribe(merging).attempt >= 1
            fakes.held.clear()
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done
    assert transcribe(result.status).state == StageState.done
