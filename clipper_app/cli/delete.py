"""The CLI's `delete` (clipper_app/cli/main.py wires it in): an ended job and everything it left, for good
(clipper_app/client/delete.py).

It asks before it deletes, after checking that the job can be deleted (a refusal never follows a "yes"); `--yes`
skips the question, and without a terminal to ask on, `--yes` is required.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from clipper.errors import InvalidRequest
from clipper_app.client import ClipperClient

SLOW_S = 1.0  # say what the wait is for when the server takes longer than this to remove the job's history


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("delete", help="delete an ended job and everything it left: files, versions, its history")
    d.add_argument("job_id")
    d.add_argument("-y", "--yes", action="store_true", help="delete without asking")


async def run(client: ClipperClient, args: argparse.Namespace) -> int:
    job = args.job_id
    await client.deletable(job)  # JobNotFound, JobStillRunning, ...: before the question
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidRequest(f"deleting {job} removes its files and history for good: confirm with --yes")
        answer = await asyncio.to_thread(input, f"Delete {job} and everything in {client.folder(job)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print(f"{job}: nothing deleted", flush=True)
            return 1
    deleting = asyncio.ensure_future(client.delete_job(job))
    done, _ = await asyncio.wait({deleting}, timeout=SLOW_S)
    if not done:
        print(f"{job}: deleting; the server removes the history of a job that has just ended within about 30 s…",
              flush=True)
    deleted = await deleting
    if deleted.pending:
        print(f"{job}: deleted {deleted.files} files; the server is still removing its history, so it stays listed "
              "a little longer", flush=True)
    else:
        print(f"{job}: deleted ({deleted.files} files, {deleted.runs} workflow runs)", flush=True)
    return 0
