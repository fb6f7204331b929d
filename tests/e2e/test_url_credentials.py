"""A password in a media URL (`https://user:pass@host/...`) leaks nowhere.

Such URLs are refused with `CredentialsInUrl`, whose message says what to do and shows the URL as
`https://***@host/...`: by the client (`ClipperClient.submit`, `clipper submit`, `clipper submit-batch`), and again
by the worker for a job started without the client (the `temporal` CLI, any SDK). The job a raw start made keeps
the URL only in the one place its starter put it, the start event's input: the workflow shows `***` instead in the
status, the download's input, the activity summary, the audit log and the notification, and fails at once.

A worker subprocess logs JSON at debug level; afterwards the planted password must be in no log line, no file of
the store, no CLI output, no status, and no history event but that start event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clipper.errors import CredentialsInUrl
from clipper.job.status import JobState
from clipper_app.client import ClipperClient, JobFailed, JobNotFound, connect
from scripts.devserver import temporal_bin
from tests.helpers import run
from tests.helpers import ROOT
from tests.helpers.jobs import decoded, wait_for_state
from tests.helpers.processes import start_worker

PASSWORD = "pw-planted-5b8e1f3c9a7d42e6"
USER = "listener"


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir))
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def temporal(settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    return subprocess.run([temporal_bin(), *args, "--address", settings.temporal_address, "--namespace",
                           settings.temporal_namespace, "--disable-config-file", "--color", "never"],
                          capture_output=True, text=True, env=env, timeout=60)


def assert_refused(line: str, url_shown: str) -> None:
    assert line.startswith("error CredentialsInUrl: "), line
    assert PASSWORD not in line and USER not in line
    assert url_shown in line and "needs no login" in line


def test_credentials_in_a_url_are_refused_and_never_shown(settings, media_server, temporal_server, tmp_path):
    secret_url = media_server.url("/episode.mp3").replace("http://", f"http://{USER}:{PASSWORD}@")
    shown = media_server.url("/episode.mp3").replace("http://", "http://***@")
    outputs: list[str] = []

    # 1. The Python client refuses it before anything starts.
    async def submit() -> None:
        clipper = ClipperClient(await connect(settings), settings)
        with pytest.raises(CredentialsInUrl) as raised:
            await clipper.submit(secret_url)
        outputs.append(raised.value.message)
        with pytest.raises(CredentialsInUrl):
            await clipper.submit_batch(urls=[media_server.url("/episode.mp3"), secret_url])
        # Nothing started on this test's queue (the server is shared with other tests).
        started = [wf async for wf in clipper.client.list_workflows(f'TaskQueue = "{settings.task_queue}"')]
        assert started == []

    run(submit())
    assert shown in outputs[0] and PASSWORD not in outputs[0]

    # 2. So does the CLI, in one line, for a job, a playlist and a file of URLs.
    url_file = tmp_path / "urls.txt"
    url_file.write_text(f"{media_server.url('/episode.mp3')}\n{secret_url}\n")
    for args in (("submit", secret_url), ("submit", secret_url, "--wait"), ("submit-batch", secret_url),
                 ("submit-batch", str(url_file))):
        result = cli(settings, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
        assert_refused(result.stderr.strip(), shown)
        outputs += [result.stdout, result.stderr]

    # 3. A start that bypasses the client: the worker refuses the URL and the job fails at once.
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    job_id = f"raw-{uuid.uuid4().hex[:8]}"
    try:
        started = temporal(settings, "workflow", "start", "--type", "MediaJob", "--task-queue", settings.task_queue,
                           "--workflow-id", job_id, "--input", json.dumps({"url": secret_url}))
        assert started.returncode == 0, started.stderr
        outputs += [started.stdout, started.stderr]

        async def outcome():
            clipper = ClipperClient(await connect(settings), settings)
            status = await wait_for_state(clipper, job_id, JobState.failed, timeout=90)
            try:
                await clipper.result(job_id)
            except JobFailed as failed:
                return status, failed
            raise AssertionError("the job should fail")

        status, failed = run(outcome())
        for args in (("status", job_id, "--json"), ("status", job_id), ("history", job_id, "--json"),
                     ("history", job_id)):
            result = cli(settings, *args)
            assert result.returncode == 0, (args, result.stderr)
            outputs += [result.stdout, result.stderr]
        history = temporal(settings, "workflow", "show", "--workflow-id", job_id, "-o", "json")
        assert history.returncode == 0, history.stderr
    finally:
        worker.terminate()
        worker.wait(30)

    assert (failed.stage, failed.error_type) == ("download", "CredentialsInUrl")
    assert status.url == shown and status.waiting_since is None  # failed for good: no retry can fix it
    assert status.error.type == "CredentialsInUrl" and shown in status.error.message
    assert media_server.requests == []  # nothing was fetched, with or without the credentials

    # The password is nowhere but in the start event's input, where the starter put it.
    events = decoded(json.loads(history.stdout)["events"])
    holding = [e["eventType"] for e in events if PASSWORD in json.dumps(e)]
    assert holding == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"], holding
    scheduled = [e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert scheduled and shown in json.dumps(scheduled[0])  # the download was given the shown URL
    logs = log_path.read_text(errors="replace")
    assert "CredentialsInUrl" in logs and PASSWORD not in logs
    files = [p for p in Path(settings.storage_dir).rglob("*") if p.is_file()]
    assert [p for p in files if PASSWORD.encode() in p.read_bytes()] == []
    assert all(PASSWORD not in out for out in outputs), [out for out in outputs if PASSWORD in out]
    assert shown in "".join(outputs)  # the status and the audit log show the URL, credentials masked
    assert PASSWORD not in Path(temporal_server.log_file).read_text(errors="replace")

    async def unknown() -> None:  # the client's refusals started nothing under the secret URL's job id
        from clipper.media.urls import job_id_for

        with pytest.raises(JobNotFound):
            await ClipperClient(await connect(settings), settings).describe(job_id_for(secret_url))

    run(unknown())
