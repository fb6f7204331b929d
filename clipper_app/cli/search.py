"""The CLI's `search` and `reindex` (clipper_app/cli/main.py wires them in): where words were said, across every
job, and the index rebuilt from the store. Both read through the client's `Searcher`: no Temporal server needed.
"""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from clipper.clock import clock
from clipper.config import get_settings
from clipper.ops.stats import parse_duration
from clipper.search import KINDS, where
from clipper.search.query import LIMIT_DEFAULT, LIMIT_MAX, MARK
from clipper_app.cli.render import console
from clipper_app.client import Hit, Searcher

COMMANDS = ("search", "reindex")


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("search", help="where words were said, across every job's transcript, quotes and chapters")
    s.add_argument("query", help='words that were said, e.g. "interest rates" (the last word may be a prefix)')
    s.add_argument("--speaker", metavar="NAME", help="only lines of this speaker (a name people gave, or S1, …)")
    s.add_argument("--job", metavar="JOB", help="only this job")
    s.add_argument("--since", metavar="AGE", help="only jobs whose media arrived within this long: 30m, 24h, 7d")
    s.add_argument("--kind", choices=KINDS)
    s.add_argument("--limit", type=int, default=LIMIT_DEFAULT, help=f"at most this many hits (1-{LIMIT_MAX})")
    s.add_argument("--json", action="store_true", help="the hits as JSON: job_id, title, kind, start, end, speaker, "
                                                       "text, url")
    sub.add_parser("reindex", help="rebuild the search index from the store (after a restore or a move)")


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    searcher = Searcher(settings)
    if args.command == "reindex":
        done = await searcher.reindex()
        print(f"indexed {done.jobs} jobs ({done.entries} entries) into {where(settings)}"
              + (f"; dropped {done.dropped} jobs the store no longer has" if done.dropped else ""), flush=True)
        return 0
    hits = await searcher.search(args.query, speaker=args.speaker, job_id=args.job, kind=args.kind,
                                 limit=args.limit, since=parse_duration(args.since) if args.since else None)
    if args.json:
        print(json.dumps([h.model_dump(mode="json") for h in hits], indent=2, ensure_ascii=False), flush=True)
    elif not hits:
        print(f"nothing found for {args.query!r}", flush=True)
    else:
        console.print(hits_table(hits))
    return 0


def hits_table(hits: list[Hit]) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for name in ("at", "job", "who", "what"):
        table.add_column(name, overflow="fold", no_wrap=name == "at")
    for h in hits:
        title = escape(h.title if len(h.title) <= 30 else h.title[:29] + "…")
        table.add_row(clock(h.start), f"{title}\n[dim]{escape(h.job_id)} · {h.kind}[/]", escape(h.speaker or ""),
                      marked(h.text))
    return table


def marked(text: str) -> str:
    """The hit's text as rich markup: the words between `**` in bold."""
    parts = text.split(MARK)
    return "".join(f"[bold yellow]{escape(p)}[/]" if i % 2 else escape(p) for i, p in enumerate(parts))
