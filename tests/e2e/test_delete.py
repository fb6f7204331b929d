"""Deleting a job and everything it left, on the real dev server: a real job deleted with the CLI (refused while it
runs, its files intact; then its files, kept versions and runs gone, `clipper show` says JobNotFound); a job with a
`NameSpeakers` helper deleted over REST (409 while it runs, 204, then 404); ids that would leave the store; and the
S3 store's delete against a real S3 API (moto's server)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import boto3
import httpx
import pytest
from temporalio.worker import Worker

from clipper.config import Settings
from clipper.errors import InvalidRequest
from clipper.job.request import SpeakerNames
from clipper.job.status import JobState
from clipper.job.versions import archive, list_versions
from clipper.store.configured import open_store
from clipper_app.client import ClipperClient, JobNotFound, JobStillRunning, connect
from clipper_app.workers.pools import build_worker
from clipper_app.workers.retry_budget import RetryBudgetInterceptor
from tests.helpers import ROOT, SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until, wait_for_state
from tests.helpers.processes import cli
from tests.helpers.s3 import isolated_aws_env
from tests.helpers.standins import StandIns, standin_settings
from tests.helpers.webserver import web_server
from workflows.media_job import MediaJob
from workflows.name_speakers import NameSpeakers

# The server removes a just-closed run's history once it has acknowledged the close: ~30 s on a default server,
# ~1 s on the test session's (scripts/devserver.py's QUICK_DELETES); the bound holds for either.
DELETED_WITHIN_S = 90


async def listed(settings, job: str) -> bool:
    result = await cli(settings, "list", "--json", "--limit", "1000")
    assert result.code == 0, result.err
    return any(row["job_id"] == job for row in json.loads(result.out))


@pytest.mark.slow
def test_cli_deletes_an_ended_job_and_refuses_a_running_one(settings):
    store = open_store(settings)

    async def body():
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as media:
            async with build_worker(client, settings):
                job = (await clipper.submit(media.url("/episode.mp3"))).job_id
                await until(lambda: store.read_manifest(job).artifacts.get("audio.wav"), what="the download")
                await clipper.pause(job, now=True)
                await wait_for_state(clipper, job, JobState.paused)
                before = sorted(p.name for p in store.job_dir(job).iterdir())

                refused = await cli(settings, "delete", job, "--yes")
                line = refused.one_line_error()
                assert refused.code == 2 and "JobStillRunning" in line and f"clipper cancel {job}" in line, line
                assert sorted(p.name for p in store.job_dir(job).iterdir()) == before and "audio.wav" in before

                await clipper.resume(job)
                await clipper.result(job)
            # A kept version, as a re-run stage leaves one: deleted with the job.
            assert archive(store, job, "report", ["report.md"], "test", None, keep=3) is not None
            assert list_versions(store, job)
            assert await until(lambda: listed(settings, job), timeout=15, what="the job in the list")

            # Without a terminal to ask on, --yes is required: nothing is deleted.
            env = {"TEMPORAL_ADDRESS": settings.temporal_address, "CLIPPER_TASK_QUEUE": settings.task_queue,
                   "CLIPPER_STORAGE_DIR": str(settings.storage_dir)}
            unasked = await asyncio.to_thread(
                subprocess.run, [sys.executable, "starter.py", "delete", job], cwd=ROOT, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
            assert unasked.returncode == 2 and "--yes" in unasked.stderr, unasked.stderr
            assert (store.root / "jobs" / job / "report.md").is_file()

            deleted = await cli(settings, "delete", job, "--yes", timeout=DELETED_WITHIN_S + 30)
            assert deleted.code == 0 and f"{job}: deleted (" in deleted.out, deleted
            assert not (store.root / "jobs" / job).exists()
            assert not any((store.root / "jobs").iterdir())  # no leftover of the delete either
            assert not await listed(settings, job)
            shown = await cli(settings, "show", job)
            assert "JobNotFound" in shown.one_line_error()
            versions = await cli(settings, "versions", job)
            assert versions.code == 0 and "no versions" in versions.out
            again = await cli(settings, "delete", job, "--yes")
            assert "JobNotFound" in again.one_line_error()

    run(body())


@pytest.mark.slow
def test_rest_delete_of_a_job_with_its_speaker_names(settings):
    fakes = StandIns(held={"transcribe"})
    settings = standin_settings(settings)
    store = open_store(settings)

    async def body():
        temporal = await connect(settings)
        async with Worker(temporal, task_queue=settings.task_queue, workflows=[MediaJob, NameSpeakers],
                          activities=fakes.activities(), interceptors=[RetryBudgetInterceptor()]):
            clipper = ClipperClient(temporal, settings)
            job = (await clipper.submit(f"https://example.com/{uuid.uuid4().hex}.mp3")).job_id
            other = (await clipper.submit(f"https://example.com/{uuid.uuid4().hex}.mp3")).job_id
            for name in (job, other):  # the files a worker leaves (the stand-ins write none)
                store.put_text(name, "transcript.txt", "[00:00] S1: hello", "speakers")
            with web_server(settings) as base:
                async with httpx.AsyncClient(base_url=base, timeout=DELETED_WITHIN_S + 30) as http:
                    await until(lambda: fakes.of("transcribe"), what="the job to run")
                    r = await http.delete(f"/api/jobs/{job}")
                    assert r.status_code == 409 and r.json()["error"] == "JobStillRunning", r.text
                    assert f"clipper cancel {job}" in r.json()["detail"]
                    assert (store.root / "jobs" / job / "transcript.txt").is_file()

                    fakes.held.clear()
                    await clipper.result(job)
                    await clipper.result(other)
                    names = SpeakerNames(job_id=job, names={"S1": "Diane"}, worker_pools=False)
                    await temporal.execute_workflow(NameSpeakers.run, names, id=f"{job}/names-test",
                                                    task_queue=settings.task_queue)
                    helpers = f'WorkflowId STARTS_WITH "{job}/"'
                    await until(lambda: _count(temporal, helpers), what="the helper run in the list")

                    r = await http.delete(f"/api/jobs/{job}")
                    assert r.status_code == 204 and not r.content, r.text
                    assert not (store.root / "jobs" / job).exists()
                    assert (store.root / "jobs" / other / "transcript.txt").is_file()  # another job is left alone
                    assert await _count(temporal, helpers) == 0
                    assert (await http.get(f"/api/jobs/{job}")).status_code == 404
                    assert job not in [row["job_id"] for row in (await http.get("/api/jobs")).json()]
                    again = await http.delete(f"/api/jobs/{job}")
                    assert again.status_code == 404 and again.json()["error"] == "JobNotFound"

                    for bad in (".hidden", "%2E%2E"):  # ids that would lead out of `jobs/`: refused, 422
                        r = await http.delete(f"/api/jobs/{bad}")
                        assert r.status_code == 422 and r.json()["error"] == "InvalidRequest", (bad, r.text)
            (store.root / "outside").mkdir()
            for bad in ("..", "../outside", "a/b", ""):
                with pytest.raises(InvalidRequest):
                    await clipper.delete_job(bad)
            assert (store.root / "outside").is_dir()
            with pytest.raises(JobNotFound):
                await clipper.delete_job("clip-0000000000000000")
            fakes.held.add("download")
            running = (await clipper.submit(f"https://example.com/{uuid.uuid4().hex}.mp3")).job_id
            with pytest.raises(JobStillRunning, match="clipper cancel"):
                await clipper.delete_job(running)
            await clipper.cancel(running)
            fakes.held.clear()

    run(body())


async def _count(temporal, query: str) -> int:
    return (await temporal.count_workflows(query)).count


@pytest.mark.slow
def test_s3_store_deletes_every_object_of_the_job(s3_endpoint, monkeypatch, tmp_path):
    isolated_aws_env(monkeypatch, "AKIACLIPPERDELETE01", "s3-delete-test-secret")
    bucket = f"clipper-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    settings = Settings(storage_dir=tmp_path / "cache", storage_url=f"s3://{bucket}/team",
                        s3_endpoint_url=s3_endpoint)
    store = open_store(settings)
    job, other = "clip-delete000000001", "clip-delete0000000012"  # one id a prefix of the other
    for name in (job, other):
        store.put_text(name, "report.md", "# report", "report")
        store.put_bytes(name, "clips/01.mp3", b"\x00" * 2048, "clips")
        store.put_receipt(name, "report", b"{}")
    archive(store, job, "report", ["report.md"], "test", None, keep=3)

    def keys(name: str) -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"team/jobs/{name}/").get("Contents", [])]

    assert any("/versions/" in k for k in keys(job)) and any("/.refs/" in k for k in keys(job))
    objects = len(keys(job))
    assert store.delete_job(job) >= objects
    assert keys(job) == [] and not (tmp_path / "cache" / "jobs" / job).exists()
    assert store.read_manifest(job).artifacts == {}
    assert len(keys(other)) > 0 and store.read_manifest(other).artifacts  # the other job is intact
    assert store.delete_job(job) == 0  # nothing left: nothing removed, no error
