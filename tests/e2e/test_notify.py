"""Notifications for real: a real SMTP server on loopback (aiosmtpd), a real HTTP receiver that checks the
HMAC, and the `notify` activity run by a real worker whose retries deliver once the SMTP server comes up."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivity
from activities.runtime import StageDeps
from clipper.config import Settings
from clipper.errors import NotificationFailed, NotificationRejected
from clipper.ops.log import configure_logging
from clipper.ops.notify import (
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, Notification, NotifyResult, send_email, send_webhook,
    verify_signature,
)
from clipper_app.client import ClipperClient, JobFailed, connect
from clipper_app.workers.pools import build_worker
from tests.helpers import run
from tests.helpers.httpserver import serve
from tests.helpers.webhooks import Receiver

PASSWORD = "smtp-pa55-planted-Zq8"
WEBHOOK_SECRET = "whsec-planted-K3y-77"
URL_TOKEN = "T0KEN-in-the-path-19"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def note(event: str = "waiting_for_retry", job_id: str | None = None) -> Notification:
    return Notification(
        job_id=job_id or f"clip-{uuid.uuid4().hex[:16]}", event=event, state="failed",
        title="Building software that never loses work", url="https://media.example/ep 1.mp3",
        error_type="LLMUnavailable", error_message="the LLM API answered 503", stage="quotes",
        at=datetime(2025, 5, 1, 10, 2, 11, tzinfo=timezone.utc),
    )


# --- a real SMTP server ---


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[Message]:
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def smtp_controller(inbox: Inbox, port: int | None = None, password: str | None = None) -> Controller:
    kwargs = {}
    if password is not None:  # AUTH over plain TCP: loopback test server only
        def check(server, session, envelope, mechanism, data):  # noqa: ANN001
            ok = isinstance(data, LoginPassword) and data.password == password.encode()
            return AuthResult(success=ok, handled=False)
        kwargs = {"authenticator": check, "auth_require_tls": False}
    return Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **kwargs)


@contextlib.contextmanager
def smtp_server(port: int | None = None, password: str | None = None) -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = smtp_controller(inbox, port, password)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


# --- a real webhook receiver ---


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def notify_settings(tmp_path, **update) -> Settings:
    base = dict(storage_dir=tmp_path / "storage", smtp_starttls=False, smtp_to=["ops@example.org", "dev@example.org"],
                smtp_from="clipper@example.org", notify_timeout_s=2)
    return Settings(**{**base, **update})


# --- the channels, one by one ---


def test_email_reaches_every_recipient_with_a_useful_message(tmp_path):
    with smtp_server() as (controller, inbox):
        settings = notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port)
        n = note()
        assert send_email(n, settings) == []
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "clipper@example.org"
    assert sorted(envelope.rcpt_tos) == ["dev@example.org", "ops@example.org"]
    [msg] = inbox.messages()
    assert msg["Subject"].strip() == (f"[clipper] {n.job_id} needs you: quotes failed (LLMUnavailable), waiting "
                                      "for retry or abandon: Building software that never loses work")
    assert msg["To"] == "ops@example.org, dev@example.org" and msg[EVENT_HEADER] == "waiting_for_retry"
    body = msg.get_payload(decode=True).decode()
    for line in (f"clipper retry {n.job_id}", f"clipper abandon {n.job_id}", f"clipper status {n.job_id}",
                 f"clipper history {n.job_id}", "LLMUnavailable: the LLM API answered 503", "2025-05-01 10:02:11 UTC",
                 "--set text_engine=offline"):
        assert line in body, line


def test_email_for_failed_and_done_say_what_to_do(tmp_path):
    with smtp_server() as (controller, inbox):
        settings = notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port)
        failed = note("failed")
        send_email(failed, settings)
        done = note("done").model_copy(update={"error_type": None, "error_message": None, "state": "done",
                                               "report_path": "/srv/storage/jobs/x/report.md"})
        send_email(done, settings)
    first, second = inbox.messages()
    assert first["Subject"].strip().startswith(f"[clipper] {failed.job_id} quotes failed (LLMUnavailable)")
    assert "clipper submit 'https://media.example/ep 1.mp3'" in first.get_payload(decode=True).decode()
    assert second["Subject"].strip() == f"[clipper] {done.job_id} done: Building software that never loses work"
    text = second.get_payload(decode=True).decode()
    assert f"clipper show {done.job_id}" in text and "/srv/storage/jobs/x/report.md" in text


def test_smtp_down_is_retryable_and_starttls_refusal_is_not(tmp_path):
    port = free_port()  # nothing listens
    with pytest.raises(NotificationFailed) as err:
        send_email(note(), notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port))
    assert not err.value.non_retryable and f"127.0.0.1:{port}" in err.value.message
    with smtp_server() as (controller, inbox):  # offers no STARTTLS: never send in the clear when TLS was asked
        with pytest.raises(NotificationRejected, match="CLIPPER_SMTP_STARTTLS=false"):
            send_email(note(), notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port,
                                               smtp_starttls=True))
    assert inbox.envelopes == []


def test_webhook_is_signed_and_identified(tmp_path, receiver):
    settings = notify_settings(tmp_path, webhook_url=receiver.url(), webhook_secret=SecretStr(WEBHOOK_SECRET))
    n = note()
    assert send_webhook(n, settings) == 200
    [(path, headers, body)] = receiver.requests
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected and verify_signature(body, headers[SIGNATURE_HEADER], WEBHOOK_SECRET)
    assert not verify_signature(body + b" ", headers[SIGNATURE_HEADER], WEBHOOK_SECRET)
    assert headers[EVENT_HEADER] == "waiting_for_retry" and len(headers[DELIVERY_HEADER]) == 32
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert Notification.model_validate(payload) == n
    assert payload["text"].startswith(f"[clipper] {n.job_id} needs you")
    assert WEBHOOK_SECRET not in body.decode() and WEBHOOK_SECRET not in json.dumps(headers)


def test_webhook_errors_are_typed(tmp_path, receiver):
    settings = notify_settings(tmp_path, webhook_url=receiver.url(), webhook_secret=SecretStr(WEBHOOK_SECRET))
    receiver.statuses = [500, 503, 429, 400, 404]
    for _ in range(3):
        with pytest.raises(NotificationFailed) as failed:
            send_webhook(note(), settings)
        assert not failed.value.non_retryable
    for code in (400, 404):
        with pytest.raises(NotificationRejected, match=f"HTTP {code}") as rejected:
            send_webhook(note(), settings)
        assert rejected.value.non_retryable
    receiver.redirect_to = "http://127.0.0.1:1/elsewhere"  # a redirected POST would lose its body: not followed
    with pytest.raises(NotificationRejected, match="HTTP 302"):
        send_webhook(note(), settings)
    receiver.redirect_to, receiver.delay_s = None, 1.5
    with pytest.raises(NotificationFailed, match="timed out"):
        send_webhook(note(), notify_settings(tmp_path, webhook_url=receiver.url(), notify_timeout_s=0.3))
    with pytest.raises(NotificationFailed, match="refused"):
        send_webhook(note(), notify_settings(tmp_path, webhook_url=f"http://127.0.0.1:{free_port()}/hook"))
    with pytest.raises(NotificationRejected):
        send_webhook(note(), notify_settings(tmp_path, webhook_url="ftp://example.org/hook"))


def test_secrets_stay_out_of_errors(tmp_path, receiver):
    """A wrong SMTP password, a receiver that echoes our secret back, a token in the webhook URL's path."""
    with smtp_server(password="the-right-one") as (controller, inbox):
        settings = notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port,
                                   smtp_username="clipper", smtp_password=SecretStr(PASSWORD))
        with pytest.raises(NotificationRejected, match="535") as err:
            send_email(note(), settings)
    assert PASSWORD not in err.value.message and inbox.envelopes == []
    receiver.statuses, receiver.reply = [401], f"bad signature; our secret is {WEBHOOK_SECRET}".encode()
    settings = notify_settings(tmp_path, webhook_url=receiver.url(f"/hooks/{URL_TOKEN}"),
                               webhook_secret=SecretStr(WEBHOOK_SECRET))
    with pytest.raises(NotificationRejected) as err:
        send_webhook(note(), settings)
    assert "HTTP 401" in err.value.message and "[REDACTED]" in err.value.message
    assert WEBHOOK_SECRET not in err.value.message and URL_TOKEN not in err.value.message
    with pytest.raises(NotificationFailed) as err:
        send_webhook(note(), notify_settings(tmp_path, webhook_url=f"http://127.0.0.1:{free_port()}/x/{URL_TOKEN}"))
    assert URL_TOKEN not in err.value.message


# --- the activity ---


def test_activity_skips_quietly_and_sends_each_channel_once(tmp_path, receiver):
    env = ActivityEnvironment()
    off = NotifyActivity(StageDeps.from_settings(notify_settings(tmp_path)))
    assert run(env.run(off.run, note())).skipped.startswith("no channel configured")
    with smtp_server() as (controller, inbox):
        settings = notify_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port,
                                   webhook_url=receiver.url(), webhook_secret=SecretStr(WEBHOOK_SECRET))
        activity = NotifyActivity(StageDeps.from_settings(settings))
        n = note()
        first = run(env.run(activity.run, n))
        again = run(env.run(activity.run, n))  # e.g. the worker died before the server recorded the result
        later = run(env.run(activity.run, n.model_copy(update={"at": n.at + timedelta(hours=1)})))  # a new failure
    assert first.channels == {"email": "sent", "webhook": "sent"}
    assert again.channels == {"email": "already sent", "webhook": "already sent"}
    assert later.channels == {"email": "sent", "webhook": "sent"}
    assert len(inbox.envelopes) == 2 and len(receiver.requests) == 2
    receipts = sorted(p.name for p in (settings.storage_dir / "jobs" / n.job_id / ".receipts").iterdir())
    assert receipts == ["notify-waiting_for_retry-email.json", "notify-waiting_for_retry-webhook.json"]


def test_done_notification_points_at_the_report(tmp_path, receiver):
    settings = notify_settings(tmp_path, webhook_url=receiver.url())
    done = note("done").model_copy(update={"state": "done", "error_type": None, "error_message": None})
    report = settings.storage_dir / "jobs" / done.job_id / "report.md"
    report.parent.mkdir(parents=True)
    report.write_text("# report")
    assert run(ActivityEnvironment().run(NotifyActivity(StageDeps.from_settings(settings)).run, done)).channels == {
        "webhook": "sent"}
    [(_, headers, body)] = receiver.requests
    assert headers[EVENT_HEADER] == "done" and SIGNATURE_HEADER not in headers  # no secret, no signature
    sent = json.loads(body)
    assert sent["report"] == "report.md" and "report_path" not in sent  # an artifact name, never a worker's path
    assert str(tmp_path) not in body.decode()


# --- through Temporal: a test-only workflow runs the real activity with a fast retry policy ---


@workflow.defn(name="NotifyTest", sandboxed=False)
class NotifyTest:
    @workflow.run
    async def run(self, n: Notification) -> NotifyResult:
        return await workflow.execute_activity_method(
            NotifyActivity.run, n, start_to_close_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=0.2), backoff_coefficient=1.5,
                                     maximum_interval=timedelta(seconds=0.5), maximum_attempts=40))


async def run_notify(settings: Settings, n: Notification, during=None) -> tuple[NotifyResult | Exception, str]:
    client = await connect(settings)
    deps = StageDeps.from_settings(settings)
    async with Worker(client, task_queue=settings.task_queue, workflows=[NotifyTest],
                      activities=[NotifyActivity(deps).run]):
        handle = await client.start_workflow(NotifyTest.run, n, id=f"notify-{uuid.uuid4().hex[:8]}",
                                             task_queue=settings.task_queue)
        if during is not None:
            await during(handle)
        try:
            result: NotifyResult | Exception = await handle.result()
        except WorkflowFailureError as err:
            result = err
        history = json.dumps((await handle.fetch_history()).to_json_dict())
    return result, history


async def attempts_so_far(handle) -> int:  # noqa: ANN001
    desc = await handle.describe()
    return max((p.attempt for p in desc.raw_description.pending_activities), default=0)


def test_smtp_outage_is_ridden_out_by_temporal_retries(settings, receiver):
    port = free_port()
    settings = settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False, "smtp_to": ["ops@example.org"],
        "webhook_url": receiver.url(), "webhook_secret": SecretStr(WEBHOOK_SECRET), "notify_timeout_s": 2})
    inbox = Inbox()
    controller = smtp_controller(inbox, port)

    async def outage_then_up(handle) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 20
        while await attempts_so_far(handle) < 3:  # the SMTP server is down for a few attempts
            assert time.monotonic() < deadline, "the activity was not retried"
            await asyncio.sleep(0.1)
        controller.start()

    try:
        result, history = run(run_notify(settings, note(), outage_then_up))
    finally:
        controller.stop(no_assert=True)
    assert isinstance(result, NotifyResult), result
    assert result.channels == {"email": "sent", "webhook": "already sent"}
    assert len(inbox.envelopes) == 1
    assert len(receiver.requests) == 1, "the webhook was sent again on a retry"
    assert "NotificationFailed" in history  # the failed attempts are in the history, typed


def test_rejected_is_not_retried_and_leaks_no_secret(settings, receiver, caplog):
    receiver.statuses, receiver.reply = [403], f"nope ({WEBHOOK_SECRET})".encode()
    logs = io.StringIO()
    configure_logging("info", "json", secrets=[], stream=logs)  # no redactor help: the messages must be clean
    try:
        with smtp_server(password="the-right-one") as (controller, inbox), caplog.at_level(logging.DEBUG):
            settings = settings.model_copy(update={
                "smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_starttls": False,
                "smtp_to": ["ops@example.org"], "smtp_username": "clipper", "smtp_password": SecretStr(PASSWORD),
                "webhook_url": receiver.url(f"/hooks/{URL_TOKEN}"), "webhook_secret": SecretStr(WEBHOOK_SECRET)})
            result, history = run(run_notify(settings, note()))
    finally:
        configure_logging("info", "json", stream=io.StringIO())
    assert isinstance(result, WorkflowFailureError) and isinstance(result.cause, ActivityError)
    cause = result.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == "NotificationRejected" and cause.non_retryable
    assert "535" in cause.message and "HTTP 403" in cause.message
    assert len(receiver.requests) == 1 and inbox.envelopes == []  # one attempt, no retry
    for text in (history, logs.getvalue(), caplog.text, cause.message):
        for secret in (PASSWORD, WEBHOOK_SECRET, URL_TOKEN):
            assert secret not in text
    assert "notify.rejected" in logs.getvalue()


# --- a real job: the workflow notifies when a stage gives up, and when the job then fails ---


def test_job_notifies_when_waiting_and_when_failed(settings, receiver):
    inbox = Inbox()
    controller = smtp_controller(inbox)
    settings = settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_starttls": False, "smtp_to": ["ops@example.org"],
        "webhook_url": receiver.url(), "webhook_secret": SecretStr(WEBHOOK_SECRET)})

    async def body(url: str) -> tuple[str, Exception | object]:
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            job = (await clipper.submit(url)).job_id  # the media host answers 500: DownloadFailed, retried, waits
            deadline = time.monotonic() + 30
            while not inbox.envelopes:
                assert time.monotonic() < deadline, "no email while the job waits for a retry"
                await asyncio.sleep(0.1)
            assert (await clipper.status(job)).waiting_since is not None
            await clipper.abandon(job)
            try:
                return job, await clipper.result(job)
            except JobFailed as err:
                return job, err

    controller.start()
    try:
        with serve({}) as media:
            media.set_status("/down.mp3", 500)
            job, result = run(body(media.url("/down.mp3")))
    finally:
        controller.stop()
    assert isinstance(result, JobFailed) and result.error_type == "DownloadFailed" and result.stage == "download"
    waiting, failed = inbox.messages()
    assert waiting["Subject"].strip().startswith(f"[clipper] {job} needs you: download failed (DownloadFailed)")
    assert f"clipper retry {job}" in waiting.get_content() and f"clipper abandon {job}" in waiting.get_content()
    assert failed["Subject"].strip().startswith(f"[clipper] {job} download failed (DownloadFailed)")
    events = [(headers[EVENT_HEADER], json.loads(body)["job_id"]) for _, headers, body in receiver.requests]
    assert events == [("waiting_for_retry", job), ("failed", job)]
    for _, headers, body in receiver.requests:
        assert verify_signature(body, headers[SIGNATURE_HEADER], WEBHOOK_SECRET)
