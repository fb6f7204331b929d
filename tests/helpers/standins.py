"""Stand-in activities under the real activity type names, and a harness that runs MediaJob with them on the
real dev server: the workflow only passes `ArtifactRef`s around, so made-up ones do (no speech model, ffmpeg or
download). Used by tests/workflows/test_job_controls.py and test_job_stages.py."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from clipper.job.messages import (
    AudiogramsInput, AudiogramsOutput, ChunkInput, ChunkOutput, ChunkSpan, ClipsInput, ClipsOutput, DownloadInput,
    DownloadOutput, IndexInput, IndexOutput, MergeInput, PlanInput, QuotesOutput, ReportInput, ReportOutput,
    SpeakersInput, SpeakersOutput, SummaryOutput, TextStageInput, TranscribeInput, TranscribeOutput,
)
from clipper.job.request import JobResult, MediaInfo, SpeakerNames
from clipper.job.stages import ACTIVITY_STAGES, BATCH, FOLLOW, STAGES, StagePolicy
from clipper.job.status import JobState, JobStatus, StageProgress, StageState
from clipper.ops.notify import Notification, NotifyResult
from clipper.store.refs import ArtifactRef
from clipper_app.client import ClipperClient, connect
from clipper_app.workers.retry_budget import RetryBudgetInterceptor
from tests.helpers.jobs import until  # noqa: F401 - the tests poll with it too
from workflows.media_job import MediaJob

# Tighter than FAST_POLICIES: quick retries, and a heartbeat timeout that never fires on a heartbeating stand-in.
POLICY = StagePolicy(initial_interval_s=0.1, max_interval_s=0.2, max_attempts=2, heartbeat_timeout_s=2,
                     timeout_base_s=30)
# Heartbeats reach the server at least this often, so a cancel reaches a held stand-in in well under a second.
HEARTBEAT_THROTTLE = timedelta(milliseconds=200)


def ref(name: str) -> ArtifactRef:
    """A made-up reference, from the stage of the stand-in that returns it."""
    return ArtifactRef(name=name, sha256="0" * 64, size=1, stage=ACTIVITY_STAGES[activity.info().activity_type].name,
                       created_at=datetime.now(UTC))


def fail(error_type: str, message: str = "no quotes today") -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


@dataclass
class Call:
    name: str  # activity type
    arg: Any  # its input, as the workflow sent it
    priority: int | None  # activity.info().priority.priority_key


class StandIns:
    """Activities under the real type names. They record each call, wait (heartbeating, so a cancel reaches
    them) while their key is in `held`, raise the errors queued in `failures`, and return made-up refs."""

    def __init__(self, duration_s: float = 60.0, spans: int = 1, held: set[str] | None = None,
                 failures: dict[str, list[Exception]] | None = None) -> None:
        self.duration_s, self.spans = duration_s, spans
        self.calls: list[Call] = []
        self.held = held or set()  # "transcribe", "transcribe_chunk:3", ...
        self.failures = failures or {}  # activity type → errors its next calls raise, in order
        self.beats: dict[str, StageProgress] = {}  # key → the progress it heartbeats while held, as stages do
        self.flaky: set[str] = set()  # keys whose first attempt fails at once with a retryable error
        self.cancelled: list[str] = []
        self.in_flight = self.max_in_flight = 0

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    async def enter(self, arg: Any, key: str | None = None) -> None:
        info = activity.info()
        name = info.activity_type
        self.calls.append(Call(name, arg, info.priority.priority_key))
        key = key or name
        if key in self.flaky and info.attempt == 1:
            raise ApplicationError(f"{key} flaked", type="SomeError")
        try:
            while key in self.held:
                activity.heartbeat(*([self.beats[key].model_dump()] if key in self.beats else []))
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        if self.failures.get(name):
            raise self.failures[name].pop(0)

    def transcript(self) -> TranscribeOutput:
        return TranscribeOutput(transcript=ref("transcript.json"), text=ref("transcript.txt"), engine="stand-in",
                                segments=1, words=3)

    @activity.defn(name="download")
    async def download(self, request: DownloadInput) -> DownloadOutput:
        await self.enter(request)
        info = MediaInfo(title="Episode", duration_s=self.duration_s, source_url=request.url)
        return DownloadOutput(source=ref("source.mp3"), audio=ref("audio.wav"), media=ref("media.json"), info=info)

    @activity.defn(name="transcribe")
    async def transcribe(self, request: TranscribeInput) -> TranscribeOutput:
        await self.enter(request)
        return self.transcript()

    @activity.defn(name="plan_transcription")
    async def plan_transcription(self, request: PlanInput) -> list[ChunkSpan]:
        await self.enter(request)
        step = self.duration_s / self.spans
        return [ChunkSpan(index=i, start=i * step, end=(i + 1) * step) for i in range(self.spans)]

    @activity.defn(name="transcribe_chunk")
    async def transcribe_chunk(self, request: ChunkInput) -> ChunkOutput:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.enter(request, key=f"transcribe_chunk:{request.span.index}")
        finally:
            self.in_flight -= 1
        return ChunkOutput(transcript=ref(f"chunks/transcript-{request.span.index}.json"),
                           span=request.span, segments=1, words=3)

    @activity.defn(name="merge_transcript")
    async def merge_transcript(self, request: MergeInput) -> TranscribeOutput:
        await self.enter(request)
        return self.transcript()

    @activity.defn(name="speakers")
    async def speakers(self, request: SpeakersInput) -> SpeakersOutput:
        await self.enter(request)
        return SpeakersOutput(transcript=ref("transcript.json"), text=ref("transcript.txt"),
                              speakers=ref("speakers.json"), labels=["S1", "S2"], engine="stand-in")

    @activity.defn(name="render_names")
    async def render_names(self, request: SpeakerNames) -> dict[str, str]:
        await self.enter(request)
        return request.names

    @activity.defn(name="quotes")
    async def quotes(self, request: TextStageInput) -> QuotesOutput:
        await self.enter(request)
        return QuotesOutput(quotes=ref("quotes.json"), markdown=ref("quotes.md"), count=1, candidates=1, ungrounded=0)

    @activity.defn(name="summary")
    async def summary(self, request: TextStageInput) -> SummaryOutput:
        await self.enter(request)
        return SummaryOutput(summary=ref("summary.json"), markdown=ref("summary.md"), key_points=1)

    @activity.defn(name="clips")
    async def clips(self, request: ClipsInput) -> ClipsOutput:
        await self.enter(request)
        return ClipsOutput(index=ref("clips.json"), clips=[ref("clips/clip-01.mp3")])

    @activity.defn(name="audiograms")
    async def audiograms(self, request: AudiogramsInput) -> AudiogramsOutput:
        await self.enter(request)
        return AudiogramsOutput(index=ref("audiograms.json"), files=[ref("audiograms/01-1x1.mp4")])

    @activity.defn(name="report")
    async def report(self, request: ReportInput) -> ReportOutput:
        await self.enter(request)
        return ReportOutput(report=ref("report.md"), report_json=ref("report.json"),
                            srt=ref("transcript.srt"), vtt=ref("transcript.vtt"))

    @activity.defn(name="index")
    async def index(self, request: IndexInput) -> IndexOutput:
        await self.enter(request)
        return IndexOutput(entries=3)

    @activity.defn(name="discard_scratch")
    async def discard_scratch(self, job_id: str) -> int:
        await self.enter(job_id)
        return 0

    @activity.defn(name="notify")
    async def notify(self, notification: Notification) -> NotifyResult:
        await self.enter(notification)
        return NotifyResult(event=notification.event)

    def activities(self) -> list[Any]:
        """One stand-in per activity type of a job in the stage table (the batch's and a follow's are not a job's):
        a new type without one fails here, loudly."""
        return [getattr(self, name) for name, stage in ACTIVITY_STAGES.items() if stage not in (BATCH, FOLLOW)]


def standin_settings(settings, **changes: Any):
    """What `harness` runs jobs with (every activity on the job's own queue, one pass, fast policies); a client
    that submits onto the stand-ins' worker (the REST API, say) needs the same."""
    return settings.model_copy(update={"worker_pools": False, "asr_chunk_s": 0.0,
                                       "policies": {s: POLICY for s in STAGES}, **changes})


@contextlib.asynccontextmanager
async def harness(settings, fakes: StandIns, priority: int = 3,
                  **changes: Any) -> AsyncIterator[tuple[ClipperClient, str]]:
    """An in-process worker running MediaJob with the stand-ins (every activity on the job's own queue), a
    client, and a job submitted through it. A fresh URL per test: the job id derives from it."""
    settings = standin_settings(settings, **changes)
    temporal = await connect(settings)
    # The retry-budget interceptor as every real worker has it (clipper_app/workers/pools.py): the workflow sends each
    # activity its error budget, a stand-in running the real runtime (activities/runtime.py) reads it.
    async with Worker(temporal, task_queue=settings.task_queue, workflows=[MediaJob], activities=fakes.activities(),
                      interceptors=[RetryBudgetInterceptor()], max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE):
        clipper = ClipperClient(temporal, settings)
        submitted = await clipper.submit(f"https://example.com/{uuid.uuid4().hex}.mp3", priority=priority)
        yield clipper, submitted.job_id


async def run_job(settings, fakes: StandIns, **changes: Any) -> JobResult:
    async with harness(settings, fakes, **changes) as (clipper, job):
        return await outcome(clipper, job)


async def outcome(clipper: ClipperClient, job: str, timeout: float = 20) -> JobResult:
    """The job's result; a job that never ends (say, it waits for a manual retry) fails the test, not hangs it."""
    return await asyncio.wait_for(clipper.result(job), timeout)


async def status_when(clipper: ClipperClient, job: str, check, what: str) -> JobStatus:
    async def probe() -> JobStatus | None:
        status = await clipper.status(job)
        return status if check(status) else None
    return await until(probe, what=what)


async def scheduled(clipper: ClipperClient, job: str) -> list[str]:
    """Activity types the job has scheduled, from its history. A `status` answer reflects a completed workflow
    task, so what that task scheduled is already here: an empty tail proves nothing was started."""
    return [e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in clipper.handle(job).fetch_history_events()
            if e.HasField("activity_task_scheduled_event_attributes")]


async def wait_for_retry(clipper: ClipperClient, fakes: StandIns, job: str) -> JobStatus:
    status = await status_when(clipper, job, lambda s: s.waiting_since is not None, "the job to wait for a retry")
    await until(lambda: fakes.of("notify"), what="the waiting_for_retry notice")  # sent in the background
    assert status.state == JobState.failed and status.error.type == "SomeError"
    assert status.stage("quotes").state == StageState.failed and status.stage("summary").state == StageState.pending
    assert fakes.names() == ["download", "transcribe", "speakers", "quotes", "notify"]
    return status
