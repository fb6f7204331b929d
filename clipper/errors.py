"""The typed errors a user can meet, in one place.

Every error carries a message written for the person who submitted the job, and says, as properties of its class
(inherited by subclasses), what a stage that meets it does:

- `non_retryable`: whether retrying the same input could ever help. Bad input never can, so those fail fast;
- `ends_job`: whether the job then fails at once (input no retry can fix, and a corrupt input, which the workflow
  repairs itself by re-running the stage that produced it), or waits for a manual `retry` (a refusal that a
  changed setting, key or option may cure). `ends_job()` reads it by the error's type name, which is all the
  workflow sees of an error.

Activities translate these into `ApplicationError(type=<class name>)`, so the same names show up in
`clipper status`, the `temporal` CLI and the Web UI.
"""

from __future__ import annotations

import errno

# OSError numbers that mean "no room to write": disk full, file-size limit (RLIMIT_FSIZE), quota.
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# How ffmpeg and yt-dlp spell those in their messages.
STORAGE_FULL_WORDING = ("no space left on device", "file too large", "disk quota exceeded")


class ClipperError(Exception):
    """Base class. Subclasses are input errors (non-retryable) unless they say otherwise; once a stage gives up on
    one, the job waits for a manual retry unless the class says it `ends_job`."""

    non_retryable: bool = True
    ends_job: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def type_name(self) -> str:
        return type(self).__name__


class InvalidRequest(ClipperError):
    """The job request itself is malformed (bad option, bad priority, ...)."""

    ends_job = True


class UnsupportedUrl(ClipperError):
    """The URL's scheme or shape is not something we can fetch."""

    ends_job = True


class ForbiddenAddress(ClipperError):
    """The URL points at a loopback, private or link-local address (SSRF guard)."""

    ends_job = True


class CredentialsInUrl(ClipperError):
    """The URL carries a user name or password (`https://user:pass@host/...`).

    Refused rather than kept: a job's URL is shown and stored everywhere (history, status, reports), so a secret
    in it would leak. The message never repeats the secret.
    """

    ends_job = True


class LocalPathNotAllowed(ClipperError):
    """A local path or file: URL was submitted but the operator has not allowed local files."""

    ends_job = True


class MediaNotFound(ClipperError):
    """The server says the media does not exist (HTTP 404/410) or the path is missing.

    `http_status` is the server's answer when there was one: a Space's 404 is waited out, not final at once
    (`clipper.media.spaces`).
    """

    ends_job = True

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class AccessDenied(ClipperError):
    """The server refuses to give us the media (HTTP 401/403)."""


class NoMediaFound(ClipperError):
    """The URL works but there is no audio or video on it (e.g. a plain HTML page)."""

    ends_job = True


class NoAudioStream(ClipperError):
    """The media has no audio track, or its audio cannot be decoded."""

    ends_job = True


class InvalidMedia(ClipperError):
    """The file is empty, truncated or not a media file at all."""

    ends_job = True


class MediaTooLong(ClipperError):
    """The media is longer than the configured maximum duration."""

    ends_job = True


class MediaTooLarge(ClipperError):
    """The media is larger than the configured maximum size."""

    ends_job = True


class DownloadFailed(ClipperError):
    """A transient network or server problem; retried by the stage's retry policy."""

    non_retryable = False


class DownloadStalled(ClipperError):
    """The media's server stopped sending (no byte for CLIPPER_DOWNLOAD_STALL_S) or trickles slower than
    CLIPPER_DOWNLOAD_MIN_BYTES_PER_S. Retried: the next attempt resumes the `.part` file, maybe from a better
    connection or server."""

    non_retryable = False


class TooManyRedirects(ClipperError):
    """The URL redirects more times than any real media link does, or in a loop. Retrying follows the same
    redirects again, so it fails at once."""

    ends_job = True


class StorageFull(ClipperError):
    """The worker could not write: its disk is full, or a quota or file-size limit was hit.

    Not the media's fault, so retried: space may be freed, or another worker may take the next attempt.
    Writes are atomic, so a failed write leaves nothing half-written behind.
    """

    non_retryable = False


def is_storage_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in STORAGE_FULL_ERRNOS


def storage_full(what: str, error: OSError | str) -> StorageFull:
    """The `StorageFull` for a failed write of `what` (an artifact name, "the audio", ...)."""
    reason = error if isinstance(error, str) else (error.strerror or str(error))
    return StorageFull(
        f"no room to write {what} on the worker ({reason}): free disk space, or raise the quota or file-size "
        "limit, then retry"
    )


class StorageUnavailable(ClipperError):
    """The shared artifact store (S3, MinIO) cannot be reached or is failing: timeouts, 5xx, throttling.

    An outage passes, and another worker may take the next attempt, so it is retried.
    """

    non_retryable = False


class StorageMisconfigured(ClipperError):
    """The shared artifact store refuses the workers: missing bucket, bad or missing credentials, no permission.

    Retried too: it is the worker's configuration, not the job's input, so a correctly configured worker may take
    the next attempt; once the attempts are used up the job waits for a manual retry after the fix.
    """

    non_retryable = False


class CorruptArtifact(ClipperError):
    """A stored artifact no longer matches the sha256 in the manifest.

    Non-retryable at the activity level on purpose: retrying the consumer cannot fix its input; the workflow
    re-runs the producing stage instead.
    """

    ends_job = True

    def __init__(self, message: str, artifact: str = "", stage: str = "") -> None:
        super().__init__(message)
        self.artifact = artifact
        self.stage = stage


class EngineNotConfigured(ClipperError):
    """An engine was selected whose settings are missing or invalid (e.g. no model, unknown engine)."""


class MetricsPortInUse(ClipperError):
    """The worker's Prometheus port (CLIPPER_METRICS_PORT) is taken, e.g. by another worker on the same host."""


class TranscriptionFailed(ClipperError):
    """The speech engine failed in a way that may pass on retry."""

    non_retryable = False


class SpeakerModelMissing(ClipperError):
    """The speaker models' weights (from `clipper models install`) are not installed or unreadable.

    A worker set-up problem, not the job's: the `speakers` stage turns it into a transcript without speaker
    labels (and a note saying why) rather than a failed job.
    """


class JobCancelled(ClipperError):
    """The job was cancelled while a stage was running."""


class LLMAuthError(ClipperError):
    """The LLM API refused our key (HTTP 401/403). Retrying with the same key cannot help."""


class LLMUnavailable(ClipperError):
    """The LLM API is rate limiting, failing or unreachable; retried by the stage's retry policy.

    `retry_after_s` is the server's Retry-After hint, when it sent one, so the caller can wait that long.
    """

    non_retryable = False

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(ClipperError):
    """An external provider's circuit breaker is open (clipper/ops/breaker.py): nobody calls it until its probe
    succeeds. Retried like any outage; with CLIPPER_LLM_FALLBACK=offline the text stages use the offline engine
    instead. `retry_after_s`: when the next probe may go."""

    non_retryable = False

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMBadOutput(ClipperError):
    """The model's answer stayed malformed (not JSON, or not the expected shape) after the engine's retries."""

    non_retryable = False


class NotificationFailed(ClipperError):
    """An email or webhook could not be delivered for now (server down, timeout, 5xx); retried."""

    non_retryable = False


class NotificationRejected(ClipperError):
    """The receiver refused the notification (webhook 4xx, SMTP 5xx reply): sending it again cannot help."""


# Speech models and languages (clipper/asr/models.py): refused at submit, and by a stage as input errors.


class UnknownAsrModel(InvalidRequest):
    """A speech model name (CLIPPER_ASR_MODEL, or the job option asr_model) that is not in the table of known
    models; the message names the known ones."""


class LanguageNotSupported(InvalidRequest):
    """The job's language is not one the chosen speech model transcribes (e.g. German with the English-only
    tiny.en): refused at submit and by the transcribe stage, never retried; the message names the model to use."""


class VersionNotFound(ClipperError):
    """A job has no artifact version of that number, or that version holds no such file (e.g. no report.md: the
    stage that was run again made none). The message names the versions there are; `clipper versions JOB`
    lists them."""


# Export and import of a job (`clipper export`, `clipper import`).


class ArchiveInvalid(ClipperError):
    """`clipper import` refuses the archive: truncated, damaged or edited (a checksum in SHA256SUMS or the manifest
    does not match), a member missing or unexpected, a path leaving the archive, a link, or not a clipper export.
    Nothing was stored. Export the job again from its deployment (`clipper export JOB -o job.tar`) and copy it
    whole; `sha256sum -c SHA256SUMS` in the extracted archive names the damaged member."""


class JobExists(ClipperError):
    """`clipper import` of a job whose id this deployment already has: a workflow by that id, or files of that job
    in its store. Nothing was changed. Nothing to do if it is the same job imported before; otherwise remove the
    other job's files (and let its workflow expire) first."""


class ImportNotRegistered(ClipperError):
    """`clipper import`: the Temporal server refused to register the imported job (e.g. a search attribute
    registered there with another type). Every file written was removed again: fix the server as the message
    says, then import again."""


# Follows (`clipper follow`): a feed or account watched on a schedule.


class NotAFeed(ClipperError):
    """A followed URL is not something that lists media: an HTML page with no feed or playlist in it, an XML
    document that is no RSS/Atom feed, a feed that stopped parsing, or a single media (submit that instead).
    Check the URL in a browser: a podcast's feed URL usually ends in .xml, /rss or /feed."""


class FeedEmpty(ClipperError):
    """A followed feed or playlist lists no item with a media URL (yet). A follow counts it as a failed check and
    pauses itself after CLIPPER_FOLLOW_MAX_FAILURES of them; resume it once the source has items."""

    non_retryable = False


# Search (clipper/search/): `clipper search`, `GET /api/search`, the index stage.


class SearchQueryInvalid(ClipperError):
    """A search that cannot be run as asked: no words in the query (empty, or only punctuation), a query over 1,000
    characters, an unknown kind or a limit out of range. The message says which; give a few words that were said."""


class SearchUnavailable(ClipperError):
    """The search index cannot be used now: its PostgreSQL server (CLIPPER_SEARCH_URL) cannot be reached or refused
    the connection, or the SQLite file in the store's folder cannot be opened or written. Retried by the `index`
    stage; `clipper reindex` rebuilds the index from the store once it is back."""

    non_retryable = False


class FollowNotFound(ClipperError):
    """No follow by that id on this server: `clipper follows` lists them."""


def _subclasses(cls: type[ClipperError]) -> list[type[ClipperError]]:
    return [cls, *(d for sub in cls.__subclasses__() for d in _subclasses(sub))]


def error_class(type_name: str) -> type[ClipperError] | None:
    """The typed error of that name (the `type` of an ApplicationError), or None for one that is not ours."""
    return next((c for c in _subclasses(ClipperError) if c.__name__ == type_name), None)


def ends_job(type_name: str) -> bool:
    """Whether a stage that gave up on this error fails the job at once instead of waiting for a manual retry.
    Unknown types (a timeout, an unexpected exception) wait: a person may know better."""
    cls = error_class(type_name)
    return bool(cls and cls.ends_job)
