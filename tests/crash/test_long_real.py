"""The long tier: a 20-minute job of real human speech, with a worker killed (-9) during transcription.

The audio is built at test time from the committed real recordings (tests/helpers/real.py). The job must finish
with progress that only moves forward and ends at 100 %, no stage and no finished chunk run again after the
kill, and a transcript whose WER is within 2 points of the same audio transcribed in one pass. That one-pass
transcript is kept between runs (tests/helpers/real.py's `one_pass_text`, keyed by the audio, the decoding code
and packages): the chunked, killed and resumed transcript is made anew every run. The audiograms stage runs and
does no work (the same three quotes' videos on any job; other tests make them).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import jiwer
import pytest

from activities.transcribe_chunks import chunk_name
from clipper.job.outputs import Transcript
from clipper.job.stages import STAGES
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, connect
from tests.helpers.jobs import assert_manifest_matches
from tests.helpers.processes import kill_worker_once
from tests.helpers.real import long_real_speech, normalise, one_pass_text
from tests.helpers.reports import add_report

pytestmark = [pytest.mark.long, pytest.mark.crash]
MINUTES = 20


@pytest.fixture(scope="module")
def real_speech(tmp_path_factory) -> tuple[Path, str]:
    return long_real_speech(tmp_path_factory.mktemp("real") / "space.mp3", MINUTES)


class ProgressWatch(threading.Thread):
    """Reads the job's status once a second from its own event loop, for as long as the job runs."""

    def __init__(self, settings, job_id: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.job_id = settings, job_id
        self.seen: list[tuple[float, float, int]] = []  # (job progress, transcribe progress, transcribe attempt)
        self.stop = threading.Event()

    def run(self) -> None:
        async def watch() -> None:
            clipper = ClipperClient(await connect(self.settings), self.settings)
            while not self.stop.is_set():
                try:
                    status = await clipper.status(self.job_id)
                except Exception:  # noqa: BLE001 - a status read during the kill may fail; the next one counts
                    status = None
                if status is not None and status.stages:
                    stage = status.stage("transcribe")
                    self.seen.append((status.progress, stage.progress, stage.attempt))
                await asyncio.sleep(1.0)

        asyncio.run(watch())


def test_twenty_minutes_of_real_speech_survive_a_kill_during_transcription(settings, real_speech, tmp_path, request):
    audio, reference = real_speech
    store = ArtifactStore(settings.storage_dir)
    watches: list[ProgressWatch] = []

    def chunks_done(job_id: str) -> list[str] | None:
        if not watches:
            watches.append(ProgressWatch(settings, job_id))
            watches[0].start()
        receipts = sorted(p.name for p in (store.root / "jobs" / job_id / ".receipts").glob("transcribe-*.json")
                          if p.stem.removeprefix("transcribe-").isdigit())
        return receipts or None  # kill once a chunk has finished and the others are under way

    job_id, result, done_before = kill_worker_once(settings, audio, tmp_path / "worker.log", chunks_done,
                                                   "a first chunk to finish",
                                                   env={"CLIPPER_AUDIOGRAMS_ENABLED": "false"})
    watches[0].stop.set()
    watches[0].join(10)
    assert result.state == JobState.done and result.info.duration_s >= MINUTES * 60

    # Progress: forward only (a resumed chunk restarts from its saved segments, so allow a small step back
    # while the new attempt reports in), seen between 0 and 1 during transcription, 100 % at the end.
    seen = watches[0].seen
    assert any(0 < transcribing < 1 for _, transcribing, _ in seen), seen
    assert all(b >= a - 0.05 for (a, _, _), (b, _, _) in zip(seen, seen[1:])), seen
    assert result.status.progress == 1.0 and all(s.progress == 1.0 for s in result.status.stages)

    # Nothing redone: every stage activity scheduled once, every chunk scheduled once, and the chunks finished
    # before the kill completed on their first attempt (their receipts were reused, never re-run).
    async def scheduled() -> list[tuple[str, dict]]:
        history = await (await connect(settings)).get_workflow_handle(job_id).fetch_history()
        out = []
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                out.append((attrs.activity_type.name, json.loads(attrs.input.payloads[0].data)))
        return out

    activities = asyncio.run(scheduled())
    names = [name for name, _ in activities]
    for stage in [s for s in STAGES if s != "transcribe"] + ["plan_transcription", "merge_transcript"]:
        assert names.count(stage) == 1, (stage, names)
    spans = [arg["span"]["index"] for name, arg in activities if name == "transcribe_chunk"]
    assert sorted(spans) == list(range(len(spans))) and len(spans) >= 4
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    finished_first = {int(name.removeprefix("transcribe-").removesuffix(".json")) for name in done_before}
    for index in finished_first:
        chunk = Transcript.model_validate_json(store.path(job_id, chunk_name(index)).read_bytes())
        assert chunk.meta["attempt"] == 1, (index, chunk.meta)
    assert_manifest_matches(store, job_id)

    # Quality: the chunked, killed and resumed transcript is as good as one pass over the same audio.
    chunked = jiwer.wer(normalise(reference), normalise(transcript.text))
    one_pass, kept = one_pass_text(store.path(job_id, "audio.wav"), tmp_path)
    single = jiwer.wer(normalise(reference), normalise(one_pass))
    add_report(request.config, "long tier: real speech, kill -9 during transcription", [
        f"{result.info.duration_s / 60:.1f} min of real speech, {len(spans)} chunks, killed after "
        f"{len(finished_first)} finished; WER chunked+resumed {chunked:.1%}, one pass {single:.1%}"
        f"{' (kept from an earlier run)' if kept else ''}; "
        f"transcribe progress seen: {sorted({round(t, 2) for _, t, _ in seen})}"])
    assert chunked <= single + 0.02, (chunked, single)
