"""The CLI's `models` command: which speaker models this machine has, and `install` to get them (one step)."""

from __future__ import annotations

import argparse

from clipper.speakers import models
from clipper_app.cli.render import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the speaker models this machine has; `clipper models install` gets them")
    m.add_argument("action", nargs="?", choices=["status", "install"], default="status")


def run(args: argparse.Namespace) -> int:
    found = models.install() if args.action == "install" else models.status()
    for item in found:
        mark = "[green]ok[/]" if item.ok else "[red]missing[/]"
        console.print(f"{mark} {item.name}: {item.detail}", highlight=False, soft_wrap=True)
    return 0 if all(item.ok for item in found) else 1
