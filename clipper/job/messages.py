"""What the workflow and its stage activities say to each other: each stage's input and output.

Only references to artifacts travel through workflow history, never audio or transcript text; the data
itself is in clipper/job/outputs.py, read from the store by the activities."""

from __future__ import annotations

from pydantic import BaseModel, Field

from clipper.job.request import JobOptions, MediaInfo
from clipper.store.refs import ArtifactRef


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
    # voices.npz: the voices' embeddings with their times, for the chapters (None: no engine ran, or a history
    # recorded before the stage wrote it)
    voices: ArtifactRef | None = None


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


class IndexInput(BaseModel):
    """Input of `index`: the files whose entries go into the search index (the current ones are read: names given
    since are in speakers.json, never in a reference). Their references make a changed output a new input."""

    job_id: str
    media: ArtifactRef
    transcript: ArtifactRef
    quotes: ArtifactRef
    summary: ArtifactRef
    names: dict[str, str] = Field(default_factory=dict)  # the speakers' names as the workflow knew them: a naming
    # since makes the input new, so the stage runs again rather than reusing its receipt


class IndexOutput(StageOutput):
    entries: int  # transcript lines, quotes and chapter titles indexed
