"""The options of every command that submits work (`submit`, `submit-batch`, `follow`), declared once."""

from __future__ import annotations

import argparse

from clipper.job.request import JobOptions
from clipper.job.status import PRIORITY_DEFAULT, PRIORITY_RANGE


def add_job_options(p: argparse.ArgumentParser, follows: str | None) -> None:
    """--wait, --priority and the per-job engine options; `follows`: what --wait follows ("the job", "the batch"),
    None for a command that has no --wait (`follow`)."""
    if follows is not None:
        p.add_argument("--wait", action="store_true", help=f"follow {follows} until it ends")
    p.add_argument("--priority", type=int, default=PRIORITY_DEFAULT, help=f"{PRIORITY_RANGE}, default {PRIORITY_DEFAULT}")
    p.add_argument("--asr-engine", help="local | openai (default from CLIPPER_ASR_ENGINE)")
    p.add_argument("--asr-model", help="tiny.en (English, fast) | base (multilingual; default from CLIPPER_ASR_MODEL)")
    p.add_argument("--language", help="spoken language code, e.g. en; with a multilingual model, unset = detect")


def job_options(args: argparse.Namespace) -> JobOptions:
    return JobOptions(asr_engine=args.asr_engine, asr_model=args.asr_model, language=args.language)
