"""Tables that tests measure (crash matrix, load): queued here, printed by conftest after the session."""

from __future__ import annotations

import pytest

REPORTS = pytest.StashKey[list]()


def add_report(config: pytest.Config, title: str, lines: list[str]) -> None:
    """Queue a measured table for the terminal summary at the end of the session."""
    config.stash.setdefault(REPORTS, []).append((title, lines))
