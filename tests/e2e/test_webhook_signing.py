"""Every webhook delivery is signed, and the submitter can check it: real jobs (their media answers 404, so they
fail at once and call back), a real receiver on loopback, and the signature checked by the Standard Webhooks
library (`standardwebhooks`, an implementation that is not clipper's) and by `clipper.ops.signing.verify`.

Two ways to have the secret: without CLIPPER_WEBHOOK_SECRET each job has its own, which the submitter gets from
`POST /api/jobs` (`webhook_secret`) or `clipper submit --json`, and which the worker (a separate process, here)
derives again when it sends. The secret and the key it derives from are in no history, log, stored file or
CLI output. With CLIPPER_WEBHOOK_SECRET, every delivery is signed with it and no submitter is told it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from clipper.ops import signing
from clipper.ops.notify import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature
from clipper_app.client import ClipperClient, JobFailed, connect
from clipper_app.workers.pools import build_worker
from tests.helpers import ROOT, run
from tests.helpers.httpserver import serve, serving
from tests.helpers.jobs import history_json
from tests.helpers.webhooks import Receiver
from tests.helpers.webserver import web_server

CONFIGURED = "operator-Secret-planted-8c1f"


def deliveries(receiver: Receiver, paths: set[str], timeout: float = 60) -> dict[str, tuple[dict[str, str], bytes]]:
    """The first delivery to each path, once every path has one; header names in lower case."""
    deadline = time.monotonic() + timeout
    while True:
        got = {path: ({k.lower(): v for k, v in headers.items()}, body)
               for path, headers, body in reversed(receiver.requests) if path in paths}
        if set(got) == paths:
            return got
        assert time.monotonic() < deadline, f"deliveries so far: {[r[0] for r in receiver.requests]}"
        time.sleep(0.1)


def assert_verifies_only_with(secret: str | bytes, headers: dict[str, str], body: bytes, wrong: str) -> None:
    assert Webhook(secret).verify(body, headers)["event"] == "failed"  # the standard's own implementation
    with pytest.raises(WebhookVerificationError):
        Webhook(wrong).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"failed"', b'"done"', 1), headers)  # a body changed in transit
    if isinstance(secret, str):
        assert signing.verify(secret, headers, body) and not signing.verify(wrong, headers, body)
    assert headers["webhook-id"] == headers[DELIVERY_HEADER.lower()]


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true")
    env.pop("CLIPPER_WEBHOOK_SECRET", None)
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_each_job_secret_reaches_its_submitter_and_nothing_else(settings, tmp_path):
    receiver = Receiver()
    log_path = tmp_path / "worker.log"
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true",
               CLIPPER_LOG_FORMAT="json", CLIPPER_LOG_LEVEL="debug", CLIPPER_GRACEFUL_SHUTDOWN_S="2")
    env.pop("CLIPPER_WEBHOOK_SECRET", None)
    outputs: list[str] = []
    with serve({}) as media, web_server(settings) as base, serving(receiver):
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                                  stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
        try:
            gone = media.url(f"/{uuid.uuid4().hex}.mp3")  # 404: MediaNotFound, the job fails and calls back
            with httpx.Client(base_url=base, timeout=30) as http:
                r = http.post("/api/jobs", json={"url": gone, "callback_url": receiver.url("/api")})
                assert r.status_code == 202, r.text
                api_job, api_secret = r.json()["job_id"], r.json()["webhook_secret"]
                assert api_secret.startswith("whsec_")
                again = http.post("/api/jobs", json={"url": gone, "callback_url": receiver.url("/api")})
                assert again.json() == {"job_id": api_job, "existing": True, "webhook_secret": api_secret}
                quiet = http.post("/api/jobs", json={"url": media.url("/no-webhook.mp3")})
                assert "webhook_secret" not in quiet.json()  # no webhook at all: nothing to hand out
                outputs.append(quiet.text)

            shown = cli(settings, "submit", media.url(f"/{uuid.uuid4().hex}.mp3"), "--callback-url",
                        receiver.url("/cli"), "--json")
            assert shown.returncode == 0, shown.stderr
            submitted = json.loads(shown.stdout)
            cli_job, cli_secret = submitted["job_id"], submitted["webhook_secret"]
            assert cli_secret.startswith("whsec_") and cli_secret != api_secret

            got = deliveries(receiver, {"/api", "/cli"})

            for args in (("status", api_job, "--json"), ("history", api_job, "--json"), ("status", cli_job)):
                result = cli(settings, *args)
                outputs += [result.stdout, result.stderr]
        finally:
            worker.terminate()
            worker.wait(30)

    for path, secret, other in (("/api", api_secret, cli_secret), ("/cli", cli_secret, api_secret)):
        headers, body = got[path]
        assert_verifies_only_with(secret, headers, body, wrong=other)
        assert SIGNATURE_HEADER.lower() not in headers  # the body-only signature comes with a configured secret only
    assert json.loads(got["/api"][1])["job_id"] == api_job and json.loads(got["/cli"][1])["job_id"] == cli_job

    key_file = settings.storage_dir / signing.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    planted = {"the key": key, "the API job's secret": api_secret, "the CLI job's secret": cli_secret}
    places = {"worker log": log_path.read_text(errors="replace"), "other output": "\n".join(outputs)}

    async def histories() -> None:
        for job in (api_job, cli_job):
            places[f"history of {job}"] = await history_json(settings, job)
    run(histories())
    for path in settings.storage_dir.rglob("*"):
        if path.is_file() and path != key_file:
            places[str(path)] = path.read_bytes().decode(errors="replace")
    assert "notify.sent" in places["worker log"]  # the log is the worker's, and it did send
    for where, text in places.items():
        for what, value in planted.items():
            assert value not in text, f"{what} is in {where}"


@pytest.mark.slow
def test_a_configured_secret_signs_every_delivery_and_is_never_handed_out(settings):
    settings = settings.model_copy(update={"webhook_secret": SecretStr(CONFIGURED)})
    receiver = Receiver()
    settings = settings.model_copy(update={"webhook_url": receiver.url("/operator")})

    async def body(media) -> tuple[str, str | None, dict]:
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            submitted = await clipper.submit(media.url(f"/{uuid.uuid4().hex}.mp3"), callback_url=receiver.url("/job"))
            with pytest.raises(JobFailed):
                await clipper.result(submitted.job_id)
            with web_server(settings) as base:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    r = await http.post("/api/jobs", json={"url": media.url("/other.mp3"),
                                                           "callback_url": receiver.url("/job")})
            return submitted.job_id, submitted.webhook_secret, r.json()

    with serve({}) as media, serving(receiver):
        job, handed, api = run(body(media))
        got = deliveries(receiver, {"/operator", "/job"})
    assert handed is None and set(api) == {"job_id", "existing"}  # nobody is told the operator's secret
    assert CONFIGURED not in repr(api)
    for headers, raw in got.values():
        assert json.loads(raw)["job_id"] == job
        # A configured secret that is not `whsec_<base64>` keys the HMAC with its UTF-8 bytes.
        assert_verifies_only_with(CONFIGURED.encode(), headers, raw, wrong="whsec_" + "A" * 43 + "=")
        assert signing.verify(CONFIGURED, headers, raw) and not signing.verify(CONFIGURED + "x", headers, raw)
        assert verify_signature(raw, headers[SIGNATURE_HEADER.lower()], CONFIGURED)  # and the older header, as before
