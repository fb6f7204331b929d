"""The webhook signature (clipper/ops/signing.py): the deployment key made once and privately, the per-job secrets
derived from it, who is told which secret, and the Standard Webhooks format checked by that standard's library."""

from __future__ import annotations

import stat
import threading
import time
from datetime import datetime, timezone

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from clipper.config import Settings
from clipper.errors import NotificationRejected
from clipper.ops import signing
from clipper.ops.notify import Notification, send_webhook

BODY = b'{"event":"done","job_id":"clip-1"}'


def settings(tmp_path, **update) -> Settings:
    return Settings(storage_dir=tmp_path / "store", **update)


def test_the_key_is_made_once_privately_even_when_processes_race(tmp_path):
    s = settings(tmp_path)
    secrets: list[str] = []
    threads = [threading.Thread(target=lambda: secrets.append(signing.job_secret("clip-a", s))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(secrets)) == 1 and secrets[0].startswith("whsec_")
    key = tmp_path / "store" / "webhook.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in key.parent.iterdir()) == ["webhook.key"]  # no temporary file left behind
    assert signing.job_secret("clip-a", s) == secrets[0] != signing.job_secret("clip-b", s)
    elsewhere = settings(tmp_path, webhook_key_file=tmp_path / "keys" / "hook.key")
    assert signing.job_secret("clip-a", elsewhere) != secrets[0]  # another key, other secrets


def test_an_unusable_key_is_a_typed_error_and_no_unsigned_delivery(tmp_path):
    s = settings(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "webhook.key").write_text("not hex")
    with pytest.raises(signing.WebhookKeyUnusable, match="64 hex digits"):
        signing.job_secret("clip-a", s)
    note = Notification(job_id="clip-a", event="done", state="done", url="https://example.com/a.mp3",
                        at=datetime(2025, 5, 1, tzinfo=timezone.utc))
    with pytest.raises(NotificationRejected, match="webhook key file"):
        send_webhook(note, s)  # refused before any request: port 9 is never asked


def test_who_is_told_which_secret(tmp_path):
    s = settings(tmp_path)
    assert signing.submitter_secret("clip-a", s, None) is None  # no webhook: nothing is sent, nothing to verify
    assert signing.submitter_secret("clip-a", s, "https://hooks.example/x") == signing.job_secret("clip-a", s)
    operator = settings(tmp_path, webhook_url="https://ops.example/hook")
    assert signing.submitter_secret("clip-a", operator, None) == signing.job_secret("clip-a", s)
    configured = settings(tmp_path, webhook_secret=SecretStr("ops-secret"))
    assert signing.submitter_secret("clip-a", configured, "https://hooks.example/x") is None
    assert signing.signing_secret("clip-a", configured) == "ops-secret"
    assert signing.signing_secret("clip-a", s) == signing.job_secret("clip-a", s)


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a plain configured secret"])
def test_the_signature_is_the_standard_one(secret):
    headers = signing.signature_headers(secret, "d3l1very", BODY)
    key = secret if secret.startswith("whsec_") else secret.encode()  # a plain secret keys with its UTF-8 bytes
    assert Webhook(key).verify(BODY, headers) == {"event": "done", "job_id": "clip-1"}
    assert signing.verify(secret, headers, BODY)
    assert not signing.verify(secret, headers, BODY + b" ")
    assert not signing.verify(secret + "x", headers, BODY)
    assert not signing.verify(secret, {**headers, "webhook-id": "another"}, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(BODY, {**headers, "webhook-id": "another"})


def test_an_old_timestamp_is_refused():
    old = int(time.time()) - signing.TOLERANCE_S - 60
    headers = signing.signature_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "d", BODY, timestamp=old)
    assert not signing.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, BODY)  # a replay
    assert signing.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, BODY, now=old + 1)
