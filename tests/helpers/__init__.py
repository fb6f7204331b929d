"""Shared test helpers: `jobs` (running and watching jobs), `processes` (the CLI, worker processes), `text`
(made-up transcripts), `httpserver` and `llmserver` (real local servers); here, the paths of the test data."""

from __future__ import annotations

import asyncio
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
DATA = ROOT / "tests" / "data"
SAMPLE = DATA / "sample.mp3"  # 54 s of synthetic speech, with its reference text
REFERENCE = DATA / "sample.txt"
REPEATS = 4  # the long sample (fixture `long_sample`) is the sample this many times over (~3.6 min)


def run(coro):
    return asyncio.run(coro)
