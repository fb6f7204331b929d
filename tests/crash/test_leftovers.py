"""A worker killed in the middle of a write leaves its temp file; a finished or cancelled job's folder still
holds no temporary file.

The first worker is tests/helpers/faulty_worker.py: it writes a temp file in full and kills itself (SIGKILL)
before renaming it, as kill -9 at that moment would; no `finally` runs. A second, ordinary worker then finishes
the job (the last stage sweeps the folder) or, after a cancel, runs the clean-up activity.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from clipper.job.status import JobState
from clipper.store.files import is_temp_file, temp_path
from clipper.store.local import TMP_DIR, ArtifactStore
from clipper_app.client import ClipperClient, JobCancelled, connect
from tests.helpers import FAST_POLICY, SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches, until
from tests.helpers.processes import start_worker, worker_running


def temporary_files(job_dir: Path) -> list[Path]:
    """Files that are no artifact: anything under the scratch folder, temp files (`.<name>.<hex>.tmp`, `*.tmp`)
    and partial downloads (`*.part`) anywhere in the job's folder."""
    scratch = [p for p in (job_dir / TMP_DIR).rglob("*") if p.is_file()]
    named = [p for p in job_dir.rglob("*") if p.is_file() and (is_temp_file(p) or p.suffix in (".tmp", ".part"))]
    return sorted(set(scratch + named))


@pytest.mark.crash
@pytest.mark.parametrize("fault, end", [
    ("clip", "done"),  # a clip's temp file, in the scratch folder
    ("clips.json", "cancelled"),  # an artifact's temp file, beside the artifact in the job's folder
])
def test_a_write_killed_midway_leaves_no_temp_file_in_a_finished_or_cancelled_job(settings, tmp_path, fault, end):
    # A dead attempt is noticed after 3 s without heartbeat.
    settings = settings.model_copy(update={"policies": {**settings.policies, "clips": FAST_POLICY.model_copy(
        update={"heartbeat_timeout_s": 3})}})
    store, log = ArtifactStore(settings.storage_dir), tmp_path / "worker.log"

    async def submit(url: str) -> str:
        return (await ClipperClient(await connect(settings), settings).submit(url)).job_id

    async def cancel_once_retried(job_id: str) -> None:
        """Cancel while no worker runs, once the server has retired the dead attempt (heartbeat timeout) and
        holds the next one. (A cancel that reaches the dead attempt first ends as a timeout, which the job takes
        for a failed stage: a separate defect of the stage runner, reported separately.)"""
        clipper = ClipperClient(await connect(settings), settings)

        async def retry_pending() -> bool:
            desc = await clipper.handle(job_id).describe()
            return any(p.attempt >= 2 for p in desc.raw_description.pending_activities)

        await until(retry_pending, timeout=60, what="the dead attempt to time out")
        await clipper.cancel(job_id)

    async def outcome_of(job_id: str):
        try:
            return await ClipperClient(await connect(settings), settings).result(job_id)
        except JobCancelled:
            return JobState.cancelled

    with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        job = run(submit(server.url("/episode.mp3")))
        faulty = start_worker(settings, log, fault=fault)
        try:
            died = faulty.wait(180)
            assert died == -signal.SIGKILL, f"the worker did not die in the write: {log.read_text()[-2000:]}"
        finally:
            faulty.kill()
        job_dir = store.job_dir(job)
        killed = [p for p in temporary_files(job_dir) if is_temp_file(p)]
        assert killed, f"the killed write left no temp file in {job_dir}"
        if end == "cancelled":
            run(cancel_once_retried(job))
        with worker_running(settings, log):
            outcome = run(outcome_of(job))

    if end == "done":
        assert outcome.state == JobState.done, outcome
        assert_manifest_matches(store, job)
    else:
        assert outcome == JobState.cancelled
    assert not temporary_files(job_dir), f"{end} job keeps temporary files: {temporary_files(job_dir)}"
    assert not (job_dir / TMP_DIR).exists()


def test_a_job_that_fails_for_good_leaves_no_temporary_file(settings, media_server):
    """A job abandoned after a stage gave up is finished too: its work in progress and a dead writer's temp files
    are swept (patch `failed-cleanup`), its finished artifacts stay."""
    from clipper_app.client import JobFailed
    from tests.helpers.jobs import run_job, wait_for_state
    from tests.helpers.llmserver import llm_settings
    from tests.helpers.llmserver import error, serve_llm

    store = ArtifactStore(settings.storage_dir)
    planted: list[Path] = []

    async def plant_and_abandon(clipper, job_id):
        await wait_for_state(clipper, job_id, JobState.failed)  # quotes: the key is refused, it waits at once
        job_dir = store.job_dir(job_id)
        (job_dir / TMP_DIR).mkdir(exist_ok=True)
        planted.extend([job_dir / TMP_DIR / "transcript-0.partial.jsonl", temp_path(job_dir / "quotes.json")])
        for path in planted:
            path.write_text("work in progress")
        await clipper.abandon(job_id)

    with serve_llm(handler=lambda req: error(401, "bad key", "invalid_request_error")) as llm:
        settings = llm_settings(settings, llm)
        _, job, result = run(run_job(settings, media_server.url("/episode.mp3"), during=plant_and_abandon))
    assert isinstance(result, JobFailed) and result.error_type == "LLMAuthError"
    job_dir = store.job_dir(job)
    assert planted and not any(p.exists() for p in planted)
    assert not temporary_files(job_dir), f"failed job keeps temporary files: {temporary_files(job_dir)}"
    assert_manifest_matches(store, job)  # the audio and the transcript it had made stay
