"""Replay the recorded histories of finished jobs: a non-deterministic workflow change fails here.

Record new ones with `python -m scripts.record_history NAME` after changing the workflow (use
`workflow.patched()` for changes that alter the commands of jobs that may be in flight).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.conftest import run
from workflows.batch_job import BatchJob
from workflows.media_job import MediaJob

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_to_replay():
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_replay(path: Path):
    # `NAME@WORKFLOW_ID.json`: the workflow id matters where the workflow derives ids from it (BatchJob's children).
    history = WorkflowHistory.from_json(path.stem.partition("@")[2] or path.stem, path.read_text())
    replayer = Replayer(workflows=[MediaJob, BatchJob], data_converter=pydantic_data_converter)
    result = run(replayer.replay_workflow(history, raise_on_replay_failure=True))
    assert result.replay_failure is None
