"""Command-line pieces the benchmarks share."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def names_from(parser: argparse.ArgumentParser, value: str, known: Iterable[str], what: str) -> list[str]:
    """A comma-separated choice of `known` names (`--cases a,b`), in the order given; an unknown one is a usage
    error that lists the known ones."""
    known = list(known)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names
