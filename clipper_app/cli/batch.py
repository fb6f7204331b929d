"""The CLI's batch commands (clipper_app/cli/main.py wires them in): `submit-batch`, and `status`/`watch` on a batch id."""

from __future__ import annotations

import argparse
import asyncio

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clipper.job.batch import BatchStatus
from clipper.job.status import FINISHED, JobState
from clipper_app.cli.options import add_job_options, job_options
from clipper_app.cli.render import console, print_batch_status
from clipper_app.client import BatchFailed, ClipperClient
from clipper_app.client.batches import source_or_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("submit-batch",
                       help="submit a playlist/feed URL or a file of URLs (one per line): one job per item")
    b.add_argument("source", metavar="PLAYLIST_URL|FILE_OF_URLS")
    b.add_argument("--concurrency", type=int,
                   help="jobs of the batch running at once (default CLIPPER_BATCH_CONCURRENCY, 3)")
    add_job_options(b, "the batch")


async def submit(client: ClipperClient, args: argparse.Namespace) -> int:
    source, urls = source_or_file(args.source)
    options = job_options(args)
    submitted = await client.submit_batch(source, urls, options=options, priority=args.priority,
                                          concurrency=args.concurrency)
    print(f"{submitted.job_id}" + (" (already submitted: existing batch)" if submitted.existing else ""), flush=True)
    if not args.wait:
        return 0
    status = await watch(client, submitted.job_id)
    print_batch_status(status)
    if status.state != JobState.done or status.counts.failed:
        raise BatchFailed(f"{submitted.job_id} ended {status.state.value} with {status.counts.failed} failed item(s) "
                          f"of {status.counts.total}" + (f": {status.error}" if status.error else ""))
    return 0


async def watch(client: ClipperClient, batch_id: str, interval: float = 1.0) -> BatchStatus:
    """One bar: items finished (done, failed or cancelled) of all items."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[line]}"))
    with Progress(*columns, console=console, transient=False) as bars:
        bar = bars.add_task("items", total=None, line="")
        while True:
            status = await client.batch_status(batch_id)
            c = status.counts
            bars.update(bar, total=c.total or None, completed=c.done + c.failed + c.cancelled,
                        line=f"{status.state.value} · {c.failed} failed · {c.running} running · {c.queued} queued")
            if status.state in FINISHED:
                return status
            await asyncio.sleep(interval)


async def show(client: ClipperClient, args: argparse.Namespace) -> int | None:
    """`status`/`watch` with a batch id; None when the id is not a batch's."""
    if not await client.is_batch(args.job_id):
        return None
    status = await (watch(client, args.job_id) if args.command == "watch" else client.batch_status(args.job_id))
    if getattr(args, "json", False):
        print(status.model_dump_json(indent=2))
    else:
        print_batch_status(status)
    return 0
