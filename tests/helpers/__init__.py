"""Shared test helpers: `jobs` (running and watching jobs), `processes` (the CLI, worker processes), `text`
(made-up transcripts), `httpserver` and `llmserver` (real local servers); here, the paths of the test data."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clipper.job.stages import STAGES, StagePolicy

ROOT = Path(__file__).resolve().parents[2]  # the checkout
DATA = ROOT / "tests" / "data"
SAMPLE = DATA / "sample.mp3"  # 54 s of synthetic speech, with its reference text
REFERENCE = DATA / "sample.txt"
REPEATS = 4  # the long sample (fixture `long_sample`) is the sample this many times over (~3.6 min)


def run(coro):
    return asyncio.run(coro)


# Fast retries so failure paths finish in seconds, for every stage of the table; the short transcribe heartbeat
# timeout makes a killed worker's attempt time out quickly.
FAST_POLICY = StagePolicy(initial_interval_s=0.2, max_interval_s=1, max_attempts=4, heartbeat_timeout_s=10,
                          timeout_base_s=60)
FAST_POLICIES = {
    **{stage: FAST_POLICY for stage in STAGES},
    "download": FAST_POLICY.model_copy(update={"max_attempts": 3, "timeout_base_s": 600}),
    "transcribe": FAST_POLICY.model_copy(update={"heartbeat_timeout_s": 4, "timeout_base_s": 120,
                                                 "timeout_per_audio_s": 2.0}),
}


# For a test about the first stages: the later ones that take seconds of CPU on minutes of audio (speaker labels,
# audiogram videos) still run, and quickly do nothing; other tests prove their work. As settings, and as a worker
# process's environment (tests.helpers.processes.LATER_STAGES_OFF_ENV).
LATER_STAGES_OFF = {"speakers_engine": "off", "audiograms_enabled": False}


def later_stages_off(settings):
    return settings.model_copy(update=LATER_STAGES_OFF)


# The pipeline's stages in order, from the stage table: tests build their expected sequences from these, so a
# new stage changes no test's list.
PIPELINE = list(STAGES)


def through(stage: str) -> list[str]:
    """The stages from the first up to and including `stage`."""
    return PIPELINE[: PIPELINE.index(stage) + 1]


def after(stage: str) -> list[str]:
    """The stages after `stage`, in order."""
    return PIPELINE[PIPELINE.index(stage) + 1:]
