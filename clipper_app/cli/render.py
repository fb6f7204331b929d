"""How the CLI prints things: rich tables for a job's status and outputs, job lists and audit logs.

Every table fits the terminal it is printed on, 80 columns included: no side borders, two spaces between columns,
the short columns (states, numbers, times) never wrapped, so a narrow terminal wraps or shortens the one long
column (an error, a detail, a title) instead of squashing `progress` into `progre…`."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from clipper.clock import duration
from clipper.job.batch import BatchStatus
from clipper.job.status import JobState, JobStatus, controls_for, shown_state
from clipper.ops.breaker import BreakerPhase, BreakerState
from clipper.ops.stats import Stats
from clipper_app.client import AuditEntry, JobSummary

console = Console()
err_console = Console(stderr=True)

EVENT_STYLES = {"stage failed": "red", "stage timed out": "red", "job failed": "bold red", "retry": "yellow",
                "signal": "cyan", "update accepted": "cyan", "update completed": "cyan",
                "job completed": "bold green", "stage completed": "green"}


def table(heading: str | None = None, /, **columns: dict) -> Table:
    """A table as every command prints one (see the module's doc); `columns`: name → `Table.add_column` options,
    `no_wrap` by default (a column that may wrap or fold says so)."""
    t = Table(title=heading, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
              show_edge=False, header_style="bold")
    for name, options in columns.items():
        t.add_column(name.replace("_", " "), **{"no_wrap": True, **options})
    return t


WRAP = {"no_wrap": False, "overflow": "fold"}  # the column that takes what is left, wrapped
RIGHT = {"justify": "right"}


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
    t = table(escape(f"{status.job_id} · {status.title or status.url}"), stage={}, state={}, progress=RIGHT,
              attempt=RIGHT, started={}, finished={}, error=WRAP)
    for s in status.stages:
        t.add_row(
            s.name, s.state.value, f"{s.progress:.0%}", str(s.attempt or ""), time_of_day(s.started_at), time_of_day(s.finished_at),
            Text(f"{s.error.type}: {s.error.message}") if s.error else "",
        )
    console.print(t)
    console.print(f"state: [bold]{status.state.value}[/] · {summary_line(status)}")
    if status.waiting:
        console.print(f"[yellow]{escape(status.waiting)}[/]")
    if status.error:
        console.print(f"[red]{escape(status.error.type)}[/]: {escape(status.error.message)}")
    hints = control_hints(status)
    if hints:
        console.print("next: " + " · ".join(escape(h) for h in hints), highlight=False)


# The command each control of the table (clipper.job.status.CONTROLS) is typed as.
COMMANDS = {"pause": "clipper pause {id}", "pause_now": "clipper pause --now {id}", "resume": "clipper resume {id}",
            "cancel": "clipper cancel {id}", "priority": "clipper priority {id} N", "retry": "clipper retry {id}",
            "abandon": "clipper abandon {id}", "delete": "clipper delete {id}"}


def control_hints(status: JobStatus) -> list[str]:
    """The commands that act on the job in its state, and only those (a finished job is not offered a pause)."""
    return [COMMANDS[name].format(id=status.job_id) for name in controls_for(shown_state(status))]


def print_outputs(status: JobStatus, folder: Path | str) -> None:
    t = table(escape(f"outputs in {folder}"), artifact=WRAP, bytes=RIGHT, stage={}, sha256={})
    for name, ref in sorted(status.artifacts.items()):
        t.add_row(Text(name), str(ref.size), ref.stage, ref.sha256[:12] + "…")
    console.print(t)


TITLE_MIN = 12  # narrower than this, the age, the stage, then the state give up their columns to the title
GAP = 2  # between two columns of a `table`


def print_jobs(jobs: list[JobSummary], width: int | None = None) -> None:
    """`clipper list`: one line per job, as wide as the terminal (80 columns when it says nothing)."""
    console.print(jobs_table(jobs, width or shutil.get_terminal_size((80, 24)).columns, datetime.now(timezone.utc)))


def jobs_table(jobs: list[JobSummary], width: int, now: datetime) -> Table:
    """Id, state, stage and progress, age, and the title in what is left (shortened with …). The id is never
    shortened: it is what every other command takes. Blank cells: the job has no such search attribute (started
    before it existed, or not picked up yet); a job without a title shows its media's host."""
    rows = [(job.job_id, _state(job), _stage(job), ago(job.started_at, now),
             " ".join((job.title or job.source or "").split())) for job in jobs]
    names = ["job", "state", "stage", "age"]
    widths = [max([cell_len(name)] + [cell_len(row[i]) for row in rows]) for i, name in enumerate(names)]
    keep = len(names)
    while keep > 1 and sum(widths[:keep]) + GAP * keep + TITLE_MIN > width:
        keep -= 1
    title_width = width - sum(widths[:keep]) - GAP * keep
    titled = {"title": {"width": title_width, "overflow": "ellipsis"}} if title_width >= GAP else {}
    t = table(f"{len(jobs)} job(s)", **{name: {"width": w} for name, w in zip(names[:keep], widths)}, **titled)
    for row in rows:
        t.add_row(*(Text(cell) for cell in row[:keep]), *([Text(row[-1])] if titled else []))
    return t


def _state(job: JobSummary) -> str:
    return job.state or (JobState.queued.value if job.status == "running" else job.status)


def _stage(job: JobSummary) -> str:
    """Where the job is (or stopped): `transcribe 45%`; nothing for a job that is done."""
    if job.state == JobState.done.value:
        return ""
    return " ".join(part for part in (job.stage, None if job.progress is None else f"{job.progress}%") if part)


def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago, in its largest whole unit: `12s ago`, `3m ago`, `2h ago`, `5d ago`, `1y ago`."""
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for size, unit in ((365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def print_history(job_id: str, entries: list[AuditEntry]) -> None:
    t = table(escape(f"{job_id} · audit log (UTC)"), time={}, event={}, stage={}, attempt=RIGHT, detail=WRAP)
    days = {e.time.date() for e in entries}
    fmt = "%H:%M:%S.%f" if len(days) <= 1 else "%Y-%m-%d %H:%M:%S.%f"
    for e in entries:
        t.add_row(e.time.strftime(fmt)[:-3], Text(e.event, style=EVENT_STYLES.get(e.event, "")),
                  Text(e.stage or ""), str(e.attempt or ""), Text(e.detail or ""))
    console.print(t)


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
        t = table("stages (wall time of the last run, retries included)", stage={}, runs=RIGHT, mean=RIGHT, p50=RIGHT,
                  p95=RIGHT, share=RIGHT, retried=RIGHT, extra_attempts=RIGHT)
        for s in stats.stages:
            t.add_row(s.name, str(s.runs), _secs(s.mean_s), _secs(s.p50_s), _secs(s.p95_s),
                      "–" if s.share is None else f"{s.share * 100:.0f} %", str(s.retried), str(s.extra_attempts))
        console.print(t)
    console.print("[bold]suggestions[/]")
    for line in stats.suggestions:
        console.print(Text(f"  • {line}"))


def print_batch_status(status: BatchStatus) -> None:
    """A batch: counts, and its running, failed and latest finished items (`clipper status <job>` for one)."""
    t = table(escape(f"{status.batch_id} · {status.title or status.source or 'list of URLs'}"),
              **{"#": RIGHT}, job={}, state={}, item=WRAP, error=WRAP)
    for item in sorted(status.items, key=lambda i: i.index):
        t.add_row(str(item.index), item.job_id, item.state.value + (" (earlier)" if item.existing else ""),
                  Text(item.title or item.url), Text(item.error or ""))
    console.print(t)
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
    t = table("providers (circuit breakers)", provider=WRAP, state={}, **{"since (UTC)": {}}, failures=RIGHT, opened=RIGHT,
              probes=RIGHT, last_error=WRAP)
    for b in breakers:
        since = b.opened_at.strftime("%m-%d %H:%M:%S") if b.opened_at and b.phase != BreakerPhase.closed else ""
        t.add_row(*(Text(c) for c in (b.provider, b.phase.value, since, str(b.failures), str(b.opens),
                                      str(b.probes), b.last_error or "")))
    console.print(t if breakers else "no provider has failed: every circuit breaker is closed")
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
    t = table(escape(f"{job_id} · versions in {folder}"), N=RIGHT, stage={}, reason=WRAP, **{"kept (UTC)": {}},
              options=WRAP, files=WRAP, size=RIGHT)
    for v in versions:
        options = " ".join(f"{k}={val}" for k, val in v.options.items() if val != defaults.get(k, None))
        t.add_row(str(v.number), v.stage, Text(v.reason), v.created_at.strftime("%Y-%m-%d %H:%M"),
                  Text(options or "defaults"), Text(", ".join(v.original(r) for r in v.artifacts)), _bytes(v.size))
    console.print(t)
