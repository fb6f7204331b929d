"""clipper CLI: submit media jobs, follow them, steer them, list them and read their audit log.
Installed as the `clipper` console script (`python starter.py` from a checkout). Tables and printing live in
`clipper_app/cli/render.py`, the batch commands in `clipper_app/cli/batch.py`. Everything it reads comes through
the client package: the server through `ClipperClient`, the store (`show`, `versions`, which need no server)
through `JobFiles`.

Progress and results go to stdout. Every failure — a refused request, an unknown job, a job that failed while
`--wait` followed it — is one line on stderr, `error <Type>: <message>`, and a non-zero exit code (2 for a
typed error); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, NoReturn

from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from clipper.clock import clock, duration
from clipper.config import get_settings
from clipper.errors import ClipperError, InvalidRequest
from clipper.job.request import JobOptions
from clipper.job.stages import STAGES
from clipper.job.status import FINISHED, PRIORITY_RANGE, JobState, JobStatus
from clipper.ops.stats import parse_duration
from clipper.speakers.names import parse_pairs
from clipper_app.cli import batch as batch_cli
from clipper_app.cli import delete as delete_cli
from clipper_app.cli import follow as follow_cli
from clipper_app.cli import models as models_cli
from clipper_app.cli import search as search_cli
from clipper_app.cli import transfer as transfer_cli
from clipper_app.cli import render
from clipper_app.cli.options import add_job_options, job_options
from clipper_app.cli.render import (
    console, err_console, print_breakers, print_history, print_jobs, print_stats, print_status,
)
from clipper_app.client import ClipperClient, JobClosed, JobFailed, JobFiles

CONTROLS = ("pause", "resume", "cancel", "priority", "retry", "abandon")


def print_report(job_id: str, files: JobFiles | None = None) -> int:
    """The job's report.md as this host's store has it (`ReportNotFound` when there is none)."""
    console.print(Markdown((files or JobFiles(get_settings())).report_markdown(job_id)))
    return 0


def print_outputs(status: JobStatus, files: JobFiles | None = None) -> None:
    """The job's artifacts and where they are (the store's folder or s3:// URI)."""
    render.print_outputs(status, (files or JobFiles(get_settings())).folder(status.job_id))


def show_versions(args: argparse.Namespace) -> int:
    """`clipper versions JOB [--json]`, `clipper show JOB --version N` (clipper/job/versions.py)."""
    files = JobFiles(get_settings())
    if args.command == "show":
        console.print(Markdown(files.version_text(args.job_id, args.version, "report.md")))
        return 0
    versions = files.versions(args.job_id)
    if args.json:
        print(json.dumps([v.model_dump(mode="json") for v in versions], indent=2))
    else:
        render.print_versions(args.job_id, versions, files.folder(args.job_id))
    return 0


async def watch(client: ClipperClient, job_id: str, interval: float = 0.5) -> JobStatus:
    status = await client.status(job_id)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[state]}"))
    with Progress(*columns, console=console, transient=False) as bars:
        tasks = {s.name: bars.add_task(s.name, total=100, state=s.state.value) for s in status.stages}
        overall = bars.add_task("overall", total=100, state=status.state.value)
        while True:
            for s in status.stages:
                bars.update(tasks[s.name], completed=s.progress * 100, state=s.state.value)
            eta = f" · ETA {duration(status.eta_s)}" if status.eta_s is not None else ""
            bars.update(overall, completed=status.progress * 100, state=status.state.value + eta)
            if status.state in FINISHED:
                break
            await asyncio.sleep(interval)
            status = await client.status(job_id)
    return status


async def run(args: argparse.Namespace) -> int:
    if args.command == "versions" or (args.command == "show" and args.version is not None):  # the store only
        return show_versions(args)
    if args.command == "models":  # this machine's speaker models: no server
        return models_cli.run(args)
    if args.command in search_cli.COMMANDS:  # the search index only: works without a server
        return await search_cli.run(args)
    if args.command == "show":  # reads the store only: works without a server
        return print_report(args.job_id)
    if args.command == "web":  # the REST API (web/): its own client, in uvicorn's loop
        from clipper_app.web.app import serve
        return await serve(get_settings(), args.host, args.port)
    client = await ClipperClient.connect()
    if args.command in ("export", "import"):  # a finished job between deployments (clipper_app/cli/transfer.py)
        return await transfer_cli.run(client, args)
    if args.command == "delete":  # an ended job and everything it left (clipper_app/cli/delete.py)
        return await delete_cli.run(client, args)
    if args.command == "submit-batch":
        return await batch_cli.submit(client, args)
    if args.command in ("follow", "follows", "unfollow"):  # clipper_app/cli/follow.py
        return await follow_cli.run(client, args)
    if args.command == "status" and not args.job_id:  # the service itself: the providers' circuit breakers
        return print_breakers(await client.breakers(), args.json)
    if args.command in ("status", "watch") and (shown := await batch_cli.show(client, args)) is not None:
        return shown  # the id is a batch's
    if args.command == "submit":
        options = job_options(args)
        submitted = await client.submit(args.url, options, priority=args.priority, callback_url=args.callback_url)
        if args.json:  # the only place the job's webhook secret is shown: a receiver verifies with it
            shown = {"job_id": submitted.job_id, "existing": submitted.existing}
            print(json.dumps(shown | ({"webhook_secret": submitted.webhook_secret} if submitted.webhook_secret
                                      else {})), flush=True)
        else:
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
    elif args.command in CONTROLS:
        return await control(client, args)
    elif args.command == "speakers":
        return await name_speakers(client, args)
    elif args.command == "list":
        jobs = await client.list_jobs(state=args.state, stage=args.stage, source=args.source, limit=args.limit)
        if args.json:
            print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
        else:
            print_jobs(jobs)
        return 0
    elif args.command == "history":
        entries = await client.history(args.job_id)
        if args.json:
            print(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
        else:
            print_history(args.job_id, entries)
        return 0
    elif args.command == "stats":
        stats = await client.stats(parse_duration(args.since))
        if args.json:
            print(stats.model_dump_json(indent=2))
        else:
            print_stats(stats, args.since)
        return 0
    else:  # watch
        status = await watch(client, args.job_id)
    print_status(status)
    if status.state == JobState.done:
        if args.command == "submit":
            print_report(status.job_id, client.files)
        print_outputs(status, client.files)
        return 0
    if status.state == JobState.failed and status.error:
        raise JobFailed(status.job_id, status.current_stage, status.error.type, status.error.message)
    raise JobClosed(f"{status.job_id} ended {status.state.value}")


# --- control: pause, resume, cancel, priority, retry, abandon ---

UPDATE_WAIT_S = 30.0  # an update needs a worker to run it: don't hang forever when none is running


async def control(client: ClipperClient, args: argparse.Namespace) -> int:
    job = args.job_id
    if args.command in ("retry", "abandon"):
        options = parse_options(args.set) if args.command == "retry" else {}
        await client.ensure_waiting(job)
        if args.command == "retry":
            await client.retry(job, options)
            done = "retry sent" + (f" with {json.dumps(options)}" if options else "")
        else:
            await client.abandon(job)
            done = "abandon sent: the job fails with its stage's error"
    elif args.command == "pause":
        await client.pause(job, now=args.now)
        done = ("pause sent: the running stage stops now and resumes from its saved progress" if args.now
                else "pause sent: takes effect at the next stage boundary")
    elif args.command == "resume":
        await client.resume(job)
        done = "resume sent"
    elif args.command == "cancel":
        await client.cancel(job)
        done = "cancellation requested: the running stage stops and the job ends as cancelled"
    else:  # priority: the workflow's validator decides (check_priority); its refusal is an InvalidRequest
        try:
            new = await asyncio.wait_for(client.set_priority(job, args.priority), UPDATE_WAIT_S)
        except asyncio.TimeoutError:
            raise InvalidRequest(f"no worker ran the update within {UPDATE_WAIT_S:.0f}s (is one running on task "
                                 f"queue {client.settings.task_queue!r}?)") from None
        done = f"priority is now {new} for the stages the job starts from now on"
    print(f"{job}: {done}", flush=True)
    return 0


async def name_speakers(client: ClipperClient, args: argparse.Namespace) -> int:
    """`clipper speakers JOB`: the speakers and their talk time; `clipper speakers JOB S1=Diane`: name them."""
    if not args.names:
        speakers = await client.speakers(args.job_id)
        for s in speakers.speakers:
            name = f" {s.name}" if s.name else ""
            print(f"{s.label}{name}\t{clock(s.talk_time_s)} talking, {s.turns} turns")
        if not speakers.speakers:
            print(f"no speakers labelled: {speakers.note or 'none found'}")
        return 0
    try:
        names = await asyncio.wait_for(client.name_speakers(args.job_id, parse_pairs(args.names)), UPDATE_WAIT_S)
    except asyncio.TimeoutError:
        raise InvalidRequest(f"no worker took the naming within {UPDATE_WAIT_S:.0f}s (is one running on task "
                             f"queue {client.settings.task_queue!r}?)") from None
    shown = ", ".join(f"{k}={v}" for k, v in names.items()) or "none"
    print(f"{args.job_id}: speaker names now {shown}; the transcript, subtitles, quotes and report show them",
          flush=True)
    return 0


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=value`: values are JSON when they parse (1, 0.5, true, null, "x"), else plain strings."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"--set expects key=value, got {pair!r}")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    JobOptions().changed(options)  # unknown or invalid: InvalidRequest naming the option
    return options


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other error
        err_console.print(f"[red]error[/] usage: {escape(message)} (see {self.prog} --help)", highlight=False,
                          soft_wrap=True)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="clipper", description="Durable media clipping on Temporal.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="submit a media URL or local path; prints the job id at once")
    s.add_argument("url")
    add_job_options(s, "the job with progress bars")
    s.add_argument("--callback-url", metavar="URL", help="receives the signed webhook when the job is done or fails")
    s.add_argument("--json", action="store_true",
                   help="print {job_id, existing, webhook_secret}: the secret the job's webhooks are signed with")
    batch_cli.add_parser(sub)
    follow_cli.add_parser(sub)
    transfer_cli.add_parser(sub)
    delete_cli.add_parser(sub)
    models_cli.add_parser(sub)
    search_cli.add_parser(sub)
    st = sub.add_parser("status", help="print a job's state; without a job: the providers' circuit breakers")
    st.add_argument("job_id", nargs="?")
    st.add_argument("--json", action="store_true")
    sh = sub.add_parser("show", help="print a finished job's report")
    sh.add_argument("job_id")
    sh.add_argument("--version", type=int, metavar="N", help="the report kept in version N (clipper versions JOB)")
    vs = sub.add_parser("versions", help="a job's kept artifact versions: earlier outputs of stages run again")
    vs.add_argument("job_id")
    vs.add_argument("--json", action="store_true")
    w = sub.add_parser("watch", help="live per-stage progress bars with ETA")
    w.add_argument("job_id")
    pa = sub.add_parser("pause", help="pause a job at the next stage boundary (--now: stop the running stage)")
    pa.add_argument("job_id")
    pa.add_argument("--now", action="store_true", help="cancel the running stage; it resumes from saved progress")
    for name, text in (("resume", "resume a paused job"), ("cancel", "cancel a job (its running stage stops)"),
                       ("abandon", "give up on a job waiting after a failure: it fails with the stage's error")):
        sub.add_parser(name, help=text).add_argument("job_id")
    pr = sub.add_parser("priority", help="change a job's priority for the stages it starts from now on")
    pr.add_argument("job_id")
    pr.add_argument("priority", type=int, help=PRIORITY_RANGE)
    r = sub.add_parser("retry", help="retry a job waiting after a failure, optionally with changed options")
    r.add_argument("job_id")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"change a job option for the retry; repeatable; keys: {', '.join(JobOptions.model_fields)}")
    ls = sub.add_parser("list", help="list jobs from the server, newest first")
    ls.add_argument("--state", choices=[s.value for s in JobState])
    ls.add_argument("--stage", choices=STAGES)
    ls.add_argument("--source", metavar="HOST", help="the media's host, e.g. www.youtube.com")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    h = sub.add_parser("history", help="a job's audit log from its event history")
    h.add_argument("job_id")
    h.add_argument("--json", action="store_true")
    sp = sub.add_parser("speakers", help="list a job's speakers, or name them: clipper speakers JOB S1=Diane")
    sp.add_argument("job_id")
    sp.add_argument("names", nargs="*", metavar="LABEL=NAME", help='e.g. S1=Diane "S2=Sheila Smith"; S1= removes')
    sts = sub.add_parser("stats", help="jobs by state, failures, retries, stage durations, throughput, suggestions")
    sts.add_argument("--since", default="24h", help="window: 30m, 24h, 7d, ... (default 24h)")
    sts.add_argument("--json", action="store_true")
    wb = sub.add_parser("web", help="serve the pages and the REST API (docs/api.md); loopback only unless "
                                    "CLIPPER_WEB_TOKEN")
    wb.add_argument("--host", help="default 127.0.0.1 (CLIPPER_WEB_HOST)")
    wb.add_argument("--port", type=int, help="default 8080 (CLIPPER_WEB_PORT)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 130
    except ClipperError as err:
        message = err.message.splitlines()[0] if err.message else ""
        err_console.print(f"[red]error[/] {err.type_name}: {escape(message)}", highlight=False, soft_wrap=True)
        code = 2
    except Exception as err:  # noqa: BLE001 - the CLI promises one line, never a traceback
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        err_console.print(f"[red]error[/] {type(err).__name__}: {escape(message)}", highlight=False, soft_wrap=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # avoid a crash at interpreter exit (the Temporal Python SDK's sdk-python#300)


if __name__ == "__main__":
    main()
