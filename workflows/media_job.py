"""MediaJob: one media URL through the pipeline. The event history is the job's state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from clipper.errors import InvalidRequest
    from clipper.job.messages import (
        AudiogramsInput, AudiogramsOutput, ClipsInput, ClipsOutput, DownloadInput, DownloadOutput, IndexInput,
        IndexOutput, QuotesOutput, ReportInput, ReportOutput, SpeakersInput, SpeakersOutput, SummaryOutput, TextStageInput, TranscribeInput,
        TranscribeOutput,
    )
    from clipper.job.request import JobRequest, JobResult, SpeakerNames
    from clipper.job.stages import STAGES
    from clipper.job.status import JobState, JobStatus, StageState, StageStatus
    from clipper.media.urls import redact_credentials
    from clipper.speakers.names import check_names, merged
    from workflows.chunked_transcription import transcribe_in_chunks, wants_chunks
    from workflows.control import JobControl
    from workflows.stage_runner import StageFailed, StageRunner

MAX_REBUILDS = 2  # how often a corrupt input may send us back to the stage that produced it
# Patches since the 1.0 baseline (docs/versions.md): each a `workflow.patched()` branch until deprecated.
SPEAKERS = "speakers-stage"  # the `speakers` stage after `transcribe`; speech-to-text then writes `asr.*`
AUDIOGRAMS = "audiograms-stage"  # the `audiograms` stage after `clips`
FAILED_CLEANUP = "failed-cleanup"  # a job that fails for good sweeps its scratch files, as a cancelled one does
INDEX = "index-stage"  # the `index` stage after `report`: the job's words into the search index


@workflow.defn(name="MediaJob")
class MediaJob(JobControl):
    @workflow.init
    def __init__(self, request: JobRequest) -> None:
        # State lives here, not in run(): a query can arrive in the very first workflow task.
        # The URL as shown (status, reports, notifications, the download's input): a password in it, which only
        # a start that bypassed the client can carry, is replaced by *** and the download refuses it.
        self.job = JobStatus(
            job_id=workflow.info().workflow_id, url=redact_credentials(request.url),
            stages=[StageStatus(name=s) for s in STAGES], priority=request.priority,
        )
        self.stages = StageRunner(request, self.job)
        self.media: DownloadOutput | None = None
        self.labels: list[str] | None = None  # the speakers found (S1, ...), once the speakers stage is done
        self.names: dict[str, str] = {}  # names people gave them (update `name_speakers`)

    @workflow.run
    async def run(self, request: JobRequest) -> JobResult:
        if self.job.state == JobState.queued:
            self.job.state = JobState.running
        self.job.started_at = workflow.now()
        self.stages.publish()
        job = self.job.job_id
        options = request.options  # the runner swaps in changed options after a manual retry
        try:
            await self.download(rebuild=False)
            speakers, audiograms = workflow.patched(SPEAKERS), workflow.patched(AUDIOGRAMS)
            index = workflow.patched(INDEX)
            self.without_stages([name for name, on in (("speakers", speakers), ("audiograms", audiograms),
                                                       ("index", index)) if not on])
            asr = "asr" if speakers else "transcript"
            if wants_chunks(request.asr_chunk_s, self.job.duration_s):
                transcript = await self.rebuilding_audio(lambda: transcribe_in_chunks(
                    self.stages, job, self.media.audio, self.media.info.duration_s, name=asr))
            else:
                transcript = await self.rebuilding_audio(lambda: self.stages.run("transcribe",
                    TranscribeInput(job_id=job, audio=self.media.audio, duration_s=self.media.info.duration_s,
                                    options=options, name=asr), TranscribeOutput))
            if speakers:
                transcript = await self.rebuilding_audio(lambda: self.stages.run("speakers",
                    SpeakersInput(job_id=job, audio=self.media.audio, transcript=transcript.transcript,
                                  duration_s=self.media.info.duration_s, options=options), SpeakersOutput))
                self.labels = transcript.labels
            text = TextStageInput(job_id=job, transcript=transcript.transcript, options=options)
            quotes = await self.stages.run("quotes", text, QuotesOutput)
            summary = await self.stages.run("summary", text, SummaryOutput)
            clips = await self.rebuilding_audio(lambda: self.stages.run("clips", ClipsInput(
                job_id=job, audio=self.media.audio, quotes=quotes.quotes,
                duration_s=self.media.info.duration_s, options=options), ClipsOutput))
            if audiograms:
                await self.rebuilding_audio(lambda: self.stages.run("audiograms",
                    AudiogramsInput(job_id=job, audio=self.media.audio, transcript=transcript.transcript,
                                    quotes=quotes.quotes, media=self.media.media, options=options), AudiogramsOutput))
            names = dict(self.names)
            await self.stages.run("report", ReportInput(
                job_id=job, media=self.media.media, transcript=transcript.transcript,
                quotes=quotes.quotes, summary=summary.summary, clips=clips.index, names=names), ReportOutput)
            if self.names != names:  # named while the report was being written
                await self.render_names(self.names)
            while index:  # again if speakers were named meanwhile: the index ends with the names the job ends with
                await workflow.wait_condition(workflow.all_handlers_finished)  # a naming's files written first
                names = dict(self.names)
                await self.stages.run("index", IndexInput(
                    job_id=job, media=self.media.media, transcript=transcript.transcript, quotes=quotes.quotes,
                    summary=summary.summary, names=names), IndexOutput)
                index = self.names != names
        except StageFailed as failed:
            self.finish(JobState.failed, failed)
            await self.stages.notify("failed")
            if workflow.patched(FAILED_CLEANUP):  # nothing will resume its work in progress: drop it
                await self.discard_scratch()
            raise ApplicationError(str(failed), {**failed.error.model_dump(), "stage": failed.stage},
                                   type=failed.error.type, non_retryable=True)
        except asyncio.CancelledError:
            self.finish(JobState.cancelled)
            await self.discard_scratch()
            raise
        self.finish(JobState.done)
        await self.stages.notify("done")
        await workflow.wait_condition(workflow.all_handlers_finished)  # a naming in progress ends first
        return JobResult(job_id=job, state=self.job.state, info=self.media.info,
                         artifacts=self.job.artifacts, status=self.job)

    async def discard_scratch(self) -> None:
        """Remove the ended job's work in progress and dead writers' temp files (finished artifacts stay)."""
        job = self.job.job_id
        await self.stages.run_helper("cleanup", job, f"cleanup: {job}")

    async def download(self, rebuild: bool) -> None:
        request = DownloadInput(job_id=self.job.job_id, url=self.job.url,
                                options=self.stages.request.options, rebuild=rebuild)
        self.media = await self.stages.run("download", request, DownloadOutput)
        self.job.title, self.job.duration_s = self.media.info.title, self.media.info.duration_s

    async def rebuilding_audio(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run work that reads the audio; if the audio turns out corrupt, rebuild it and run the work again."""
        for rebuilds in range(MAX_REBUILDS + 1):
            try:
                return await work()
            except StageFailed as failed:
                if failed.error.type != "CorruptArtifact" or rebuilds == MAX_REBUILDS:
                    raise
                workflow.logger.warning("audio corrupt, rebuilding it: %s", failed.error.message)
                await self.download(rebuild=True)
        raise AssertionError("unreachable")

    @workflow.update
    async def name_speakers(self, names: dict[str, str]) -> dict[str, str]:
        """Name speakers ({"S1": "Diane"}; "" removes a name): the outputs that show speakers use the names."""
        changes = check_names(names, self.labels)
        self.names = merged(self.names, changes)
        if self.job.stage("report").state == StageState.done:
            await self.render_names(changes)
        return self.names

    @name_speakers.validator
    def _check_names(self, names: dict[str, str]) -> None:
        if self.labels is None:
            raise InvalidRequest("the speakers are not known yet: name them once the speakers stage is done "
                                 "(`clipper status JOB`)")
        check_names(names, self.labels)  # a rejected update leaves no trace in the history

    async def render_names(self, changes: dict[str, str]) -> None:
        await self.stages.run_helper("names", SpeakerNames(
            job_id=self.job.job_id, names=changes), f"names: {self.job.job_id}")

    def without_stages(self, names: list[str]) -> None:
        """A job started before a stage existed never had it: its status shows the stages it runs."""
        self.job.stages = [s for s in self.job.stages if s.name not in names]

    def finish(self, state: JobState, failed: StageFailed | None = None) -> None:
        self.job.state, self.job.finished_at = state, workflow.now()
        self.job.error = failed.error if failed else None
        if state != JobState.done:  # every stage shows how it ended (status fields only: no command changes)
            for entry in self.job.stages:
                if entry.state == StageState.running:
                    entry.state, entry.finished_at = StageState.cancelled, workflow.now()
                elif entry.state == StageState.pending:
                    entry.state = StageState.skipped
        if state == JobState.done:
            self.job.current_stage = None
        self.stages.publish()

