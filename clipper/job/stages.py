"""The stage table: every stage declared once, with what the rest of the product needs to know about it.

A stage is a step of a job that the user sees (`download`, `transcribe`, ...): it has a place in `JobStatus`,
a pool of workers that runs it, a default retry policy and timeouts, and a default rate (seconds of work per
second of audio) for the ETA. Its `activities` are the Temporal activity types that do its work: usually one,
several for chunked transcription. Helpers (`HELPERS`) are activities a job runs that are not stages of its
own (cleanup after a cancel, notifications). The workflow, the worker's pool registration, the settings and
the tests all read this table; adding a stage means a row here, an activity, and a line in `MediaJob.run`.

Pools differ by what bounds them: `io` (network and disk), `cpu` (the speech model), `llm` (a remote API).
Each polls `<job's queue>-<pool>`; `workflow` is the job's own queue (workflows, batch activities).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


class StagePolicy(BaseModel):
    """Retry policy and timeouts of one stage. Timeouts scale with the media's duration.

    Two retry budgets, because the two kinds of failure say different things. `max_attempts` counts attempts
    that ended in an error (the code raised): a deterministic bug or a refusal repeats, so a few tries are
    enough. `lost_worker_attempts` are extra attempts for attempts that never ended (the worker was killed,
    OOM, host lost: a heartbeat or start-to-close timeout): those say nothing about the input, and a long
    stage on a busy cluster may meet several. Temporal's retry policy allows their sum (`total_attempts`);
    the activity runtime (activities/runtime.py) counts the errors and stops at `max_attempts` of them.
    """

    initial_interval_s: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval_s: float = 60.0
    max_attempts: int = 5  # attempts that may end in an error; 0 = unlimited (and so unlimited in total)
    lost_worker_attempts: int = 0  # extra attempts for attempts whose worker was lost (timed out)
    heartbeat_timeout_s: float = 60.0
    timeout_base_s: float = 600.0
    timeout_per_audio_s: float = 0.0

    def start_to_close_s(self, duration_s: float | None) -> float:
        return self.timeout_base_s + self.timeout_per_audio_s * (duration_s or 0.0)

    @property
    def total_attempts(self) -> int:
        """What Temporal's retry policy allows: errors and lost workers together (0 = unlimited)."""
        return 0 if self.max_attempts <= 0 else self.max_attempts + max(0, self.lost_worker_attempts)


@dataclass(frozen=True)
class Stage:
    name: str
    pool: str  # io | cpu | llm
    policy: StagePolicy  # default; CLIPPER_POLICIES__<STAGE>__<FIELD> overrides field by field
    rate: float = 0.01  # s of work per audio s on 2 cores with the default engines: the ETA's starting point
    activities: tuple[str, ...] = ()  # activity types doing its work; default: one named like the stage
    errors: tuple[str, ...] = ()  # typed errors (clipper/errors.py) its work is known to raise, besides COMMON_ERRORS
    # The activity type of the pieces the stage may run side by side (chunks), whose heartbeats add up to the
    # stage's progress (JobStatus.fold_running); None: one activity at a time carries the stage.
    parts: str | None = None

    @property
    def activity_types(self) -> tuple[str, ...]:
        return self.activities or (self.name,)


# Downloads are network-bound and worth many patient retries; transcription is CPU-bound, long, and heartbeats
# from a thread, so its heartbeat timeout is short enough to notice a dead worker fast; LLM calls meet rate
# limits and outages that pass, so they retry patiently (a 429's Retry-After overrides the backoff). Lost
# workers get their own budget: most for transcription, the long, memory-hungry stage a redeploy or an OOM
# kill is most likely to hit, so four kills of one chunk's worker leave its error budget whole.
PIPELINE: tuple[Stage, ...] = (
    Stage("download", "io", StagePolicy(initial_interval_s=2, max_interval_s=60, max_attempts=6,
                                        lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=3600),
          rate=0.02, errors=("DownloadFailed", "DownloadStalled", "TooManyRedirects", "MediaNotFound", "AccessDenied",
                             "NoMediaFound", "NoAudioStream", "InvalidMedia", "MediaTooLong", "MediaTooLarge",
                             "CredentialsInUrl", "ForbiddenAddress")),
    Stage("transcribe", "cpu", StagePolicy(initial_interval_s=2, max_interval_s=30, max_attempts=4,
                                           lost_worker_attempts=6, heartbeat_timeout_s=30, timeout_base_s=300,
                                           timeout_per_audio_s=2.0),
          rate=0.12, activities=("transcribe", "plan_transcription", "transcribe_chunk", "merge_transcript"),
          parts="transcribe_chunk",
          errors=("TranscriptionFailed", "EngineNotConfigured")),
    # Who speaks when: CPU-bound like transcription, but short (≤ 0.05 × the audio), and it never fails a job
    # for want of a speaker model (the transcript then stays unlabelled).
    Stage("speakers", "cpu", StagePolicy(initial_interval_s=2, max_interval_s=30, max_attempts=4,
                                         lost_worker_attempts=6, heartbeat_timeout_s=30, timeout_base_s=300,
                                         timeout_per_audio_s=0.5),
          rate=0.03),
    Stage("quotes", "llm", StagePolicy(initial_interval_s=2, max_interval_s=120, max_attempts=8,
                                       lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=900,
                                       timeout_per_audio_s=0.5),
          errors=("LLMUnavailable", "LLMBadOutput", "LLMAuthError", "EngineNotConfigured")),
    Stage("summary", "llm", StagePolicy(initial_interval_s=2, max_interval_s=120, max_attempts=8,
                                        lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=900,
                                        timeout_per_audio_s=0.5),
          errors=("LLMUnavailable", "LLMBadOutput", "LLMAuthError", "EngineNotConfigured")),
    Stage("clips", "io", StagePolicy(initial_interval_s=1, max_interval_s=30, max_attempts=5,
                                     lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=300,
                                     timeout_per_audio_s=0.2),
          rate=0.02),
    # Videos of the top quotes: ffmpeg encodes a few short videos, so the time hardly grows with the media (only
    # the decode up to each quote does); the rate is measured on a 10-minute input (bench/audiograms.py).
    Stage("audiograms", "io", StagePolicy(initial_interval_s=1, max_interval_s=30, max_attempts=5,
                                          lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=600,
                                          timeout_per_audio_s=0.05),
          rate=0.02),
    Stage("report", "io", StagePolicy(initial_interval_s=1, max_interval_s=30, max_attempts=5,
                                      lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=120),
          rate=0.005),
    # Every transcript line, quote and chapter title into the search index (clipper/search/): a few thousand rows in
    # one transaction, seconds at most; an index server's outage passes, so it retries patiently.
    Stage("index", "io", StagePolicy(initial_interval_s=1, max_interval_s=30, max_attempts=5,
                                     lost_worker_attempts=4, heartbeat_timeout_s=60, timeout_base_s=120),
          rate=0.002, errors=("SearchUnavailable",)),
)
# Errors any stage may meet (its store, its input artifacts); with each stage's own `errors`, the failure series
# a worker creates at 0 when it starts (activities/metrics.py), so dashboards show 0 rather than no data.
COMMON_ERRORS: tuple[str, ...] = ("CorruptArtifact", "StorageFull", "StorageUnavailable", "StorageMisconfigured")
# Activities of a job that are not stages of their own: they run on a pool but have no row in JobStatus.
HELPERS: tuple[Stage, ...] = (
    # The server's default retry policy (unlimited attempts): dropping scratch files must happen.
    Stage("cleanup", "io", StagePolicy(initial_interval_s=1, max_interval_s=100, max_attempts=0, timeout_base_s=120),
          activities=("discard_scratch",)),
    # A notification outlives an SMTP or webhook outage of about an hour; each attempt is bounded.
    Stage("notify", "io", StagePolicy(initial_interval_s=5, max_interval_s=300, max_attempts=20,
                                      timeout_base_s=60)),
    # Names given to speakers (`name_speakers`) rendered into the outputs that show them, audiograms drawn again
    # (a few videos: minutes at most); a bad name is refused before this runs, so a few attempts are enough.
    Stage("names", "io", StagePolicy(initial_interval_s=1, max_interval_s=30, max_attempts=5,
                                     lost_worker_attempts=4, timeout_base_s=600),
          activities=("render_names",)),
)
# The activities of a batch (workflow BatchJob): list the source, read the items in pages, pass a priority on.
BATCH = Stage("batch", "workflow", StagePolicy(initial_interval_s=2, max_interval_s=60, max_attempts=5),
              activities=("expand_batch", "read_batch_items", "forward_priority"))
# The activities of a follow's check (workflow FollowCheck): list the source and start the new items' jobs; record
# a check that gave up (and pause the follow after too many). A source that fails is asked again with backoff
# within the check; the schedule asks again at the next interval.
FOLLOW = Stage("follow", "workflow", StagePolicy(initial_interval_s=2, max_interval_s=30, max_attempts=3,
                                                 lost_worker_attempts=3, heartbeat_timeout_s=10, timeout_base_s=900),
               activities=("check_follow", "follow_failed"))
POOLS: tuple[str, ...] = ("workflow", "io", "cpu", "llm")

# Views of the table, for the places that need one column of it.
STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
BY_NAME: dict[str, Stage] = {s.name: s for s in (*PIPELINE, *HELPERS, BATCH, FOLLOW)}
DEFAULT_POLICIES: dict[str, StagePolicy] = {s.name: s.policy for s in PIPELINE}
DEFAULT_RATES: dict[str, float] = {s.name: s.rate for s in PIPELINE}
STAGE_POOLS: dict[str, str] = {s.name: s.pool for s in (*PIPELINE, *HELPERS)}
ACTIVITY_STAGES: dict[str, Stage] = {a: s for s in (*PIPELINE, *HELPERS, BATCH, FOLLOW) for a in s.activity_types}


def pool_queue(job_queue: str, pool: str) -> str:
    """The task queue a pool polls: the job's own for `workflow`, `<queue>-<pool>` for the others."""
    return job_queue if pool == "workflow" else f"{job_queue}-{pool}"
