"""Stage `summary`: overview and key points, map-reduced over transcript chunks, each point with its times (the
offline overview also says who speaks and how much, from speakers.json), and the chapters (chapters.json with
the "00:00 Title" description lines, chapters.md)."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.breaker import gate_for
from activities.download import AUDIO
from activities.runtime import StageDeps, StageRun, run_stage, settings_for
from activities.speakers import VOICES
from clipper.errors import CorruptArtifact
from clipper.job.messages import SummaryOutput, TextStageInput
from clipper.job.outputs import SpeakerSet, Transcript
from clipper.job.status import StageProgress
from clipper.speakers.changes import SoundProfile, sound_profile
from clipper.speakers.voices import VoiceProfile

STAGE = "summary"


class SummaryActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: TextStageInput) -> SummaryOutput:
        return await run_stage(self.deps, STAGE, request, SummaryOutput, lambda run: self._summarize(request, run))

    def _summarize(self, request: TextStageInput, run: StageRun) -> SummaryOutput:
        from clipper.llm import get_text_engine
        from clipper.llm.budget import fit, tokens_noted
        from clipper.text.chapters import ChapterList, chapters_markdown
        from clipper.text.formats import summary_markdown
        from clipper.text.summary import summarize

        store, job = self.deps.store, request.job_id
        transcript = store.read_model(job, request.transcript, Transcript)
        # Who speaks and how much, for the offline overview: the speakers stage's output when it ran (read
        # from the store, so the workflow's input stays as it is).
        known = store.valid_ref(job, "speakers.json")
        speakers = store.read_model(job, known, SpeakerSet) if known else None
        sound = self._sound(job)
        settings = settings_for(self.deps.settings, request.options)
        gate = gate_for(self.deps.breakers, run, waits=settings.llm_fallback != "offline")
        engine = get_text_engine(settings, request.options.text_engine, gate)
        run.progress = StageProgress(unit="chunks")
        # The chunk budget in the model's tokens where its server counts them; tokens arriving are progress (in
        # the heartbeat), and a cancel closes the request being read.
        settings = fit(settings, engine, transcript, run.stop.is_set, tokens_noted(run.progress))
        summary = summarize(transcript, engine, settings, on_chunk_done=run.count_chunk, should_stop=run.stop.is_set,
                            speakers=speakers, sound=sound, voices=self._voices(job))
        run.log.info("summary.done", engine=summary.engine, key_points=len(summary.key_points),
                     chapters=len(summary.chapters), sound=sound is not None)
        return SummaryOutput(
            summary=store.put_model(job, "summary.json", summary, STAGE),
            markdown=store.put_text(job, "summary.md", summary_markdown(summary), STAGE, "text/markdown"),
            key_points=len(summary.key_points),
            chapters=store.put_model(job, "chapters.json", ChapterList.of(summary.chapters), STAGE),
            chapters_markdown=store.put_text(job, "chapters.md", chapters_markdown(summary), STAGE, "text/markdown"),
        )

    def _verified(self, job: str, name: str) -> Path | None:
        """An earlier stage's artifact for the chapters, read from the store by name (the workflow's input stays
        as it is), its sha256 checked once; None when it was never written or no longer matches."""
        ref = self.deps.store.read_manifest(job).artifacts.get(name)
        if ref is None:
            return None
        try:
            return self.deps.store.verify(job, ref)
        except CorruptArtifact:
            return None

    def _sound(self, job: str) -> SoundProfile | None:
        """Where the recording's sound changes: from the download stage's audio. Gone or damaged: chapters
        from the words."""
        path = self._verified(job, AUDIO)
        return None if path is None else sound_profile(path)

    def _voices(self, job: str) -> VoiceProfile | None:
        """Who was heard when: the speakers stage's embeddings (voices.npz). Not written (speakers off, an older
        job), damaged or unreadable: the chapters go without."""
        path = self._verified(job, VOICES)
        if path is None:
            return None
        try:
            return VoiceProfile.from_bytes(path.read_bytes())
        except (ValueError, KeyError, OSError):
            return None
