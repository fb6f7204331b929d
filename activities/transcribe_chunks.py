"""Stage `transcribe`, chunked: plan the cuts, transcribe every chunk as its own activity, merge.

Three activities that log as stage `transcribe`:

- `plan_transcription` (PlanInput → list[ChunkSpan]): where to cut the audio, in silences; media
  shorter than 1.5 × the chunk target (the job's `asr_chunk_s`) is one chunk.
- `transcribe_chunk` (ChunkInput → ChunkOutput): one span → `chunks/transcript-<index>.json`, resumable
  from its own partial log in `.tmp/`, with its own receipt (`transcribe-<index>`). Chunks of one job run
  side by side: the local model decodes `CLIPPER_ASR_PARALLEL` of them at once in one worker process.
- `merge_transcript` (MergeInput → TranscribeOutput): the chunks stitched into `transcript.json` and
  `transcript.txt`, exactly what the single-pass `transcribe` activity produces.
"""

from __future__ import annotations

import time
from datetime import datetime

from temporalio import activity

from activities.breaker import gate_for
from activities.runtime import StageDeps, StageRun, run_stage, settings_for
from activities.transcribe import TranscribeActivity, job_language, made_for, output_names, stored_transcript
from clipper.job.messages import ChunkInput, ChunkOutput, ChunkSpan, MergeInput, PlanInput, TranscribeOutput
from clipper.job.outputs import Segment, Transcript
from clipper.job.status import StageProgress
from clipper.ops.rates import RateBook
from clipper.store.files import JsonlLog
from clipper.store.local import now_utc
from clipper.store.refs import ArtifactRef

STAGE = "transcribe"


def chunk_name(index: int) -> str:
    return f"chunks/transcript-{index}.json"


class PlanTranscriptionActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="plan_transcription")
    async def run(self, request: PlanInput) -> list[ChunkSpan]:
        async with StageRun(STAGE, request.job_id, self.deps.store) as run:
            spans = await run.in_thread(self._plan, request)
            run.log.info("transcribe.planned", chunks=len(spans), cuts=[s.start for s in spans[1:]])
            return spans

    def _plan(self, request: PlanInput) -> list[ChunkSpan]:
        from clipper.asr.chunks import plan_chunks

        audio = self.deps.store.verify(request.job_id, request.audio)  # CorruptArtifact → rebuild the audio
        target = request.chunk_s if request.chunk_s is not None else self.deps.settings.asr_chunk_s
        return plan_chunks(audio, target)


def chunk_output(ref: ArtifactRef, span: ChunkSpan, segments: list[Segment], resumed_s: float) -> ChunkOutput:
    return ChunkOutput(transcript=ref, span=span, segments=len(segments), words=sum(len(s.words) for s in segments),
                       resumed_from_s=resumed_s)


class TranscribeChunkActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="transcribe_chunk")
    async def run(self, request: ChunkInput) -> ChunkOutput:
        return await run_stage(self.deps, STAGE, request, ChunkOutput, lambda run: self._transcribe(request, run),
                               receipt_name=f"{STAGE}-{request.span.index}")

    def _transcribe(self, request: ChunkInput, run: StageRun) -> ChunkOutput:
        from clipper.asr import get_engine
        from clipper.asr.chunks import span_resumed_s, transcribe_span

        store, job, span = self.deps.store, request.job_id, request.span
        started_at, started = now_utc(), time.monotonic()
        audio_path = store.verify(job, request.audio)
        done = self._already_done(request)
        if done is not None:  # written by an attempt killed before its receipt: not transcribed again
            run.log.info("transcribe.chunk_reused", chunk=span.index)
            return done
        settings = settings_for(self.deps.settings, request.options)
        engine = get_engine(settings, request.options.asr_engine, chunked=True,
                            gate=gate_for(self.deps.breakers, run, waits=True))
        # One language for every chunk: detected (if at all) once per job, from the start of the whole file.
        choice = job_language(store, request, engine, audio_path, settings)
        # Keyed by the audio's checksum and the span: saved segments are only valid for exactly that audio.
        partial = JsonlLog(store.scratch_dir(job) / (
            f"transcript-{request.audio.sha256[:16]}-chunk-{span.index}-"
            f"{int(round(span.start * 1000))}-{int(round(span.end * 1000))}.partial.jsonl"))
        resumed = span_resumed_s(partial, span)
        run.progress = StageProgress(total=span.duration_s, unit="s", done=resumed, resume_from_s=span.start + resumed,
                                     note=f"chunk {span.index}")
        if resumed > 0:
            run.log.info("transcribe.resumed", chunk=span.index, resumed_from_s=span.start + resumed)

        def on_progress(done: float, _total: float) -> None:
            run.progress.done, run.progress.resume_from_s = done, span.start + done

        language = choice.language
        segments = transcribe_span(engine, audio_path, span, partial, language=language, on_progress=on_progress,
                                   should_stop=run.stop.is_set)
        transcript = Transcript(
            engine=engine.name, model=engine.model, language=language or getattr(engine, "detected_language", None),
            duration_s=span.duration_s, segments=segments,
            meta={**made_for(request), "resumed_from_s": resumed, "attempt": run.attempt,
                  "started_at": started_at.isoformat(), "elapsed_s": round(time.monotonic() - started, 3),
                  **choice.meta()},
        )
        ref = store.put_model(job, chunk_name(span.index), transcript, STAGE)
        partial.remove()
        run.measure.audio_seconds = span.duration_s
        return chunk_output(ref, span, segments, resumed)

    def _already_done(self, request: ChunkInput) -> ChunkOutput | None:
        """The chunk's transcript if an earlier attempt stored it (checksum in the manifest) for this audio and span."""
        span = request.span
        stored = stored_transcript(self.deps.store, chunk_name(span.index), request)
        if stored is None:
            return None
        ref, transcript = stored
        return chunk_output(ref, span, transcript.segments, span.duration_s)


class MergeTranscriptActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="merge_transcript")
    async def run(self, request: MergeInput) -> TranscribeOutput:
        return await run_stage(self.deps, STAGE, request, TranscribeOutput, lambda run: self._merge(request, run),
                               receipt_name=f"{STAGE}-merge")

    def _merge(self, request: MergeInput, run: StageRun) -> TranscribeOutput:
        from clipper.asr.chunks import merge_chunks
        from clipper.asr.render import transcript_to_text

        store, job = self.deps.store, request.job_id
        run.progress = StageProgress(total=float(len(request.chunks)), unit="chunks")
        parts = [store.read_model(job, ref, Transcript) for ref in request.chunks]  # verified: CorruptArtifact
        first = parts[0] if parts else Transcript(engine=request.options.asr_engine or "")
        spans = [ChunkSpan.model_validate(p.meta["span"]) for p in parts if p.meta.get("span")]
        duration = request.duration_s if request.duration_s is not None else max((s.end for s in spans), default=None)
        merged = merge_chunks([p.segments for p in parts], engine=first.engine, model=first.model,
                              language=first.language, duration_s=duration)
        resumed = round(sum(float(p.meta.get("resumed_from_s", 0.0)) for p in parts), 3)
        merged.meta.update(audio_sha256=request.audio.sha256, resumed_from_s=resumed, attempt=run.attempt,
                           chunks=[s.model_dump() for s in spans],
                           **{k: first.meta[k] for k in ("language_detected", "language_probability")
                              if k in first.meta})
        transcript_name, text_name = output_names(request.name)
        ref = store.put_model(job, transcript_name, merged, STAGE)
        text = store.put_text(job, text_name, transcript_to_text(merged), STAGE)
        run.progress.done = float(len(parts))
        self._record_rate(parts, request.duration_s)
        return TranscribeActivity._output(merged, ref, text, resumed)

    def _record_rate(self, parts: list[Transcript], duration_s: float | None) -> None:
        """The stage's rate is its wall time (chunks overlap), not any one activity's: from the first chunk's
        start to now, capped by the chunks' summed time (for chunks finished long before, e.g. by a retry)."""
        try:
            first = min(datetime.fromisoformat(p.meta["started_at"]) for p in parts)
            busy = sum(float(p.meta["elapsed_s"]) for p in parts)
        except (KeyError, TypeError, ValueError):
            return
        wall = min((now_utc() - first).total_seconds(), busy)
        RateBook(self.deps.settings.storage_dir).record(STAGE, wall, duration_s)
