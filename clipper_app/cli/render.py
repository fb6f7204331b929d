"""How the CLI prints things: rich tables for a job's status and outputs, job lists and audit logs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from clipper.clock import duration
from clipper.job.batch import BatchStatus
from clipper.job.status import JobStatus
from clipper.ops.breaker import BreakerPhase, BreakerState
from clipper.ops.stats import Stats
from clipper_app.client import AuditEntry, JobSummary

console = Console()
err_console = Console(stderr=True)

EVENT_STYLES = {"stage failed": "red", "stage timed out": "red", "job failed": "bold red", "retry": "yellow",
                "signal": "cyan", "update accepted": "cyan", "update completed": "cyan",
                "job completed": "bold green", "stage completed": "green"}


def time_of_day(value: datetime | None) -> str:
    """A moment's time of day (UTC), not a length: lengths are clipper/clock.py's `duration`."""
    return value.strftime("%H:%M:%S") if value else ""


def summary_line(status: JobStatus) -> str:
    """Progress, priority, ETA and why the job is waiting, if it is."""
    parts = [f"progress {status.progress:.0%}", f"priority {status.priority}"]
    if status.started_at:
        parts.append(f"started {time_of_day(status.started_at)} UTC")
    if status.eta_s is not None:
        parts.append(f"ETA {duration(status.eta_s)}")
    if status.paused_since:
        parts.append(f"paused since {time_of_day(status.paused_since)} UTC")
    if status.waiting_since:
        parts.append(f"waiting for retry/abandon since {time_of_day(status.waiting_since)} UTC")
    return " · ".join(parts)


def print_status(status: JobStatus) -> None:
    table = Table(title=escape(f"{status.job_id} · {status.title or status.url}"), show_lines=False)
    for col in ("stage", "state", "progress", "attempt", "started", "finished", "error"):
        table.add_column(col)
    for s in status.stages:
        table.add_row(
            s.name, s.state.value, f"{s.progress:.0%}", str(s.attempt or ""), time_of_day(s.started_at), time_of_day(s.finished_at),
            Text(f"{s.error.type}: {s.error.message}") if s.error else "",
        )
    console.print(table)
    console.print(f"state: [bold]{status.state.value}[/] · {summary_line(status)}")
    if status.waiting:
        console.print(f"[yellow]{escape(status.waiting)}[/]")
    if status.error:
        console.print(f"[red]{escape(status.error.type)}[/]: {escape(status.error.message)}")


def print_outputs(status: JobStatus, folder: Path | str) -> None:
    table = Table(title=f"outputs in {folder}", title_justify="left")
    for col, justify in (("artifact", "left"), ("bytes", "right"), ("stage", "left"), ("sha256", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for name, ref in sorted(status.artifacts.items()):
        table.add_row(name, str(ref.size), ref.stage, ref.sha256[:12] + "…")
    console.print(table)


def print_jobs(jobs: list[JobSummary]) -> None:
    """Blank cells: the job has no such search attribute (started before they existed, or not picked up yet)."""
    table = Table(title=f"{len(jobs)} job(s)", title_justify="left")
    for col, justify in (("job", "left"), ("state", "left"), ("stage", "left"), ("progress", "right"),
                         ("priority", "right"), ("source", "left"), ("started (UTC)", "left")):
        table.add_column(col, justify=justify, no_wrap=col == "job")
    for job in jobs:
        table.add_row(*(Text(cell) for cell in (
            job.job_id, job.state or "", job.stage or "", "" if job.progress is None else f"{job.progress}%",
            "" if job.priority is None else str(job.priority), job.source or "",
            job.started_at.strftime("%Y-%m-%d %H:%M:%S") if job.started_at else "",
        )))
    console.print(table)


def print_history(job_id: str, entries: list[AuditEntry]) -> None:
    table = Table(title=escape(f"{job_id} · audit log (UTC)"), title_justify="left")
    for col in ("time", "event", "stage", "attempt", "detail"):
        table.add_column(col, overflow="fold", no_wrap=col in ("time", "event"))
    days = {e.time.date() for e in entries}
    fmt = "%H:%M:%S.%f" if len(days) <= 1 else "%Y-%m-%d %H:%M:%S.%f"
    for e in entries:
        table.add_row(e.time.strftime(fmt)[:-3], Text(e.event, style=EVENT_STYLES.get(e.event, "")),
                      Text(e.stage or ""), str(e.attempt or ""), Text(e.detail or ""))
    console.print(table)


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def print_stats(stats: Stats, window: str) -> None:
    states = " · ".join(f"{state} {count}" for state, count in stats.by_state.items())
    more = " (more matched: only the newest were read)" if stats.truncated else ""
    console.print(f"[bold]{stats.jobs}[/] job(s) started since {stats.since:%Y-%m-%d %H:%M} UTC ({escape(window)})"
                  f"{more}" + (f": {states}" if states else ""), highlight=False)
    if stats.failure_rate is not None:
        failed = sum(stats.failures_by_type.values())
        decided = stats.by_state.get("done", 0) + failed
        kinds = ", ".join(f"{kind} {count}" for kind, count in stats.failures_by_type.items())
        console.print(f"failure rate {stats.failure_rate * 100:.0f} % ({failed} of {decided} finished or waiting)"
                      + (f": {escape(kinds)}" if kinds else ""), highlight=False)
    busy = f" (over the {_secs(stats.busy_s)} jobs ran)" if stats.busy_s else ""
    console.print(f"throughput {stats.done_per_hour:.2f} done job(s)/hour{busy}"
                  f" · job time mean {_secs(stats.job_mean_s)} · p50 {_secs(stats.job_p50_s)}"
                  f" · p95 {_secs(stats.job_p95_s)} · {stats.retried_jobs} job(s) with retries", highlight=False)
    if stats.stages:
        table = Table(title="stages (wall time of the last run, retries included)", title_justify="left")
        for col in ("stage", "runs", "mean", "p50", "p95", "share", "retried", "extra attempts"):
            table.add_column(col, justify="left" if col == "stage" else "right")
        for s in stats.stages:
            table.add_row(s.name, str(s.runs), _secs(s.mean_s), _secs(s.p50_s), _secs(s.p95_s),
                          "–" if s.share is None else f"{s.share * 100:.0f} %", str(s.retried), str(s.extra_attempts))
        console.print(table)
    console.print("[bold]suggestions[/]")
    for line in stats.suggestions:
        console.print(Text(f"  • {line}"))


def print_batch_status(status: BatchStatus) -> None:
    """A batch: counts, and its running, failed and latest finished items (`clipper status <job>` for one)."""
    table = Table(title=escape(f"{status.batch_id} · {status.title or status.source or 'list of URLs'}"),
                  title_justify="left")
    for col in ("#", "job", "state", "item", "error"):
        table.add_column(col, overflow="fold", no_wrap=col == "job")
    for item in sorted(status.items, key=lambda i: i.index):
        table.add_row(str(item.index), item.job_id, item.state.value + (" (earlier)" if item.existing else ""),
                      Text(item.title or item.url), Text(item.error or ""))
    console.print(table)
    c = status.counts
    line = (f"state: [bold]{status.state.value}[/] · {c.done}/{c.total} done · {c.failed} failed · {c.cancelled} "
            f"cancelled · {c.running} running · {c.queued} queued · concurrency {status.concurrency} · "
            f"priority {status.priority}")
    if status.paused_since:
        line += f" · paused since {time_of_day(status.paused_since)} UTC"
    console.print(line + (f" · run {status.run}" if status.run > 1 else ""), highlight=False)
    if status.error:
        console.print(f"[red]{escape(status.error)}[/]")


def print_breakers(breakers: list[BreakerState], as_json: bool = False) -> int:
    """`clipper status` without a job: every provider's circuit breaker (providers that never failed have none)."""
    if as_json:
        print(json.dumps([b.model_dump(mode="json") for b in breakers], indent=2))
        return 0
    table = Table(title="providers (circuit breakers)", title_justify="left")
    for col in ("provider", "state", "since (UTC)", "failures", "opened", "probes", "last error"):
        table.add_column(col)
    for b in breakers:
        since = b.opened_at.strftime("%Y-%m-%d %H:%M:%S") if b.opened_at and b.phase != BreakerPhase.closed else ""
        table.add_row(*(Text(c) for c in (b.provider, b.phase.value, since, str(b.failures), str(b.opens),
                                          str(b.probes), b.last_error or "")))
    console.print(table if breakers else "no provider has failed: every circuit breaker is closed")
    return 0


# --- artifact versions (clipper/job/versions.py): `clipper versions JOB` ---


def _bytes(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def print_versions(job_id: str, versions: list, folder: str) -> None:
    """The job's kept versions (`ArtifactVersion`s), oldest first; options only where they differ from the defaults."""
    from clipper.job.request import JobOptions

    if not versions:
        console.print(f"{escape(job_id)}: no versions kept in {escape(folder)} (a version is kept when a stage runs "
                      "again: a retry, a rebuild, speakers named)", highlight=False)
        return
    defaults = JobOptions().model_dump(mode="json")
    table = Table(title=escape(f"{job_id} · versions in {folder}"), title_justify="left")
    for col, justify in (("N", "right"), ("stage", "left"), ("reason", "left"), ("kept (UTC)", "left"),
                         ("options", "left"), ("files", "left"), ("size", "right")):
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col in ("N", "kept (UTC)"))
    for v in versions:
        options = " ".join(f"{k}={val}" for k, val in v.options.items() if val != defaults.get(k, None))
        table.add_row(str(v.number), v.stage, v.reason, v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      Text(options or "defaults"), Text(", ".join(v.original(r) for r in v.artifacts)), _bytes(v.size))
    console.print(table)
