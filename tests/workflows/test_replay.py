"""Replay the recorded histories of finished jobs: a workflow change that would break a job in flight fails here.

tests/histories/ holds the 1.0 baseline — one history per kind of job (a MediaJob cut in chunks, one steered
through pause/priority/retry, one that failed, a BatchJob) — and one more per workflow change after it, each
recorded with `python -m scripts.record_history NAME`. docs/versions.md has the rule: `workflow.patched()`
→ `workflow.deprecate_patch()` → removal, with a history recorded at each step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.helpers import run
from workflows.batch_job import BatchJob
from workflows.follow_check import FollowCheck
from workflows.imported_job import ImportedJob
from workflows.media_job import AUDIOGRAMS, FAILED_CLEANUP, INDEX, SPEAKERS, MediaJob
from workflows.provider_breaker import ProviderBreaker
from workflows.stage_runner import TITLE_ATTRIBUTE

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
BASELINE = ("1.0-media-chunked-done", "1.0-media-steered-done", "1.0-media-failed", "1.0-batch-done")


def test_the_baseline_is_there():
    names = {p.stem.partition("@")[0] for p in HISTORIES}
    assert set(BASELINE) <= names
    types = {json.loads(p.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
             for p in HISTORIES}
    assert {"MediaJob", "BatchJob", "ProviderBreaker", "ImportedJob", "FollowCheck"} <= types


def patches(path: Path) -> set[str]:
    """The patch ids a history's markers record (`workflow.patched()` writes one the first time it says yes)."""
    history = WorkflowHistory.from_json("x", path.read_text())
    markers = [e.marker_recorded_event_attributes for e in history.events
               if e.HasField("marker_recorded_event_attributes")]
    return {json.loads(m.details["patch-data"].payloads[0].data)["id"]
            for m in markers if m.marker_name == "core_patch"}


def test_every_patch_since_the_baseline_has_a_recorded_history():
    """A `workflow.patched()` branch is only safe if a history taken with it on replays too (and the 1.0 ones,
    taken before it, replay with it off)."""
    recorded = set().union(*(patches(p) for p in HISTORIES))
    assert {SPEAKERS, AUDIOGRAMS, FAILED_CLEANUP, TITLE_ATTRIBUTE, INDEX} <= recorded
    assert not any(patches(p) for p in HISTORIES if p.stem.startswith("1.0-"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_replay(path: Path):
    # `NAME@WORKFLOW_ID.json`: the workflow id matters where the workflow derives ids from it (BatchJob's children).
    history = WorkflowHistory.from_json(path.stem.partition("@")[2] or path.stem, path.read_text())
    replayer = Replayer(workflows=[MediaJob, BatchJob, ProviderBreaker, ImportedJob, FollowCheck],
                        data_converter=pydantic_data_converter)
    result = run(replayer.replay_workflow(history, raise_on_replay_failure=True))
    assert result.replay_failure is None
