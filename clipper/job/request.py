"""What a user sends and gets back: the job request and its options, the control signals' payloads, the
result. Plain JSON through `pydantic_data_converter`, so the `temporal` CLI and clients in other languages
can start, signal and read jobs without Python."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from clipper.errors import InvalidRequest
from clipper.job.stages import StagePolicy
from clipper.job.status import NOTIFY_EVENTS, PRIORITY_DEFAULT, JobState, JobStatus
from clipper.store.refs import ArtifactRef


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
    priority: int = PRIORITY_DEFAULT  # PRIORITY_HIGHEST (1) … PRIORITY_LOWEST (5): check_priority
    # After a stage gives up, how long the job waits for a manual `retry` or `abandon` before failing.
    retry_wait_s: float = 7 * 24 * 3600
    rates: dict[str, float] = Field(default_factory=dict)  # measured s/audio-s per stage, for the ETA
    # Chunked transcription: media longer than this many seconds is cut into chunks of
    # about this length, transcribed side by side (0 = always one pass). Set by the client from CLIPPER_ASR_CHUNK_S.
    asr_chunk_s: float = 300.0
    # Events that send a notification (email/webhook, whichever the workers configure): failed,
    # waiting_for_retry, done. Set by the submitting client from CLIPPER_NOTIFY_ON.
    notify_on: list[str] = Field(default_factory=lambda: list(NOTIFY_EVENTS[:2]))  # failed, waiting_for_retry
    # Stages run on the worker pools' task queues (`<queue>-io`, `-cpu`, `-llm`); False = all on the job's queue.
    # Set by the client from CLIPPER_WORKER_POOLS.
    worker_pools: bool = True
    # Where the signed webhook goes when this job is done or fails (besides CLIPPER_WEBHOOK_URL); checked by the
    # same SSRF rules as media URLs, at submit and again at send (clipper/ops/notify.py `check_callback_url`).
    callback_url: str | None = None


class PauseRequest(BaseModel):
    """Signal `pause`: at the next stage or chunk boundary, or `now` (cancels the running activity, which
    resumes from its saved progress on `resume`)."""

    now: bool = False


class RetryRequest(BaseModel):
    """Signal `retry` for a job waiting after a failure, optionally with changed options (e.g. llm_model)."""

    options: dict[str, Any] = Field(default_factory=dict)


class SpeakerNames(BaseModel):
    """Update `name_speakers` and workflow `NameSpeakers`: {"S1": "Diane"}; an empty name removes one."""

    job_id: str | None = None  # NameSpeakers only: the finished job whose outputs are rendered again
    names: dict[str, str] = Field(default_factory=dict)
    worker_pools: bool = True  # NameSpeakers only: run the rendering on the io pool (as the job's stages did)


class MediaInfo(BaseModel):
    title: str | None = None
    uploader: str | None = None
    duration_s: float | None = None
    source_url: str
    webpage_url: str | None = None
    extractor: str | None = None
    filesize: int | None = None


class JobResult(BaseModel):
    job_id: str
    state: JobState
    info: MediaInfo | None = None
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)
    status: JobStatus
