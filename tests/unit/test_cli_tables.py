"""The CLI's tables on an 80-column terminal: every line fits, no header or short cell is squashed (`progre…`,
`2026-1…`), a job's id is never shortened, and the long column (a title, an error, a detail) gives way instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from clipper.job.stages import STAGES
from clipper.job.versions import ArtifactVersion
from clipper.job.status import JobState, JobStatus, StageError, StageState, StageStatus
from clipper.ops.breaker import BreakerPhase, BreakerState
from clipper.ops.stats import StageStats, Stats
from clipper.store.refs import ArtifactRef
from clipper_app.cli import render
from clipper_app.client import AuditEntry, JobSummary

NOW = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
LONG = "An extraordinarily long episode title that goes on and on about everything under the sun, part 2 of 7"


@pytest.fixture
def screen(monkeypatch) -> Console:
    console = Console(width=80, record=True, force_terminal=False)
    monkeypatch.setattr(render, "console", console)
    return console


def lines(console: Console) -> list[str]:
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    return text.splitlines()


def jobs() -> list[JobSummary]:
    return [
        JobSummary(job_id="clip-4cc32813b84f8563", run_id="r1", status="running", state="running", stage="transcribe",
                   progress=45, priority=3, source="www.youtube.com", title=LONG, started_at=NOW - timedelta(minutes=3)),
        JobSummary(job_id="clip-0123456789abcdef", run_id="r2", status="completed", state="done", progress=100,
                   source="feeds.example-podcast-network.com", started_at=NOW - timedelta(hours=2, minutes=5)),
        JobSummary(job_id="clip-fedcba9876543210", run_id="r3", status="running", started_at=NOW - timedelta(seconds=9)),
        JobSummary(job_id="clip-aaaaaaaaaaaaaaaa", run_id="r4", status="running", state="paused", stage="audiograms",
                   progress=100, title="日本語のタイトルがとても長い場合にはどうなるでしょうか" * 2,
                   started_at=NOW - timedelta(days=3)),
    ]


def test_the_job_list_fits_80_columns_with_whole_ids_and_titles_in_what_is_left(screen):
    screen.print(render.jobs_table(jobs(), 80, NOW))
    out = lines(screen)
    header = next(line for line in out if line.startswith("job "))
    assert header.split() == ["job", "state", "stage", "age", "title"]
    rows = {line.split()[0]: line for line in out if line.startswith("clip-")}
    assert set(rows) == {job.job_id for job in jobs()}  # every id whole
    running = rows["clip-4cc32813b84f8563"]
    assert "transcribe 45%" in running and "3m ago" in running and running.rstrip().endswith("…")
    assert "An extraordinarily" in running
    done = rows["clip-0123456789abcdef"]
    assert "2h ago" in done and "feeds.example-podcast-" in done and "100%" not in done  # its host: no title
    assert "queued" in rows["clip-fedcba9876543210"] and "9s ago" in rows["clip-fedcba9876543210"]
    assert "3d ago" in rows["clip-aaaaaaaaaaaaaaaa"] and "audiograms 100%" in rows["clip-aaaaaaaaaaaaaaaa"]


@pytest.mark.parametrize("width", [40, 60, 100, 200])
def test_other_widths_keep_the_id_whole(width):
    console = Console(width=width, record=True)
    console.print(render.jobs_table(jobs(), width, NOW))
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines()), text
    assert all(job.job_id in text for job in jobs())
    if width >= 100:
        assert LONG[:40] in text


def test_ages():
    assert [render.ago(NOW - d, NOW) for d in (timedelta(0), timedelta(seconds=59), timedelta(minutes=1),
                                               timedelta(hours=23, minutes=59), timedelta(days=400))] == \
        ["0s ago", "59s ago", "1m ago", "23h ago", "1y ago"]
    assert render.ago(None, NOW) == "" and render.ago(NOW + timedelta(seconds=5), NOW) == "0s ago"


def test_status_history_stats_breakers_versions_fit_80_columns(screen):
    started = NOW - timedelta(minutes=5)
    stages = [StageStatus(name=name, state=StageState.done, attempt=1, progress=1.0, started_at=started,
                          finished_at=NOW) for name in STAGES]
    stages[3] = StageStatus(name=STAGES[3], state=StageState.failed, attempt=4, progress=0.25, started_at=started,
                            error=StageError(type="LLMUnavailable", message="the LLM at https://api.example.com "
                                             "answered 503 four times; retry later or set text_engine=offline"))
    status = JobStatus(job_id="clip-4cc32813b84f8563", url="https://example.com/" + "x" * 90, title=LONG,
                       state=JobState.failed, stages=stages, started_at=started,
                       artifacts={"audiograms/01-9x16.mp4": ArtifactRef(name="audiograms/01-9x16.mp4",
                                                                        sha256="ab" * 32, size=12_345_678,
                                                                        stage="audiograms", created_at=NOW)})
    render.print_status(status)
    render.print_outputs(status, "/home/someone/.local/share/clipper/jobs/clip-4cc32813b84f8563")
    render.print_history("clip-4cc32813b84f8563", [
        AuditEntry(time=NOW - timedelta(days=1), event="update completed", stage="transcribe", attempt=2,
                   detail="set_priority(1) → 1 " + "and a long detail " * 6),
        AuditEntry(time=NOW, event="stage failed", stage="quotes", attempt=4, detail="LLMUnavailable: " + LONG)])
    render.print_stats(Stats(since=NOW - timedelta(days=1), until=NOW, jobs=12, by_state={"done": 10, "failed": 2},
                             stages=[StageStats(name=name, runs=12, mean_s=845.2, p50_s=731.0, p95_s=1402.9,
                                                share=0.41, retried=3, extra_attempts=11) for name in STAGES]), "24h")
    render.print_breakers([BreakerState(provider="api.openai-compatible.example.com", phase=BreakerPhase.open,
                                        failures=5, opened_at=NOW, opens=2, probes=1, last_error=LONG)])
    ref = ArtifactRef(name="versions/12/report.md", sha256="cd" * 32, size=4_321, stage="report", created_at=NOW)
    render.print_versions("clip-4cc32813b84f8563", [ArtifactVersion(
        number=12, stage="report", reason="speakers named", options={"text_engine": "offline", "llm_model": LONG},
        created_at=NOW, produced_at=NOW, artifacts=[ref])], "/home/someone/.local/share/clipper/jobs/x")
    out = lines(screen)
    text = "\n".join(out)
    for header in ("progress", "attempt", "started", "finished", "artifact", "event", "extra attempts",
                   "since (UTC)", "failures", "kept (UTC)", "4.3 kB"):
        assert header in text, header
    assert "…" not in "\n".join(line for line in out if "stage" in line and "state" in line)  # headers whole
    assert "LLMUnavailable" in text and "23.4 min" in text and "12345678" in text
    assert text.count("clip-4cc32813b84f8563") >= 2  # the status's and the audit log's titles
