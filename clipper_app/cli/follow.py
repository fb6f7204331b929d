"""The CLI's follow commands (clipper_app/cli/main.py wires them in): `follow`, `follows`, `unfollow`.

    clipper follow URL [--every 15m] [--since DATE | --new-only] [--concurrency N] [job options]
    clipper follow --pause ID | --resume ID | --check-now ID
    clipper follows [--json]
    clipper unfollow ID
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from clipper.errors import InvalidRequest
from clipper.follow.every import EVERY_DEFAULT_S, format_every, parse_every
from clipper.follow.model import FollowInfo
from clipper_app.cli.options import add_job_options, job_options
from clipper_app.cli.render import RIGHT, WRAP, ago, console, table
from clipper_app.client import ClipperClient


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("follow", help="follow a feed, channel, playlist or account: a job for every new item")
    f.add_argument("url", nargs="?", help="the feed (RSS/Atom), channel, playlist or account URL")
    f.add_argument("--every", default=format_every(EVERY_DEFAULT_S),
                   help="how often to check: 10s … 7d, e.g. 15m (default), 1h30m")
    first = f.add_mutually_exclusive_group()
    first.add_argument("--since", metavar="DATE", help="clip only items published from DATE (YYYY-MM-DD[THH:MM])")
    first.add_argument("--new-only", action="store_true", help="skip everything listed now: clip only what comes")
    f.add_argument("--concurrency", type=int, help="job starts at once (default CLIPPER_BATCH_CONCURRENCY, 3)")
    f.add_argument("--json", action="store_true", help="print {follow_id, existing}")
    steer = f.add_mutually_exclusive_group()
    steer.add_argument("--pause", metavar="ID", help="stop checking (jobs started go on)")
    steer.add_argument("--resume", metavar="ID", help="check again at the follow's interval")
    steer.add_argument("--check-now", metavar="ID", help="one check now")
    add_job_options(f, None)
    fs = sub.add_parser("follows", help="the follows: source, every, last check and its result, items, jobs")
    fs.add_argument("--json", action="store_true")
    u = sub.add_parser("unfollow", help="stop following: no more checks; jobs started go on")
    u.add_argument("follow_id")


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"--since {text!r}: give a date as YYYY-MM-DD (or YYYY-MM-DDTHH:MM)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def run(client: ClipperClient, args: argparse.Namespace) -> int:
    if args.command == "follows":
        follows = await client.follows()
        if args.json:
            print(json.dumps([f.model_dump(mode="json") for f in follows], indent=2), flush=True)
        else:
            print_follows(follows)
        return 0
    if args.command == "unfollow":
        await client.unfollow(args.follow_id)
        print(f"{args.follow_id}: unfollowed (jobs it started go on)", flush=True)
        return 0
    steered = args.pause or args.resume or args.check_now
    if steered:
        if args.url:
            raise InvalidRequest("give a URL to follow, or --pause/--resume/--check-now ID, not both")
        if args.check_now:
            await client.check_follow_now(args.check_now)
            print(f"{args.check_now}: checking now", flush=True)
            return 0
        info = await (client.pause_follow(args.pause) if args.pause else client.resume_follow(args.resume))
        print(f"{info.follow_id}: {'paused' if info.paused else 'following'}", flush=True)
        return 0
    if not args.url:
        raise InvalidRequest("clipper follow URL [--every 15m], or --pause/--resume ID")
    submitted = await client.follow(args.url, parse_every(args.every), job_options(args), priority=args.priority,
                                    since=parse_since(args.since), new_only=args.new_only,
                                    concurrency=args.concurrency)
    if args.json:
        print(json.dumps({"follow_id": submitted.job_id, "existing": submitted.existing}), flush=True)
    else:
        print(submitted.job_id + (" (already followed: existing follow)" if submitted.existing else ""), flush=True)
    return 0


def print_follows(follows: list[FollowInfo]) -> None:
    if not follows:
        console.print("no follows (clipper follow URL starts one)")
        return
    now = datetime.now(UTC)
    t = table(id={}, every=RIGHT, state={}, last_check={}, result=WRAP, seen=RIGHT, jobs=RIGHT, source=WRAP)
    for f in follows:
        state = "paused" if f.paused else "following"
        t.add_row(f.follow_id, format_every(f.every_s), state, ago(f.last_check_at, now), f.last_result or "",
                  str(f.items_seen), str(f.jobs_started), f.title and f"{f.title} ({f.source})" or f.source)
    console.print(t)
