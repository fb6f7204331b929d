"""Stage `speakers`: who speaks when — the transcript's segments and words labelled S1, S2, ... (cpu pool).

Reads the speech-to-text transcript (`asr.json`), writes what people read: `transcript.json` and
`transcript.txt` with speakers, and `speakers.json`; and `voices.npz`, the voices' embeddings, for the chapters.
An attempt killed after writing them is not run again: the outputs are reused when their `made_from` says they
came from exactly this audio and transcript.
"""

from __future__ import annotations

from temporalio import activity

from activities.runtime import StageDeps, StageRun, run_stage, settings_for
from clipper.job.messages import SpeakersInput, SpeakersOutput
from clipper.job.outputs import SpeakerSet, Transcript
from clipper.job.status import StageProgress

STAGE = "speakers"
TRANSCRIPT, TEXT, SPEAKERS, VOICES = "transcript.json", "transcript.txt", "speakers.json", "voices.npz"


class SpeakersActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: SpeakersInput) -> SpeakersOutput:
        return await run_stage(self.deps, STAGE, request, SpeakersOutput, lambda run: self._speakers(request, run))

    def _speakers(self, request: SpeakersInput, run: StageRun) -> SpeakersOutput:
        from clipper.asr.render import transcript_to_text
        from clipper.speakers.label import label_transcript

        store, job = self.deps.store, request.job_id
        made_from = {"audio_sha256": request.audio.sha256, "transcript_sha256": request.transcript.sha256}
        reused = self._stored(request, made_from)
        if reused is not None:
            run.log.info("speakers.reused")
            return reused
        audio = store.verify(job, request.audio)  # CorruptArtifact → the workflow rebuilds the audio
        transcript = store.read_model(job, request.transcript, Transcript)
        settings = settings_for(self.deps.settings, request.options)
        run.progress = StageProgress(total=request.duration_s or transcript.duration_s, unit="s")

        def on_progress(done_s: float, _total_s: float) -> None:
            run.progress.done = done_s

        labelled, speakers, voices = label_transcript(audio, transcript, settings, should_stop=run.stop.is_set,
                                                      on_progress=on_progress)
        kept = None if voices is None else store.put_bytes(job, VOICES, voices.to_bytes(), STAGE,
                                                           "application/octet-stream")
        labelled.meta = {**labelled.meta, "made_from": made_from}
        run.log.info("speakers.done", engine=speakers.engine, speakers=len(speakers.speakers), note=speakers.note)
        return SpeakersOutput(
            transcript=store.put_model(job, TRANSCRIPT, labelled, STAGE),
            text=store.put_text(job, TEXT, transcript_to_text(labelled), STAGE),
            speakers=store.put_model(job, SPEAKERS, speakers, STAGE),
            labels=[s.label for s in speakers.speakers],
            engine=speakers.engine,
            voices=kept,
        )

    def _stored(self, request: SpeakersInput, made_from: dict) -> SpeakersOutput | None:
        store, job = self.deps.store, request.job_id
        refs = [store.valid_ref(job, name) for name in (TRANSCRIPT, TEXT, SPEAKERS)]
        if any(ref is None for ref in refs):
            return None
        transcript = store.read_model(job, refs[0], Transcript)
        if transcript.meta.get("made_from") != made_from:
            return None
        speakers = store.read_model(job, refs[2], SpeakerSet)
        return SpeakersOutput(transcript=refs[0], text=refs[1], speakers=refs[2],
                              labels=[s.label for s in speakers.speakers], engine=speakers.engine,
                              voices=store.valid_ref(job, VOICES))
