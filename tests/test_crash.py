"""kill -9 the worker mid-transcription: a new worker finishes the job, resuming from saved segments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import jiwer
import pytest

from clipper.models import JobResult, JobState, Transcript
from clipper.store import ArtifactStore, JsonlLog
from client import ClipperClient, connect
from tests.conftest import REFERENCE, SAMPLE, run
from tests.httpserver import serve
from tests.test_pipeline import assert_manifest_matches, normalise

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 4


@pytest.fixture(scope="module")
def long_sample(tmp_path_factory) -> Path:
    """The committed sample four times over (~3.6 min): long enough to kill a worker mid-transcription."""
    out = tmp_path_factory.mktemp("long") / "long.mp3"
    inputs = [arg for _ in range(REPEATS) for arg in ("-i", str(SAMPLE))]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *inputs,
                    "-filter_complex", f"concat=n={REPEATS}:v=0:a=1", "-c:a", "libmp3lame", "-b:a", "32k", str(out)],
                   check=True)
    return out


def start_worker(settings, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true",
               CLIPPER_LOG_FORMAT="json", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def kill_worker_once(settings, media: Path, log_path: Path, ready, what: str) -> tuple[str, JobResult, object]:
    """Serve `media`, submit it, start a worker process and kill -9 it as soon as `ready(job_id)` returns
    something truthy; then a second worker finishes the job. Returns (job id, result, what `ready` returned)."""
    with serve({"/media.mp3": (media.read_bytes(), "audio/mpeg")}) as server:

        async def submit() -> str:
            client = ClipperClient(await connect(settings), settings)
            return (await client.submit(server.url("/media.mp3"))).job_id

        job_id = run(submit())
        first = start_worker(settings, log_path)
        try:
            seen = wait_for(lambda: ready(job_id), 180, what)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        second = start_worker(settings, log_path)
        try:
            async def result() -> JobResult:
                client = ClipperClient(await connect(settings), settings)
                return await client.result(job_id)

            return job_id, run(result()), seen
        finally:
            second.terminate()
            second.wait(30)


@pytest.mark.crash
def test_kill_worker_mid_transcription_resumes(settings, long_sample, tmp_path):
    store = ArtifactStore(settings.storage_dir)
    log_path = tmp_path / "worker.log"

    def saved_segments(job_id: str) -> bool:
        logs = list((store.root / "jobs" / job_id / ".tmp").glob("transcript-*.partial.jsonl"))
        return len(JsonlLog(logs[0]).read()) >= 3 if logs else False

    job_id, outcome, _ = kill_worker_once(settings, long_sample, log_path, saved_segments,
                                          "the first worker to save transcript segments")
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
