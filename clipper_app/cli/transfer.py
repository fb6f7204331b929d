"""The CLI's `export` and `import` (clipper_app/cli/main.py wires them in): a finished job as one tar, and that tar registered
on another deployment (clipper_app/client/transfer.py; docs/backup.md, "Moving a job between clusters")."""

from __future__ import annotations

import argparse
import asyncio

from clipper_app.client import ArchiveSummary, ClipperClient

IMPORT_WAIT_S = 10.0  # an imported job completes as soon as a worker of the task queue runs it


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="write a finished job as one self-contained tar (files, manifest, history)")
    e.add_argument("job_id")
    e.add_argument("-o", "--output", metavar="FILE", help="the archive to write (default: JOB.tar here)")
    i = sub.add_parser("import", help="check a `clipper export` tar and register its job on this deployment")
    i.add_argument("archive", metavar="FILE")


async def run(client: ClipperClient, args: argparse.Namespace) -> int:
    if args.command == "export":
        summary = await client.export_job(args.job_id, args.output or f"{args.job_id}.tar")
        print(f"exported {summary.job_id} to {summary.path}: {_files(summary)}", flush=True)
        return 0
    summary = await client.import_job(args.archive)
    print(f"imported {summary.job_id}: {_files(summary)}, from namespace {summary.source.namespace} at "
          f"{summary.source.address} (exported {summary.exported_at:%Y-%m-%d %H:%M} UTC)", flush=True)
    try:
        result = await asyncio.wait_for(client.result(summary.job_id), IMPORT_WAIT_S)
        print(f"{summary.job_id}: {result.state.value}", flush=True)
    except asyncio.TimeoutError:
        print(f"{summary.job_id}: registered on task queue {client.settings.task_queue!r}; it completes when a "
              "worker there runs it (clipper-worker)", flush=True)
    return 0


def _files(summary: ArchiveSummary) -> str:
    return f"{summary.artifacts} artifacts, {summary.size / 1e6:.1f} MB"
