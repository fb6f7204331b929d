"""Job statistics: the pure computation on synthetic records, then `clipper stats --json` after real jobs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from clipper.errors import InvalidRequest
from clipper.ops.stats import JobRecord, StageRecord, compute_stats, parse_duration, percentile
from tests.helpers import PIPELINE, SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import run_job
from tests.helpers.processes import cli

UNTIL = datetime(2025, 5, 2, 12, 0, tzinfo=timezone.utc)
SINCE = UNTIL - timedelta(hours=24)
# Seconds per stage of a typical done job: transcribe dominates (78 of 100 s).
TYPICAL = {"download": 3.0, "transcribe": 78.0, "speakers": 2.0, "quotes": 4.0, "summary": 4.0, "clips": 5.0, "audiograms": 1.0,
           "report": 2.8, "index": 0.2}


def done_job(i: int, scale: float = 1.0, attempts: dict[str, int] | None = None) -> JobRecord:
    start = SINCE + timedelta(hours=1 + i)
    stages = [StageRecord(name=name, attempt=(attempts or {}).get(name, 1), seconds=s * scale)
              for name, s in TYPICAL.items()]
    return JobRecord(job_id=f"clip-{i}", state="done", started_at=start,
                     finished_at=start + timedelta(seconds=100 * scale), stages=stages)


def failed_job(i: int, error: str, stage: str, state: str = "failed", attempt: int = 3) -> JobRecord:
    return JobRecord(job_id=f"clip-f{i}", state=state, started_at=SINCE + timedelta(hours=2), error_type=error,
                     failed_stage=stage, stages=[StageRecord(name=stage, attempt=attempt)])


def test_no_jobs_says_so():
    stats = compute_stats([], SINCE, UNTIL)
    assert stats.jobs == 0 and stats.failure_rate is None and stats.stages == [] and stats.done_per_hour == 0
    assert stats.suggestions == ["no jobs in the window (since 2025-05-01 12:00 UTC): nothing to measure"]


def test_percentile_interpolates_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(1, 21))), 0.95) == pytest.approx(19.05)


def test_mixed_window():
    records = [done_job(i, attempts={"download": 2} if i < 3 else None) for i in range(8)]
    records += [failed_job(1, "DownloadFailed", "download", attempt=6),
                failed_job(2, "DownloadFailed", "download", attempt=6),
                failed_job(3, "LLMUnavailable", "quotes", state="waiting_for_retry", attempt=8),
                JobRecord(job_id="clip-r", state="running"), JobRecord(job_id="clip-c", state="cancelled")]
    stats = compute_stats(records, SINCE, UNTIL)

    assert stats.jobs == 13
    assert stats.by_state == {"done": 8, "failed": 2, "waiting_for_retry": 1, "running": 1, "cancelled": 1}
    assert stats.failure_rate == round(3 / 11, 4)
    assert stats.failures_by_type == {"DownloadFailed": 2, "LLMUnavailable": 1}
    assert stats.failures_by_stage == {"download": 2, "quotes": 1}
    assert stats.retried_jobs == 6  # 3 done jobs retried download, and the 3 failures' stages
    stages = {s.name: s for s in stats.stages}
    assert list(stages) == PIPELINE
    assert stages["transcribe"].share == 0.78 and stages["transcribe"].measured == 8
    assert stages["transcribe"].mean_s == stages["transcribe"].p50_s == stages["transcribe"].p95_s == 78.0
    assert (stages["download"].runs, stages["download"].measured) == (10, 8)
    assert (stages["download"].retried, stages["download"].extra_attempts) == (5, 3 + 10)
    assert (stages["quotes"].retried, stages["quotes"].extra_attempts) == (1, 7)
    assert stats.job_mean_s == stats.job_p50_s == 100.0
    # Jobs ran from the first start (1 h into the window) to its end (the failed records have no end: still open).
    assert stats.busy_s == 23 * 3600 and stats.done_per_hour == round(8 / 23, 3)

    assert stats.suggestions[0] == "failure rate 27 % mostly DownloadFailed: check the network / the media host"
    assert stats.suggestions[1].startswith("1 job(s) waiting for a manual retry: clipper list --state failed")
    assert "transcribe takes 78 % of job time: scale the worker pool that runs it (worker-cpu)" in stats.suggestions
    assert ("download needed retries in 50 % of its runs (13 extra attempt(s)): check the network or the media hosts"
            in stats.suggestions)


def test_throughput_is_measured_over_the_span_jobs_ran():
    """6 jobs done in the last 15 minutes of a 24 h window are 24 jobs/hour, not 0.25 (as once reported)."""
    start = UNTIL - timedelta(minutes=15)
    records = [JobRecord(job_id=f"clip-{i}", state="done", started_at=start + timedelta(seconds=150 * i),
                         finished_at=start + timedelta(seconds=150 * (i + 1))) for i in range(6)]
    stats = compute_stats(records, SINCE, UNTIL)
    assert stats.busy_s == 15 * 60
    assert stats.done_per_hour == 24.0
    # A job that started before the window counts from the window's start; one still open, until now.
    early = JobRecord(job_id="clip-e", state="running", started_at=SINCE - timedelta(hours=1))
    assert compute_stats([*records, early], SINCE, UNTIL).busy_s == 24 * 3600


def test_durations_spread_and_healthy_window():
    records = [done_job(i, scale=1.0) for i in range(9)] + [done_job(9, scale=20.0)]
    stats = compute_stats(records, SINCE, UNTIL)
    transcribe = next(s for s in stats.stages if s.name == "transcribe")
    assert transcribe.p50_s == 78.0 and transcribe.mean_s == pytest.approx((9 * 78 + 1560) / 10)
    assert transcribe.p95_s == pytest.approx(78 + (1560 - 78) * 0.55)
    assert stats.failure_rate == 0.0 and stats.retried_jobs == 0
    assert any(s.startswith("transcribe p95 (") and "its median (78.0 s)" in s for s in stats.suggestions)

    calm = compute_stats([done_job(i) for i in range(3)], SINCE, UNTIL)
    assert calm.suggestions == ["transcribe takes 78 % of job time: scale the worker pool that runs it (worker-cpu)"]
    even = [JobRecord(job_id="x", state="done", stages=[StageRecord(name=n, attempt=1, seconds=1.0) for n in TYPICAL])]
    assert compute_stats(even, SINCE, UNTIL).suggestions == ["no failures and no frequent retries in 1 job(s): "
                                                            "nothing to change"]


def test_bad_input_failures_and_a_stuck_queue():
    bad = [failed_job(i, "MediaNotFound", "download", attempt=1) for i in range(2)] + [done_job(0)]
    assert compute_stats(bad, SINCE, UNTIL).suggestions[0].startswith(
        "failure rate 67 % all MediaNotFound: bad or unreachable media submitted")
    queued = compute_stats([JobRecord(job_id="q", state="queued")], SINCE, UNTIL)
    assert queued.suggestions == ["1 job(s) queued and none running or done: is a worker polling the task queue?"]


def test_parse_duration():
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("1.5") == timedelta(hours=1.5)
    for bad in ("", "h", "-1h", "0h", "1y", "abc"):
        with pytest.raises(InvalidRequest):
            parse_duration(bad)


# --- for real: a done job and a failed one, then the CLI ---


def test_cli_stats_after_real_jobs(settings):
    async def body():
        with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
            _, done_id, done = await run_job(settings, server.url("/episode.mp3"))
            _, failed_id, failed = await run_job(settings, server.url("/missing.mp3"))
        assert getattr(done, "state", None) is not None, done
        assert isinstance(failed, Exception)
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # visibility is eventually consistent
            result = await cli(settings, "stats", "--since", "1h", "--json")
            assert result.code == 0, result.err
            stats = json.loads(result.out)
            if stats["by_state"] == {"done": 1, "failed": 1} or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        text = await cli(settings, "stats", columns=200)
        return stats, text

    stats, text = run(body())
    assert stats["jobs"] == 2 and stats["by_state"] == {"done": 1, "failed": 1}, stats
    assert stats["failure_rate"] == 0.5
    assert stats["failures_by_type"] == {"MediaNotFound": 1} and stats["failures_by_stage"] == {"download": 1}
    stages = {s["name"]: s for s in stats["stages"]}
    assert set(stages) == set(PIPELINE)
    assert all(s["measured"] == 1 and s["mean_s"] > 0 for name, s in stages.items() if name != "download")
    assert stages["download"]["runs"] == 2 and stages["download"]["measured"] == 1
    assert sum(s["share"] for s in stages.values()) == pytest.approx(1.0, abs=0.01)
    # Throughput over the span the two jobs ran (seconds), not over the hour of the window.
    assert 0 < stats["busy_s"] < 600 and stats["done_per_hour"] == round(1 / (stats["busy_s"] / 3600), 3)
    assert stats["job_mean_s"] > 0 and stats["job_mean_s"] <= stats["busy_s"]
    assert stats["suggestions"] and stats["suggestions"][0].startswith("failure rate 50 % all MediaNotFound")
    assert text.code == 0 and "2 job(s) started since" in text.out and "suggestions" in text.out
    assert "jobs ran)" in text.out  # throughput says the span it is measured over
    assert "failure rate 50 %" in text.out and "transcribe" in text.out
