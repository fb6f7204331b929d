"""kill -9 the worker mid-transcription: a new worker finishes the job, resuming from saved segments."""

from __future__ import annotations

from pathlib import Path

import jiwer
import pytest

from clipper.job.outputs import Transcript
from clipper.job.status import JobState
from clipper.store.files import JsonlLog
from clipper.store.local import ArtifactStore
from tests.helpers import REFERENCE, REPEATS
from tests.helpers.jobs import assert_manifest_matches, normalise
from tests.helpers.processes import LATER_STAGES_OFF_ENV, kill_worker_once

ROOT = Path(__file__).resolve().parents[2]










@pytest.mark.crash
def test_kill_worker_mid_transcription_resumes(settings, long_sample, tmp_path):
    store = ArtifactStore(settings.storage_dir)
    log_path = tmp_path / "worker.log"

    def saved_segments(job_id: str) -> bool:
        logs = list((store.root / "jobs" / job_id / ".tmp").glob("transcript-*.partial.jsonl"))
        return len(JsonlLog(logs[0]).read()) >= 3 if logs else False

    job_id, outcome, _ = kill_worker_once(settings, long_sample, log_path, saved_segments,
                                          "the first worker to save transcript segments", env=LATER_STAGES_OFF_ENV)
    assert outcome.state == JobState.done
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    # What the activity recorded: the attempt that finished started from a saved offset, not from zero.
    assert transcript.meta["resumed_from_s"] > 0
    assert transcript.meta["attempt"] >= 2
    assert '"transcribe.resumed"' in log_path.read_text()
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    reference = " ".join([REFERENCE.read_text()] * REPEATS)
    assert jiwer.wer(normalise(reference), normalise(transcript.text)) <= 0.15
    assert_manifest_matches(store, job_id)
