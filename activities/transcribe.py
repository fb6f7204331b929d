"""Stage `transcribe`: speech to timestamped segments, resumable from the last saved segment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity

from activities.breaker import gate_for
from activities.runtime import StageDeps, StageRun, run_stage, settings_for
from clipper.job.messages import ChunkInput, TranscribeInput, TranscribeOutput
from clipper.job.outputs import Transcript
from clipper.job.status import StageProgress
from clipper.store.files import JsonlLog
from clipper.store.local import ArtifactStore
from clipper.store.refs import ArtifactRef

if TYPE_CHECKING:
    from pathlib import Path

    from clipper.asr.base import AsrEngine
    from clipper.asr.language import LanguageChoice
    from clipper.config import Settings

STAGE = "transcribe"


def output_names(name: str) -> tuple[str, str]:
    """The transcript's JSON and text artifact names for the stem a request asks for (`transcript`, `asr`)."""
    return f"{name}.json", f"{name}.txt"


def made_for(request: TranscribeInput | ChunkInput) -> dict:
    """What a stored transcript was made from, kept in its meta: reused only for exactly the same again."""
    made = {"audio_sha256": request.audio.sha256, "options": request.options.model_dump(mode="json")}
    return made | ({"span": request.span.model_dump()} if isinstance(request, ChunkInput) else {})


def stored_transcript(store: ArtifactStore, name: str, request: TranscribeInput | ChunkInput
                      ) -> tuple[ArtifactRef, Transcript] | None:
    """The transcript `name` an earlier attempt stored (its checksum in the manifest) from exactly this input:
    an attempt killed between writing it and writing its receipt is not transcribed again."""
    ref = store.valid_ref(request.job_id, name)
    if ref is None:
        return None
    transcript = store.read_model(request.job_id, ref, Transcript)
    if any(transcript.meta.get(key) != value for key, value in made_for(request).items()):
        return None
    return ref, transcript


def job_language(store: ArtifactStore, request: TranscribeInput | ChunkInput, engine: AsrEngine, audio: Path,
                 settings: Settings) -> LanguageChoice:
    """The job's language (clipper/asr/language.py), refused if the model can't transcribe it; a detected one
    is remembered in a receipt per audio and model, so all chunks and retries use the same."""
    from clipper.asr.language import LanguageChoice, choose_language

    name = f"language-{engine.model or engine.name}-{request.audio.sha256[:16]}"
    raw = store.read_receipt(request.job_id, name)
    known = LanguageChoice.model_validate_json(raw) if raw else None
    choice = choose_language(engine, audio, request.options.language, settings, detected=known)
    if choice.detected and known is None:
        store.put_receipt(request.job_id, name, choice.model_dump_json().encode())
    return choice


class TranscribeActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: TranscribeInput) -> TranscribeOutput:
        return await run_stage(self.deps, STAGE, request, TranscribeOutput, lambda run: self._transcribe(request, run))

    def _transcribe(self, request: TranscribeInput, run: StageRun) -> TranscribeOutput:
        from clipper.asr import get_engine
        from clipper.asr.resume import transcribe_resumable, transcript_to_text

        store, job = self.deps.store, request.job_id
        audio_path = store.verify(job, request.audio)  # CorruptArtifact → the workflow rebuilds the audio
        transcript_name, text_name = output_names(request.name)
        stored = stored_transcript(store, transcript_name, request)
        text_ref = store.valid_ref(job, text_name) if stored is not None else None
        if stored is not None and text_ref is not None:  # an attempt that died before its receipt finished it
            run.log.info("transcribe.reused")
            ref, transcript = stored
            return self._output(transcript, ref, text_ref, float(transcript.duration_s or request.duration_s or 0.0))
        settings = settings_for(self.deps.settings, request.options)
        engine = get_engine(settings, request.options.asr_engine,
                            gate=gate_for(self.deps.breakers, run, waits=True))
        # Keyed by the audio's checksum: saved segments are only valid for the exact audio they came from.
        partial = JsonlLog(store.scratch_dir(job) / f"transcript-{request.audio.sha256[:16]}.partial.jsonl")
        run.progress = StageProgress(total=request.duration_s, unit="s")

        def on_progress(seconds_done: float, _total: float | None) -> None:
            run.progress.done = run.progress.resume_from_s = seconds_done

        choice = job_language(store, request, engine, audio_path, settings)
        transcript, resumed_from = transcribe_resumable(
            engine,
            audio_path,
            partial,
            duration_s=request.duration_s,
            language=choice.language,
            on_progress=on_progress,
            should_stop=run.stop.is_set,
        )
        if resumed_from > 0:
            run.log.info("transcribe.resumed", resumed_from_s=resumed_from)
        transcript.meta.update(made_for(request), resumed_from_s=resumed_from, attempt=run.attempt, **choice.meta())
        ref = store.put_model(job, transcript_name, transcript, STAGE)
        text = store.put_text(job, text_name, transcript_to_text(transcript), STAGE)
        partial.remove()
        return self._output(transcript, ref, text, resumed_from)

    @staticmethod
    def _output(transcript: Transcript, ref, text, resumed_from: float) -> TranscribeOutput:  # noqa: ANN001
        return TranscribeOutput(
            transcript=ref,
            text=text,
            engine=transcript.engine,
            language=transcript.language,
            segments=len(transcript.segments),
            words=sum(len(s.words) for s in transcript.segments),
            resumed_from_s=resumed_from,
        )
