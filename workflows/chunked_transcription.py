"""Stage `transcribe` for long media: plan the cuts → chunks side by side → merge (workflow code).

Kept out of media_job.py so that the pipeline there still reads on one screen. A worker killed mid-stage
loses only the chunks it was running: every finished chunk is an artifact with its own receipt and its
activity's completion is in the event history.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from clipper.job.messages import (
        ChunkInput, ChunkOutput, ChunkSpan, MergeInput, PlanInput, TranscribeInput, TranscribeOutput,
    )
    from clipper.store.refs import ArtifactRef
    from workflows.stage_runner import StageRunner

STAGE = "transcribe"
MAX_PARALLEL_CHUNKS = 4  # transcribe_chunk activities of one job in flight at once (a sliding window)


def wants_chunks(chunk_s: float, duration_s: float | None) -> bool:
    """Media longer than one chunk is transcribed in chunks side by side; shorter media in one pass."""
    return chunk_s > 0 and (duration_s is None or duration_s >= chunk_s)


async def transcribe_in_chunks(
    stages: StageRunner, job_id: str, audio: ArtifactRef, duration_s: float | None, name: str = "transcript"
) -> TranscribeOutput:
    """Run the whole stage; if the plan finds no usable cut, the single-pass `transcribe` runs instead.

    The stage's progress is the fraction of chunks done. Options are read from the runner at every start,
    so a manual retry with changed options applies to the chunks not yet done.
    """
    entry = stages.status.stage(STAGE)
    stages.open_stage(STAGE)
    spans: list[ChunkSpan] = await stages.run(STAGE, PlanInput(
        job_id=job_id, audio=audio, duration_s=duration_s, chunk_s=stages.request.asr_chunk_s,
        options=stages.request.options), list[ChunkSpan], activity="plan_transcription", part=True)
    # The status shows the stage in parts: a client adds the running chunks' heartbeats to the finished ones
    # (JobStatus.fold_running). Status fields only: no command changes, so histories replay as they were.
    entry.parts, entry.parts_done = (len(spans) if len(spans) > 1 else 0), 0
    if len(spans) <= 1:
        return await stages.run(STAGE, TranscribeInput(
            job_id=job_id, audio=audio, duration_s=duration_s, options=stages.request.options, name=name),
            TranscribeOutput, boundary=False)

    window = asyncio.Semaphore(MAX_PARALLEL_CHUNKS)  # FIFO: chunks start in order, deterministically
    done = 0

    async def chunk(span: ChunkSpan) -> ChunkOutput:
        nonlocal done
        async with window:
            out = await stages.run(STAGE, ChunkInput(
                job_id=job_id, audio=audio, span=span, options=stages.request.options), ChunkOutput,
                activity="transcribe_chunk", part=True)
        done += 1
        entry.progress, entry.parts_done = round(done / len(spans), 4), done
        entry.attempt = max(entry.attempt, out.attempt)  # the most tries any chunk needed so far
        stages.publish()
        return out

    tasks = [asyncio.create_task(chunk(span)) for span in spans]
    try:
        chunks = await asyncio.gather(*tasks)
    except BaseException:
        # One chunk gave up (or the job was cancelled): stop the others and wait until they have.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    merged: TranscribeOutput = await stages.run(STAGE, MergeInput(
        job_id=job_id, audio=audio, chunks=[c.transcript for c in chunks], duration_s=duration_s,
        options=stages.request.options, name=name), TranscribeOutput, activity="merge_transcript", part=True,
        boundary=False)
    # The stage's time is the wall time of all its activities, not the merge's alone.
    merged = merged.model_copy(update={"elapsed_s": (workflow.now() - entry.started_at).total_seconds()})
    stages.close_stage(STAGE, merged)
    stages.raise_if_cancelled()
    return merged
