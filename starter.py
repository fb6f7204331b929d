"""clipper CLI: submit media jobs and follow them. Also installed as the `clipper` console script.

Every error is one line on stderr and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from clipper.config import get_settings
from clipper.errors import ClipperError
from clipper.models import JobOptions, JobState, JobStatus
from clipper_client import ClipperClient

TERMINAL = {JobState.done, JobState.failed, JobState.cancelled}
console = Console()
err_console = Console(stderr=True)


def print_status(status: JobStatus) -> None:
    table = Table(title=f"{status.job_id} · {status.title or status.url}", show_lines=False)
    for col in ("stage", "state", "progress", "attempt", "started", "finished", "error"):
        table.add_column(col)
    for s in status.stages:
        table.add_row(
            s.name, s.state.value, f"{s.progress:.0%}", str(s.attempt or ""),
            s.started_at.strftime("%H:%M:%S") if s.started_at else "",
            s.finished_at.strftime("%H:%M:%S") if s.finished_at else "",
            f"{s.error.type}: {s.error.message}" if s.error else "",
        )
    console.print(table)
    console.print(f"state: [bold]{status.state.value}[/] · progress {status.progress:.0%}")
    if status.error:
        console.print(f"[red]{status.error.type}[/]: {status.error.message}")


def job_dir(job_id: str) -> Path:
    return Path(get_settings().storage_dir).resolve() / "jobs" / job_id


def print_report(job_id: str) -> int:
    report = job_dir(job_id) / "report.md"
    if not report.exists():
        err_console.print(f"[red]error[/] no report for {job_id} in {job_dir(job_id)} (not finished, or another host)")
        return 1
    console.print(Markdown(report.read_text(encoding="utf-8")))
    return 0


def print_outputs(status: JobStatus) -> None:
    table = Table(title=f"outputs in {job_dir(status.job_id)}", title_justify="left")
    for col, justify in (("artifact", "left"), ("bytes", "right"), ("stage", "left"), ("sha256", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for name, ref in sorted(status.artifacts.items()):
        table.add_row(name, str(ref.size), ref.stage, ref.sha256[:12] + "…")
    console.print(table)


async def watch(client: ClipperClient, job_id: str, interval: float = 0.5) -> JobStatus:
    status = await client.status(job_id)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[state]}"))
    with Progress(*columns, console=console, transient=False) as bars:
        tasks = {s.name: bars.add_task(s.name, total=100, state=s.state.value) for s in status.stages}
        overall = bars.add_task("overall", total=100, state=status.state.value)
        while True:
            for s in status.stages:
                bars.update(tasks[s.name], completed=s.progress * 100, state=s.state.value)
            bars.update(overall, completed=status.progress * 100, state=status.state.value)
            if status.state in TERMINAL:
                break
            await asyncio.sleep(interval)
            status = await client.status(job_id)
    return status


async def run(args: argparse.Namespace) -> int:
    if args.command == "show":  # reads the store only: works without a server
        return print_report(args.job_id)
    client = await ClipperClient.connect()
    if args.command == "submit":
        options = JobOptions(asr_engine=args.asr_engine, language=args.language)
        submitted = await client.submit(args.url, options, priority=args.priority)
        note = " (already submitted: existing job)" if submitted.existing else ""
        print(f"{submitted.job_id}{note}", flush=True)
        if not args.wait:
            return 0
        status = await watch(client, submitted.job_id)
    elif args.command == "status":
        status = await client.status(args.job_id)
        if args.json:
            print(status.model_dump_json(indent=2))
            return 0
        print_status(status)
        return 0
    else:  # watch
        status = await watch(client, args.job_id)
    print_status(status)
    if status.state == JobState.done:
        if args.command == "submit":
            print_report(status.job_id)
        print_outputs(status)
        return 0
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipper", description="Durable media clipping on Temporal.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="submit a media URL or local path; prints the job id at once")
    s.add_argument("url")
    s.add_argument("--wait", action="store_true", help="follow the job with progress bars until it ends")
    s.add_argument("--priority", type=int, default=3, help="1 (highest) … 5 (lowest), default 3")
    s.add_argument("--asr-engine", help="local | openai (default from CLIPPER_ASR_ENGINE)")
    s.add_argument("--language", help="spoken language code, e.g. en")
    st = sub.add_parser("status", help="print a job's state")
    st.add_argument("job_id")
    st.add_argument("--json", action="store_true")
    sh = sub.add_parser("show", help="print a finished job's report")
    sh.add_argument("job_id")
    w = sub.add_parser("watch", help="live per-stage progress bars with ETA")
    w.add_argument("job_id")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 130
    except ClipperError as err:
        err_console.print(f"[red]error[/] {err.type_name}: {err.message}", highlight=False)
        code = 2
    except Exception as err:  # noqa: BLE001 - the CLI promises one line, never a traceback
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        err_console.print(f"[red]error[/] {type(err).__name__}: {message}", highlight=False)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio/sdk-python#300: avoid a crash at interpreter exit


if __name__ == "__main__":
    main()
