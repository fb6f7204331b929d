"""Signing webhook deliveries: every delivery carries a signature its receiver can check.

The signature follows Standard Webhooks (standardwebhooks.com), so any of its libraries verifies it:
`webhook-id` (the delivery: the same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

The key is the operator's `CLIPPER_WEBHOOK_SECRET` when one is configured. Without one, each job has its own
secret, `whsec_<base64>`: the HMAC-SHA256 of the job id under a random deployment key. The key is a file made
once with mode 0600 (`CLIPPER_WEBHOOK_KEY_FILE`, by default `webhook.key` in `CLIPPER_STORAGE_DIR`); the
submitting client derives the job's secret from it and hands it to the submitter, the worker's `notify` activity
derives the same secret when it sends. So the secret never travels through the workflow (nor its history), the
same job always gets the same secret (a submit repeated after a lost answer gets it again), and one job's secret
tells nothing about another's. Processes on several hosts share the key file (or set CLIPPER_WEBHOOK_SECRET).

A secret `whsec_<base64>` keys the HMAC with the decoded bytes (the Standard Webhooks convention); any other
configured secret with its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from clipper.config import Settings
from clipper.errors import ClipperError

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
PREFIX = "whsec_"
KEY_FILE = "webhook.key"
KEY_BYTES = 32
TOLERANCE_S = 300  # how far a receiver lets the timestamp be from its clock (the Standard Webhooks default)


class WebhookKeyUnusable(ClipperError):
    """The deployment's webhook key file (CLIPPER_WEBHOOK_KEY_FILE, default `webhook.key` in CLIPPER_STORAGE_DIR)
    cannot be read or written, or does not hold 64 hex digits. Fix its permissions, or remove it to have a new one
    made (the per-job secrets handed out before then no longer verify), or set CLIPPER_WEBHOOK_SECRET."""


def key_path(settings: Settings) -> Path:
    return settings.webhook_key_file or settings.storage_dir / KEY_FILE


def deployment_key(settings: Settings) -> bytes:
    """The random key the per-job secrets derive from: read, or made once (created atomically: when two
    processes race, both end up with the one that was linked first)."""
    path = key_path(settings)
    try:
        return _parse(path, path.read_text(encoding="ascii"))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as err:
        raise WebhookKeyUnusable(f"cannot read the webhook key file {path}: {type(err).__name__}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made the key first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return _parse(path, path.read_text(encoding="ascii"))
    except OSError as err:
        raise WebhookKeyUnusable(f"cannot create the webhook key file {path}: {type(err).__name__}") from None


def _parse(path: Path, text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise WebhookKeyUnusable(f"the webhook key file {path} does not hold {KEY_BYTES * 2} hex digits")
    return key


def job_secret(job_id: str, settings: Settings) -> str:
    """The job's own secret, `whsec_<base64>`: the same for every call on any process sharing the key."""
    digest = hmac.new(deployment_key(settings), f"clipper-webhook\n{job_id}".encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(digest).decode()


def configured_secret(settings: Settings) -> str | None:
    value = settings.webhook_secret.get_secret_value() if settings.webhook_secret is not None else ""
    return value or None


def signing_secret(job_id: str, settings: Settings) -> str:
    """What signs the job's deliveries: the configured secret, else the job's own."""
    return configured_secret(settings) or job_secret(job_id, settings)


def submitter_secret(job_id: str, settings: Settings, callback_url: str | None) -> str | None:
    """The secret to hand whoever submits the job: the job's own, when a delivery will be made (the job has a
    callback_url, or the operator's webhook is set) and no operator secret is configured. With one, None: the
    operator gives its receivers that secret, and a submitter (any holder of the API's token) never learns it."""
    if configured_secret(settings) or not (callback_url or settings.webhook_url):
        return None
    return job_secret(job_id, settings)


def key_bytes(secret: str) -> bytes:
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: a configured secret that merely starts like one
    return secret.encode()


def sign(secret: str, delivery: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`."""
    mac = hmac.new(key_bytes(secret), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_headers(secret: str, delivery: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {ID_HEADER: delivery, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, delivery, timestamp, body)}


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """For receivers: do these headers sign this raw body with `secret`, at a time near ours? Constant-time.
    (The snippet in docs/api.md is the same check, standalone.)"""
    lower = {k.lower(): v for k, v in headers.items()}
    delivery, stamp, given = lower.get(ID_HEADER), lower.get(TIMESTAMP_HEADER), lower.get(SIGNATURE_HEADER)
    if not (delivery and stamp and given):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, delivery, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in given.split())
