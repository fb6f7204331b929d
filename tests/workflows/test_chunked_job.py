"""Chunked transcription through Temporal: plan → chunks side by side → merge, and a kill -9 mid-stage
that costs only the chunks that were running."""

from __future__ import annotations

import asyncio

import jiwer
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from clipper.job.outputs import Transcript
from clipper.job.status import JobState
from clipper.store.files import sha256_file
from clipper.store.local import ArtifactStore
from clipper_app.client import connect
from tests.helpers import REFERENCE, REPEATS, later_stages_off, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches, normalise, run_job
from tests.helpers.processes import LATER_STAGES_OFF_ENV, kill_worker_once

CHUNK_S = 60.0  # the ~218 s sample → 4 chunks of ~55 s, cut in the pauses between the repetitions


async def scheduled_activities(settings, job_id: str) -> list[tuple[str, dict]]:
    """(activity type, input) of every activity the job scheduled, in order."""
    import json

    client = await connect(settings)
    history = await client.get_workflow_handle(job_id).fetch_history()
    out = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            payload = attrs.input.payloads[0].data if attrs.input.payloads else b"null"
            out.append((attrs.activity_type.name, json.loads(payload)))
    return out


@pytest.mark.slow
@pytest.mark.crash
def test_chunked_job_killed_mid_stage_redoes_only_running_chunks(settings, long_sample, tmp_path):
    settings = settings.model_copy(update={"asr_chunk_s": CHUNK_S})
    store = ArtifactStore(settings.storage_dir)

    def finished_chunks(job_id: str) -> dict[str, tuple[float, str]]:
        """Chunks whose activity finished (its receipt is written last): file name → (mtime, sha256)."""
        job_dir = store.root / "jobs" / job_id
        done = [int(p.stem.rpartition("-")[2]) for p in (job_dir / ".receipts").glob("transcribe-*.json")
                if p.stem.rpartition("-")[2].isdigit()]
        files = [job_dir / "chunks" / f"transcript-{i}.json" for i in done]
        return {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in files}

    job_id, outcome, before_kill = kill_worker_once(settings, long_sample, tmp_path / "worker.log", finished_chunks,
                                                    "the first chunk to be transcribed", env=LATER_STAGES_OFF_ENV)
    scheduled = run(scheduled_activities(settings, job_id))
    assert outcome.state == JobState.done, outcome
    names = [name for name, _ in scheduled]
    assert names.count("plan_transcription") == 1 and names.count("merge_transcript") == 1
    assert "transcribe" not in names  # the single-pass activity never ran
    spans = [arg["span"]["index"] for name, arg in scheduled if name == "transcribe_chunk"]
    assert sorted(set(spans)) == [0, 1, 2, 3], spans
    # Chunks finished before the kill were neither scheduled again nor rewritten.
    assert 1 <= len(before_kill) < 4, before_kill
    after = finished_chunks(job_id)
    for name, (mtime, sha) in before_kill.items():
        assert after[name] == (mtime, sha), name
        assert spans.count(int(name.removeprefix("transcript-").removesuffix(".json"))) == 1, (name, spans)
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    assert [c["index"] for c in transcript.meta["chunks"]] == [0, 1, 2, 3]
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    reference = " ".join([REFERENCE.read_text()] * REPEATS)
    assert jiwer.wer(normalise(reference), normalise(transcript.text)) <= 0.15
    assert_manifest_matches(store, job_id)
    status = outcome.status.stage("transcribe")
    assert status.progress == 1.0 and status.state.value == "done"


@pytest.mark.slow
def test_pause_now_interrupts_every_running_chunk_and_resume_continues_them(settings, long_sample):
    from clipper.store.files import JsonlLog
    from tests.helpers.jobs import stage_pending, steering, until

    # One window at a time: a ~55 s chunk is two windows, which batched decoding would save in one go.
    settings = later_stages_off(settings).model_copy(update={"asr_chunk_s": CHUNK_S, "asr_batch_size": 1})
    store = ArtifactStore(settings.storage_dir)

    def saved_chunk_segments() -> int:
        logs = (store.root / "jobs").glob("*/.tmp/transcript-*-chunk-*.partial.jsonl")
        return sum(len(JsonlLog(p).read()) for p in logs)

    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            await until(lambda: saved_chunk_segments() >= 2, timeout=120, what="chunks under way")
            await clipper.pause(job, now=True)
            status = await until(lambda: stage_pending(clipper, job, "transcribe"), what="chunks interrupted")
            assert status.state == JobState.paused

            async def no_activity_running() -> bool:
                return not (await clipper.handle(job).describe()).raw_description.pending_activities

            await until(no_activity_running, timeout=30, what="every running chunk to stop")
            await asyncio.sleep(1)
            assert await no_activity_running(), "a chunk started while the job was paused"
            assert (await clipper.status(job)).state == JobState.paused
            await clipper.resume(job)
            return job, await clipper.result(job)

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        job, result = run(body(server.url("/long.mp3")))
    assert result.state == JobState.done
    transcript = Transcript.model_validate_json(store.path(job, "transcript.json").read_bytes())
    assert len(transcript.meta["chunks"]) == 4
    assert transcript.meta["resumed_from_s"] > 0  # the interrupted chunks went on from their saved segments


class LoseFirstReceipt(Interceptor):
    """Fault injection: the first attempt of `activity_type` (for chunk 0, if a chunk) does all its work, then
    its receipt is lost and the attempt fails, as if the worker died between writing its output and its receipt."""

    def __init__(self, store: ArtifactStore, activity_type: str, receipt: str, artifact: str) -> None:
        self.store, self.activity_type, self.receipt, self.artifact = store, activity_type, receipt, artifact
        self.mtime: int | None = None

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inject(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                result = await super().execute_activity(input)
                info = activity.info()
                span = getattr(result, "span", None)
                if info.activity_type == outer.activity_type and info.attempt == 1 and (span is None or span.index == 0):
                    job_dir = outer.store.job_dir(info.workflow_id)
                    (job_dir / ".receipts" / f"{outer.receipt}.json").unlink()
                    outer.mtime = (job_dir / outer.artifact).stat().st_mtime_ns
                    raise ApplicationError(f"injected: worker lost after writing {outer.artifact}")
                return result

        return Inject(next)


@pytest.mark.parametrize("activity_type, chunk_s, receipt, artifact", [
    ("transcribe_chunk", 20.0, "transcribe-0", "chunks/transcript-0.json"),  # the 54 s sample → 3 chunks
    ("transcribe", 0.0, "transcribe", "asr.json"),  # one pass (the speakers stage writes transcript.json)
])
@pytest.mark.slow
def test_a_transcript_written_before_its_receipt_is_not_made_again(settings, media_server, activity_type, chunk_s,
                                                                  receipt, artifact):
    settings = settings.model_copy(update={"asr_chunk_s": chunk_s})
    store = ArtifactStore(settings.storage_dir)
    fault = LoseFirstReceipt(store, activity_type, receipt, artifact)
    _, job, result = run(run_job(settings, media_server.url("/episode.mp3"), interceptors=[fault]))
    assert result.state == JobState.done, result
    assert fault.mtime is not None, "the fault was never injected"
    assert store.path(job, artifact).stat().st_mtime_ns == fault.mtime
    # The retry returned the stored transcript, all of it counted as not transcribed again.
    output = run(completed_outputs(settings, job, activity_type))[0]
    covered = output["span"]["end"] - output["span"]["start"] if "span" in output else result.info.duration_s
    assert output["attempt"] == 2 and output["resumed_from_s"] == pytest.approx(covered, abs=0.05)


async def completed_outputs(settings, job_id: str, activity_type: str) -> list[dict]:
    """Results of the job's completed activities of `activity_type`, from its history (chunks in span order)."""
    import json

    history = await (await connect(settings)).get_workflow_handle(job_id).fetch_history()
    types = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
             if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
    out = [json.loads(e.activity_task_completed_event_attributes.result.payloads[0].data) for e in history.events
           if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
           and types[e.activity_task_completed_event_attributes.scheduled_event_id] == activity_type]
    return sorted(out, key=lambda o: o.get("span", {}).get("index", 0))


@pytest.mark.slow
def test_media_longer_than_one_chunk_is_cut_in_two(settings, long_sample):
    """218 s at 180 s chunks: longer than one chunk length, so two chunks side by side. While they run, the
    job's status shows the stage's progress from their heartbeats, with an attempt and an ETA."""
    from tests.helpers.jobs import until

    # Batched decoding yields a batch's segments together: one window a batch, so a ~109 s chunk (4-6 windows)
    # reports progress every few seconds rather than only at its end.
    settings = later_stages_off(settings).model_copy(update={"asr_chunk_s": 180.0, "asr_batch_size": 1})
    seen = []

    async def while_chunks_run(clipper, job):
        async def chunks_under_way():
            status = await clipper.status(job)
            stage = status.stage("transcribe")
            finished = stage.parts_done / stage.parts if stage.parts else 1.0
            # More than the finished chunks account for: the running chunks' heartbeats are in it.
            under_way = stage.parts_done < stage.parts and stage.progress > finished
            return status if under_way or stage.state.value == "done" else None
        seen.append(await until(chunks_under_way, timeout=120, what="the chunks to run"))

    with serve({"/long.mp3": (long_sample.read_bytes(), "audio/mpeg")}) as server:
        _, job, result = run(run_job(settings, server.url("/long.mp3"), during=while_chunks_run))
    assert result.state == JobState.done, result
    stage = seen[0].stage("transcribe")
    assert stage.state.value == "running", "no progress was seen while the chunks ran"
    assert stage.parts == 2 and 0 < stage.progress < 1 and stage.attempt >= 1
    # download done, transcribe under way: more than one stage's worth
    assert seen[0].eta_s is not None and seen[0].progress > 1 / len(seen[0].stages)
    scheduled = run(scheduled_activities(settings, job))
    names = [name for name, _ in scheduled]
    assert "transcribe" not in names and names.count("merge_transcript") == 1
    plan = next(arg for name, arg in scheduled if name == "plan_transcription")
    assert plan["chunk_s"] == 180.0
    assert sorted(arg["span"]["index"] for name, arg in scheduled if name == "transcribe_chunk") == [0, 1]
    transcript = Transcript.model_validate_json(ArtifactStore(settings.storage_dir).path(job, "transcript.json")
                                                .read_bytes())
    reference = " ".join([REFERENCE.read_text()] * REPEATS)
    assert jiwer.wer(normalise(reference), normalise(transcript.text)) <= 0.15
