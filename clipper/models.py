"""Pydantic models that cross the wire (workflow/activity inputs and outputs, queries) and the domain data.

Everything here serialises to plain JSON through `pydantic_data_converter`, so the `temporal` CLI and clients
in other languages can start, query and read jobs without Python. Only references to artifacts travel
through workflow history, never audio or transcript text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from clipper.errors import InvalidRequest

from clipper.domain import (  # noqa: F401 - the domain's data, re-exported: one import for wire and domain models
    AudiogramIndex, AudiogramInfo, Chapter, ClipIndex, ClipInfo, KeyPoint, Quote, QuoteSet, Segment, Speaker,
    SpeakerSet, SpeakerTurn, Summary, Transcript, Word,
)
from clipper.refs import ArtifactRef  # noqa: F401 - re-exported
from clipper.status import (  # noqa: F401 - the job's state, re-exported: one import for the wire models
    FINISHED, PRIORITY_DEFAULT, PRIORITY_HIGHEST, PRIORITY_LOWEST, JobState, JobStatus, RunningActivity, StageError,
    StageProgress, StageState, StageStatus, check_priority,
)

from clipper.stages import STAGES, StagePolicy  # noqa: F401 - re-exported: declared with the stage table


class JobOptions(BaseModel):
    """Per-job overrides of the worker's defaults. Empty means 'use the worker's configuration'."""

    asr_engine: str | None = None
    language: str | None = None
    asr_model: str | None = None  # tiny.en | base (clipper/asr/models.py); None = the worker's CLIPPER_ASR_MODEL
    text_engine: str | None = None  # offline | llm (default: llm when an API key is configured)
    llm_model: str | None = None
    max_quotes: int | None = None

    def changed(self, changes: dict[str, Any] | None) -> JobOptions:
        """These options with `changes` applied (a manual retry's `--set key=value`). Unknown keys and invalid
        values are an `InvalidRequest` naming the option: the client, the CLI and the workflow all ask here."""
        changes = changes or {}
        unknown = sorted(set(changes) - set(JobOptions.model_fields))
        if unknown:
            raise InvalidRequest(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(JobOptions.model_fields)}")
        try:
            return JobOptions.model_validate({**self.model_dump(), **changes})
        except ValidationError as err:
            first = err.errors()[0]
            raise InvalidRequest(f"option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


class JobRequest(BaseModel):
    """What a user submits. Only `url` is required: `{"url": "..."}` is a valid input from any client."""

    url: str
    options: JobOptions = Field(default_factory=JobOptions)
    policies: dict[str, StagePolicy] = Field(default_factory=dict)
    priority: int = 3  # 1 (highest) … 5 (lowest)
    # After a stage gives up, how long the job waits for a manual `retry` or `abandon` before failing.
    retry_wait_s: float = 7 * 24 * 3600
    rates: dict[str, float] = Field(default_factory=dict)  # measured s/audio-s per stage, for the ETA
    # Chunked transcription: media longer than this many seconds is cut into chunks of
    # about this length, transcribed side by side (0 = always one pass). Set by the client from CLIPPER_ASR_CHUNK_S.
    asr_chunk_s: float = 300.0
    # Events that send a notification (email/webhook, whichever the workers configure): failed,
    # waiting_for_retry, done. Set by the submitting client from CLIPPER_NOTIFY_ON.
    notify_on: list[str] = Field(default_factory=lambda: ["failed", "waiting_for_retry"])
    # Stages run on the worker pools' task queues (`<queue>-io`, `-cpu`, `-llm`); False = all on the job's queue.
    # Set by the client from CLIPPER_WORKER_POOLS.
    worker_pools: bool = True
    # Where the signed webhook goes when this job is done or fails (besides CLIPPER_WEBHOOK_URL); checked by the
    # same SSRF rules as media URLs, at submit and again at send (clipper/notify.py `check_callback_url`).
    callback_url: str | None = None


class PauseRequest(BaseModel):
    """Signal `pause`: at the next stage or chunk boundary, or `now` (cancels the running activity, which
    resumes from its saved progress on `resume`)."""

    now: bool = False


class RetryRequest(BaseModel):
    """Signal `retry` for a job waiting after a failure, optionally with changed options (e.g. llm_model)."""

    options: dict[str, Any] = Field(default_factory=dict)


class MediaInfo(BaseModel):
    title: str | None = None
    uploader: str | None = None
    duration_s: float | None = None
    source_url: str
    webpage_url: str | None = None
    extractor: str | None = None
    filesize: int | None = None


class StageOutput(BaseModel):
    """Common to every stage's output: which attempt produced it, and the artifacts it references."""

    attempt: int = 1
    elapsed_s: float = 0.0  # wall time of the attempt that produced it: the measured processing rate

    def artifacts(self) -> list[ArtifactRef]:
        return [v for v in (getattr(self, f) for f in type(self).model_fields) if isinstance(v, ArtifactRef)]


class DownloadInput(BaseModel):
    job_id: str
    url: str
    options: JobOptions = Field(default_factory=JobOptions)
    # Set by the workflow after a consumer found the audio corrupt: rebuild it even if the manifest has it.
    rebuild: bool = False


class DownloadOutput(StageOutput):
    source: ArtifactRef
    audio: ArtifactRef
    media: ArtifactRef  # media.json: the MediaInfo below, as a file beside the audio
    info: MediaInfo


class TranscribeInput(BaseModel):
    job_id: str
    audio: ArtifactRef
    duration_s: float | None = None
    options: JobOptions = Field(default_factory=JobOptions)
    # The stem of its outputs: `transcript` (.json, .txt) for jobs before the `speakers` stage; `asr` since,
    # because the speakers stage writes the transcript people read, labelled, as `transcript.*`.
    name: str = "transcript"


class TranscribeOutput(StageOutput):
    transcript: ArtifactRef
    text: ArtifactRef
    engine: str
    language: str | None = None
    segments: int
    words: int
    # Audio seconds already saved by an earlier attempt that this attempt did not transcribe again.
    resumed_from_s: float = 0.0


class PlanInput(BaseModel):
    """Input of `plan_transcription`: where to cut the job's audio into chunks of about `chunk_s` seconds."""

    job_id: str
    audio: ArtifactRef
    duration_s: float | None = None
    chunk_s: float | None = None  # None: the worker's CLIPPER_ASR_CHUNK_S
    options: JobOptions = Field(default_factory=JobOptions)


class ChunkSpan(BaseModel):
    """One piece of the audio transcribed on its own: [start, end) in seconds, cut in a silence."""

    index: int
    start: float
    end: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class ChunkInput(BaseModel):
    """Input of `transcribe_chunk`: one span of the job's audio."""

    job_id: str
    audio: ArtifactRef
    span: ChunkSpan
    options: JobOptions = Field(default_factory=JobOptions)


class ChunkOutput(StageOutput):
    transcript: ArtifactRef  # chunks/transcript-<index>.json: a Transcript of the span, times absolute
    span: ChunkSpan
    segments: int
    words: int
    resumed_from_s: float = 0.0  # seconds of the span saved by an earlier attempt, not transcribed again


class MergeInput(BaseModel):
    """Input of `merge_transcript`: the chunk transcripts, in chunk order."""

    job_id: str
    audio: ArtifactRef
    chunks: list[ArtifactRef]
    duration_s: float | None = None
    options: JobOptions = Field(default_factory=JobOptions)
    name: str = "transcript"  # the stem of its outputs, as in TranscribeInput


class SpeakersInput(BaseModel):
    """Input of `speakers`: the audio and the speech-to-text transcript to label."""

    job_id: str
    audio: ArtifactRef
    transcript: ArtifactRef
    duration_s: float | None = None
    options: JobOptions = Field(default_factory=JobOptions)


class SpeakersOutput(StageOutput):
    transcript: ArtifactRef  # transcript.json: segments and words with their speaker
    text: ArtifactRef  # transcript.txt: `[mm:ss] S1: ...`
    speakers: ArtifactRef  # speakers.json (a SpeakerSet)
    labels: list[str] = Field(default_factory=list)  # S1, S2, ...: what `name_speakers` may name
    engine: str


class SpeakerNames(BaseModel):
    """Update `name_speakers` and workflow `NameSpeakers`: {"S1": "Diane"}; an empty name removes one."""

    job_id: str | None = None  # NameSpeakers only: the finished job whose outputs are rendered again
    names: dict[str, str] = Field(default_factory=dict)
    worker_pools: bool = True  # NameSpeakers only: run the rendering on the io pool (as the job's stages did)


class TextStageInput(BaseModel):
    """Input of `quotes` and `summary`: both read the transcript and nothing else."""

    job_id: str
    transcript: ArtifactRef
    options: JobOptions = Field(default_factory=JobOptions)


class QuotesOutput(StageOutput):
    quotes: ArtifactRef  # quotes.json (a QuoteSet)
    markdown: ArtifactRef  # quotes.md
    count: int
    candidates: int
    ungrounded: int
    failed_chunks: list[int] = Field(default_factory=list)


class SummaryOutput(StageOutput):
    summary: ArtifactRef  # summary.json (a Summary)
    markdown: ArtifactRef  # summary.md
    key_points: int
    chapters: ArtifactRef | None = None  # chapters.json (a ChapterList: chapters and description lines)
    chapters_markdown: ArtifactRef | None = None  # chapters.md


class ClipsInput(BaseModel):
    job_id: str
    audio: ArtifactRef
    quotes: ArtifactRef
    duration_s: float | None = None
    options: JobOptions = Field(default_factory=JobOptions)


class ClipsOutput(StageOutput):
    index: ArtifactRef  # clips.json: rank → clip file, span and duration
    clips: list[ArtifactRef] = Field(default_factory=list)

    def artifacts(self) -> list[ArtifactRef]:
        return [self.index, *self.clips]


class AudiogramsInput(BaseModel):
    """Input of `audiograms`: the audio, the words' times, the top quotes, and media.json for the title."""

    job_id: str
    audio: ArtifactRef
    transcript: ArtifactRef
    quotes: ArtifactRef
    media: ArtifactRef
    options: JobOptions = Field(default_factory=JobOptions)


class AudiogramsOutput(StageOutput):
    index: ArtifactRef  # audiograms.json (an AudiogramIndex)
    files: list[ArtifactRef] = Field(default_factory=list)  # audiograms/<rank>-<aspect>.mp4

    def artifacts(self) -> list[ArtifactRef]:
        return [self.index, *self.files]


class ReportInput(BaseModel):
    job_id: str
    media: ArtifactRef
    transcript: ArtifactRef
    quotes: ArtifactRef
    summary: ArtifactRef
    clips: ArtifactRef
    names: dict[str, str] = Field(default_factory=dict)  # speaker names people gave (`name_speakers`)


class ReportOutput(StageOutput):
    report: ArtifactRef  # report.md
    report_json: ArtifactRef
    srt: ArtifactRef
    vtt: ArtifactRef
    # Rendered again with the speakers' names (jobs with a `speakers` stage only).
    speakers: ArtifactRef | None = None
    text: ArtifactRef | None = None  # transcript.txt
    quotes_markdown: ArtifactRef | None = None  # quotes.md




class JobResult(BaseModel):
    job_id: str
    state: JobState
    info: MediaInfo | None = None
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)
    status: JobStatus
