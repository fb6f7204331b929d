"""Job statistics over a time window, and plain suggestions drawn from them. No Temporal here.

`compute_stats` is a pure function of per-job records (`JobRecord`): `ClipperClient.stats` gathers them
from visibility and the jobs' results, `clipper stats` prints them. Definitions:

- states: `done`, `failed`, `waiting_for_retry` (a stage gave up and the job waits for retry/abandon),
  `running`, `queued`, `paused`, `cancelled`;
- failure rate: (failed + waiting_for_retry) / (done + failed + waiting_for_retry); cancelled and unfinished
  jobs do not count;
- stage durations: wall time of the stage's last run (started → finished, automatic retries included);
  `share` is the stage's part of the summed stage time;
- retries: a stage that needed more than one attempt in a job;
- throughput: done jobs per hour of the span in which the window's jobs ran, from the first one's start to the
  last one's end (now, for a job still open), within the window: 6 jobs done in the last 15 minutes of a 24 h
  window are 24 jobs/hour, not 0.25. `busy_s` is that span.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from clipper.errors import InvalidRequest
from clipper.job.stages import STAGES
from clipper.job.status import WAITING_FOR_RETRY

WAITING = WAITING_FOR_RETRY  # failed but still open, waiting for retry/abandon (clipper/job/status.py)
STATE_ORDER = ("done", "failed", WAITING, "running", "paused", "queued", "cancelled", "unknown")

# The worker pool (docker-compose service) that runs each stage: what to scale when a stage dominates.
POOLS = {"download": "worker-io", "clips": "worker-io", "report": "worker-io", "transcribe": "worker-cpu",
         "quotes": "worker-llm", "summary": "worker-llm"}
# What a stage's retries usually point at.
DEPENDS_ON = {"download": "the network or the media hosts", "transcribe": "the speech engine or busy workers",
              "quotes": "the LLM API", "summary": "the LLM API", "clips": "the workers' disk or ffmpeg",
              "report": "the workers' disk"}
# What to do about the most common failure, by error type.
ADVICE = {
    "DownloadFailed": "check the network / the media host",
    "StageTimedOut": "raise the stage's timeout (CLIPPER_POLICIES__<STAGE>__TIMEOUT_BASE_S) or add workers",
    "TranscriptionFailed": "check the speech engine (CLIPPER_ASR_*) and the workers' memory",
    "LLMAuthError": "the LLM API refuses the key: check CLIPPER_LLM_API_KEY",
    "LLMUnavailable": "the LLM API is down or rate limiting: retry later, or retry with --set text_engine=offline",
    "LLMBadOutput": "the model's answers are malformed: try another model (clipper retry JOB --set llm_model=…)",
    "StorageFull": "free disk space on the workers' storage",
    "StorageUnavailable": "the shared artifact store (S3/MinIO) is down or unreachable: check it and "
                          "CLIPPER_S3_ENDPOINT_URL",
    "StorageMisconfigured": "the shared artifact store refuses the workers: check the bucket (CLIPPER_STORAGE_URL) "
                            "and the AWS credentials",
    "EngineNotConfigured": "fix the engine settings of the workers",
    "MediaTooLong": "long media are refused: raise CLIPPER_MAX_DURATION_S if they are wanted",
    "MediaTooLarge": "large media are refused: raise CLIPPER_MAX_DOWNLOAD_BYTES if they are wanted",
}
BAD_INPUT = {"UnsupportedUrl", "ForbiddenAddress", "LocalPathNotAllowed", "MediaNotFound", "AccessDenied",
             "NoMediaFound", "NoAudioStream", "InvalidMedia", "InvalidRequest"}

FAILURE_RATE_WORTH_SAYING = 0.05
DOMINANT_SHARE = 0.5
RETRY_RATE_WORTH_SAYING = 0.2


class StageRecord(BaseModel):
    name: str
    attempt: int = 0  # attempts of its last run (1 = no retry); 0 = not run
    seconds: float | None = None  # wall time of its last run, when known


class JobRecord(BaseModel):
    """One job as the statistics see it."""

    job_id: str
    state: str  # one of STATE_ORDER
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_type: str | None = None
    failed_stage: str | None = None
    stages: list[StageRecord] = Field(default_factory=list)


class StageStats(BaseModel):
    name: str
    runs: int = 0  # jobs in which the stage ran
    measured: int = 0  # of those, runs with a known duration
    mean_s: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    share: float | None = None  # of all measured stage time, 0-1
    retried: int = 0  # jobs in which this stage needed more than one attempt
    extra_attempts: int = 0  # attempts beyond the first, summed over jobs


class Stats(BaseModel):
    since: datetime
    until: datetime
    jobs: int = 0
    truncated: bool = False  # more jobs matched than were read
    by_state: dict[str, int] = Field(default_factory=dict)
    failure_rate: float | None = None
    failures_by_type: dict[str, int] = Field(default_factory=dict)
    failures_by_stage: dict[str, int] = Field(default_factory=dict)
    retried_jobs: int = 0  # jobs with at least one stage retried
    stages: list[StageStats] = Field(default_factory=list)
    job_mean_s: float | None = None  # done jobs, start to finish
    job_p50_s: float | None = None
    job_p95_s: float | None = None
    done_per_hour: float = 0.0
    busy_s: float | None = None  # the span the throughput is measured over (None: no job with a start time)
    suggestions: list[str] = Field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def compute_stats(records: list[JobRecord], since: datetime, until: datetime, truncated: bool = False) -> Stats:
    stats = Stats(since=since, until=until, jobs=len(records), truncated=truncated)
    states = Counter(r.state for r in records)
    stats.by_state = {s: states[s] for s in (*STATE_ORDER, *sorted(set(states) - set(STATE_ORDER))) if states[s]}
    failures = [r for r in records if r.state in ("failed", WAITING)]
    decided = states["done"] + len(failures)
    stats.failure_rate = _r(len(failures) / decided, 4) if decided else None
    stats.failures_by_type = dict(Counter(r.error_type or "unknown" for r in failures).most_common())
    stats.failures_by_stage = dict(Counter(r.failed_stage or "unknown" for r in failures).most_common())

    seconds: dict[str, list[float]] = {}
    ran: Counter[str] = Counter()
    retried: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    for record in records:
        for stage in record.stages:
            if stage.attempt >= 1 or stage.seconds is not None:
                ran[stage.name] += 1
            if stage.seconds is not None and stage.seconds >= 0:
                seconds.setdefault(stage.name, []).append(stage.seconds)
            if stage.attempt > 1:
                retried[stage.name] += 1
                extra[stage.name] += stage.attempt - 1
    stats.retried_jobs = sum(1 for r in records if any(s.attempt > 1 for s in r.stages))
    total = sum(sum(v) for v in seconds.values())
    names = [s for s in STAGES if s in ran] + sorted(set(ran) - set(STAGES))
    for name in names:
        values = seconds.get(name, [])
        stats.stages.append(StageStats(
            name=name, runs=ran[name], measured=len(values), mean_s=_r(sum(values) / len(values)) if values else None,
            p50_s=_r(percentile(values, 0.5)), p95_s=_r(percentile(values, 0.95)),
            share=_r(sum(values) / total, 4) if total and values else None,
            retried=retried[name], extra_attempts=extra[name],
        ))

    durations = [(r.finished_at - r.started_at).total_seconds() for r in records
                 if r.state == "done" and r.started_at and r.finished_at]
    stats.job_mean_s = _r(sum(durations) / len(durations)) if durations else None
    stats.job_p50_s, stats.job_p95_s = _r(percentile(durations, 0.5)), _r(percentile(durations, 0.95))
    stats.busy_s = busy_span_s(records, since, until)
    if stats.busy_s:
        stats.done_per_hour = round(states["done"] / (stats.busy_s / 3600), 3)
    stats.suggestions = suggestions(stats)
    return stats


def busy_span_s(records: list[JobRecord], since: datetime, until: datetime) -> float | None:
    """Seconds from the first job's start to the last job's end (`until` for one still open), clipped to the window:
    the time over which jobs were actually being run, not the whole window."""
    starts = [r.started_at for r in records if r.started_at is not None]
    if not starts:
        return None
    ends = [r.finished_at or until for r in records if r.started_at is not None]
    span = (min(max(ends), until) - max(min(starts), since)).total_seconds()
    return round(span, 3) if span > 0 else None


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.0f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def suggestions(stats: Stats) -> list[str]:
    """Plain advice drawn from the numbers, most important first."""
    if stats.jobs == 0:
        return [f"no jobs in the window (since {stats.since:%Y-%m-%d %H:%M} UTC): nothing to measure"]
    out: list[str] = []
    failed = sum(stats.failures_by_type.values())
    if failed and stats.failure_rate is not None and stats.failure_rate >= FAILURE_RATE_WORTH_SAYING:
        kind, count = next(iter(stats.failures_by_type.items()))
        mostly = f"mostly {kind}" if count < failed else f"all {kind}"
        if kind in ADVICE:
            advice = ADVICE[kind]
        elif kind in BAD_INPUT:
            advice = "bad or unreachable media submitted: check what is submitted (clipper list --state failed)"
        else:
            advice = "see clipper history JOB of the failed jobs (clipper list --state failed)"
        out.append(f"failure rate {_pct(stats.failure_rate)} {mostly}: {advice}")
    waiting = stats.by_state.get(WAITING, 0)
    if waiting:
        out.append(f"{waiting} job(s) waiting for a manual retry: clipper list --state failed, then "
                   f"clipper retry JOB (once the cause is fixed) or clipper abandon JOB")
    measured = [s for s in stats.stages if s.share is not None]
    top = max(measured, key=lambda s: s.share or 0.0, default=None)
    if top is not None and (top.share or 0) >= DOMINANT_SHARE:
        pool = POOLS.get(top.name)
        out.append(f"{top.name} takes {_pct(top.share or 0)} of job time: scale the worker pool that runs it"
                   + (f" ({pool})" if pool else ""))
    for stage in stats.stages:
        if stage.retried and stage.retried / stage.runs >= RETRY_RATE_WORTH_SAYING:
            cause = DEPENDS_ON.get(stage.name, "its dependencies")
            out.append(f"{stage.name} needed retries in {_pct(stage.retried / stage.runs)} of its runs "
                       f"({stage.extra_attempts} extra attempt(s)): check {cause}")
    for stage in stats.stages:
        if stage.measured >= 5 and stage.p50_s and stage.p95_s and stage.p95_s > 3 * stage.p50_s and stage.p95_s > 10:
            out.append(f"{stage.name} p95 ({_secs(stage.p95_s)}) is {stage.p95_s / stage.p50_s:.0f}× its median "
                       f"({_secs(stage.p50_s)}): some jobs wait much longer (long media, or saturated workers)")
    active = stats.by_state.get("running", 0) + stats.by_state.get("done", 0)
    queued = stats.by_state.get("queued", 0)
    if queued and not active:
        out.append(f"{queued} job(s) queued and none running or done: is a worker polling the task queue?")
    if not out:
        out.append(f"no failures and no frequent retries in {stats.jobs} job(s): nothing to change")
    return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 3600}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d`, `2w`; a bare number is hours."""
    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise InvalidRequest(f"expected a duration like 30m, 24h or 7d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
