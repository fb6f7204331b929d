"""Telling people about a job: an email and/or a signed webhook when it fails, waits for a manual retry, or is done.

No Temporal here: `send_email` and `send_webhook` are plain blocking functions, run by the `notify` activity
(activities/notify.py) in a thread. Both raise typed errors the activity's retry policy understands:
`NotificationFailed` (server down, timeout, 5xx: retried) and `NotificationRejected` (webhook 4xx, SMTP 5xx
reply, a setting that cannot work: not retried). Messages name the server (host and port only: a webhook
URL's path and query often carry a token) and never carry a configured secret.

Every webhook delivery is signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
`webhook-signature`; clipper/ops/signing.py), with `CLIPPER_WEBHOOK_SECRET` or, without one, the job's own
secret, derived here in the worker and handed to the submitter at submit: never through the workflow. With a
configured secret the older `X-Clipper-Signature: sha256=<hex HMAC-SHA256 of the body>` is sent too (see
`verify_signature`), for receivers written before. Receivers drop duplicates by `webhook-id` (=
`X-Clipper-Delivery`), the same on every retry of one notification.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import shlex
import smtplib
import ssl
import urllib.error
import urllib.request
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from clipper.config import Settings
from clipper.errors import ClipperError, DownloadFailed, NotificationFailed, NotificationRejected, UnsupportedUrl
from clipper.media.urls import NETWORK_SCHEMES, check_url, check_url_syntax
from clipper.ops.signing import WebhookKeyUnusable, configured_secret, signature_headers, signing_secret

Event = Literal["failed", "waiting_for_retry", "done"]  # NOTIFY_EVENTS, spelled out for pydantic (a test compares)
SIGNATURE_HEADER = "X-Clipper-Signature"
EVENT_HEADER = "X-Clipper-Event"
DELIVERY_HEADER = "X-Clipper-Delivery"
REPLY_CHARS = 200  # of a server's reply kept in an error message


class Notification(BaseModel):
    """What happened to a job, built by the workflow (deterministically: `at` is the workflow's time)."""

    job_id: str
    event: Event
    state: str  # the job's state: failed (also while waiting for a retry), done
    title: str | None = None
    url: str
    error_type: str | None = None
    error_message: str | None = None
    stage: str | None = None  # the stage that failed (or the last one)
    at: datetime
    report_path: str | None = None  # filled in by the activity for `done`, when the report exists
    # The job's own receiver (JobRequest.callback_url), set for `done` and `failed` only; never in the payload.
    callback_url: str | None = None
    notify_operator: bool = True  # False: the event is not in notify_on, only the callback gets it


CALLBACK_EVENTS = ("done", "failed")  # what a job's callback_url receives


class NotifyResult(BaseModel):
    """What the `notify` activity did, per channel: sent, already sent (an earlier attempt), or why it skipped."""

    event: str
    channels: dict[str, str] = Field(default_factory=dict)
    skipped: str | None = None


def delivery_id(n: Notification) -> str:
    """The same for every attempt to deliver one notification: receivers and the activity dedupe on it."""
    return hashlib.sha256(f"{n.job_id}\n{n.event}\n{n.at.isoformat()}".encode()).hexdigest()[:32]


# --- what people read ---


def _one_line(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subject(n: Notification) -> str:
    what = f"{n.stage} failed ({n.error_type})" if n.error_type else "failed"
    if n.event == "waiting_for_retry":
        line = f"{n.job_id} needs you: {what}, waiting for retry or abandon"
    elif n.event == "failed":
        line = f"{n.job_id} {what}" if n.error_type else f"{n.job_id} failed"
    else:
        line = f"{n.job_id} done"
    if n.title:
        line += f": {n.title}"
    return "[clipper] " + _one_line(line, 200)


def email_body(n: Notification) -> str:
    job = n.job_id
    when = f"{n.at:%Y-%m-%d %H:%M:%S} UTC"
    media = f"{n.title} ({n.url})" if n.title else n.url
    error = f"{n.error_type}: {n.error_message}" if n.error_type else (n.error_message or "no error recorded")
    lines: list[str]
    if n.event == "waiting_for_retry":
        lines = [
            f"The clipper job {job} is waiting for a decision.",
            "",
            f"What happened: its stage \"{n.stage}\" gave up after its automatic retries.",
            f"  Error: {error}",
            f"  Media: {media}",
            f"  When:  {when}",
            "",
            "The finished stages are kept. Once the cause is fixed, run one of:",
            f"  clipper retry {job}                  run the stage again",
        ]
        if n.stage in ("quotes", "summary"):
            lines.append(f"  clipper retry {job} --set text_engine=offline   without the LLM")
        else:
            lines.append(f"  clipper retry {job} --set KEY=VALUE  run it again with changed options")
        lines += [
            f"  clipper abandon {job}                give up: the job fails with this error",
            "",
            "If nobody decides, the job fails on its own after CLIPPER_RETRY_WAIT_S (7 days by default).",
        ]
    elif n.event == "failed":
        lines = [
            f"The clipper job {job} failed.",
            "",
            f"What happened: stage \"{n.stage}\" failed." if n.stage else "What happened:",
            f"  Error: {error}",
            f"  Media: {media}",
            f"  When:  {when}",
            "",
            "Nothing more will happen to this job; its finished artifacts stay in its folder. To try again",
            "once the cause is fixed, submit the media again (a failed job's URL starts a new run):",
            f"  clipper submit {shlex.quote(n.url)}",
        ]
    else:
        lines = [
            f"The clipper job {job} is done.",
            "",
            f"  Media: {media}",
            f"  When:  {when}",
        ]
        if n.report_path:
            lines.append(f"  Report: {n.report_path}")
        lines += ["", "Read the report:", f"  clipper show {job}"]
    lines += ["", "Look closer:", f"  clipper status {job}", f"  clipper history {job}", ""]
    return "\n".join(lines)


def email_message(n: Notification, settings: Settings) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(n)
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(settings.smtp_to)
    msg["Date"] = format_datetime(n.at)
    domain = settings.smtp_from.rpartition("@")[2] or "clipper"
    msg["Message-ID"] = f"<{delivery_id(n)}@{domain}>"  # the same on a resend: mail clients fold duplicates
    msg[EVENT_HEADER] = n.event
    msg["X-Clipper-Job"] = n.job_id
    msg.set_content(email_body(n))
    return msg


def webhook_body(n: Notification) -> bytes:
    """The notification as JSON, plus `text`, a one-line summary chat webhooks (Slack, Mattermost) show.

    A receiver elsewhere cannot use the workers' file paths (and should not learn them): the report is named as
    the job's artifact (`report`: `report.md`, served at `/api/jobs/<job_id>/artifacts/report.md`), never by path.
    """
    payload = {**n.model_dump(mode="json", exclude={"callback_url", "notify_operator", "report_path"}),
               "report": "report.md" if n.report_path else None, "text": subject(n)}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """For receivers: does `X-Clipper-Signature` match this raw body? Constant-time."""
    return bool(header) and hmac.compare_digest(signature(body, secret), header)


# --- delivery ---


def _redact(text: str, settings: Settings) -> str:
    for secret in settings.secrets():
        text = text.replace(secret, "[REDACTED]")
    return text


def _reply(raw: bytes | str | None) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
    return _one_line(text, REPLY_CHARS)


def send_email(n: Notification, settings: Settings) -> list[str]:
    """Send `n` to `CLIPPER_SMTP_TO`; returns the recipients the server refused (when it took the others)."""
    if not settings.smtp_host:
        raise NotificationRejected("email is off: CLIPPER_SMTP_HOST is not set")
    if not settings.smtp_to:
        raise NotificationRejected("no email recipients: set CLIPPER_SMTP_TO (comma-separated addresses)")
    where = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
    implicit_tls = settings.smtp_port == 465
    step = "connect"
    try:
        msg = email_message(n, settings)
        if implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                                  timeout=settings.notify_timeout_s,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_s)
        with smtp:
            if settings.smtp_starttls and not implicit_tls:
                step = "STARTTLS"
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                step = "login"
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            step = "send"
            refused = smtp.send_message(msg)
        return sorted(refused)
    except smtplib.SMTPNotSupportedError as err:
        hint = ("; for a relay without TLS set CLIPPER_SMTP_STARTTLS=false" if step == "STARTTLS" else "")
        raise NotificationRejected(_redact(f"{where} cannot do {step}: {_reply(str(err))}{hint}", settings)) from None
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        text = "; ".join(f"{rcpt}: {code} {_reply(reply)}" for rcpt, (code, reply) in sorted(err.recipients.items()))
        message = _redact(f"{where} refused every recipient ({text})", settings)
        raise (NotificationFailed if all(400 <= c < 500 for c in codes) else NotificationRejected)(message) from None
    except smtplib.SMTPResponseException as err:  # auth failed, sender refused, data refused, busy, ...
        message = _redact(f"{where} answered {err.smtp_code} at {step}: {_reply(err.smtp_error)}", settings)
        if 500 <= err.smtp_code < 600:
            raise NotificationRejected(message) from None
        raise NotificationFailed(message + "; retrying") from None
    except (smtplib.SMTPException, OSError) as err:  # refused, reset, timeout, DNS, TLS handshake
        reason = _reply(str(err)) or type(err).__name__
        raise NotificationFailed(_redact(f"could not {step} with the {where} ({reason}); retrying", settings)) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would lose its body (or be replayed elsewhere): treat a 3xx as the answer."""

    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def webhook_headers(n: Notification, body: bytes, settings: Settings) -> dict[str, str]:
    """Always signed: Standard Webhooks headers with the configured secret or the job's own (derived here, in
    the worker); plus `X-Clipper-Signature` with a configured secret. An unusable key file is not retried."""
    delivery = delivery_id(n)
    try:
        signed = signature_headers(signing_secret(n.job_id, settings), delivery, body)
    except WebhookKeyUnusable as err:
        raise NotificationRejected(err.message) from None
    headers = {"Content-Type": "application/json", "User-Agent": "clipper-notify/1",
               EVENT_HEADER: n.event, DELIVERY_HEADER: delivery, **signed}
    if (secret := configured_secret(settings)) is not None:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    return headers


def check_callback_url(url: str, settings: Settings) -> str:
    """A job's callback_url passes the media URLs' SSRF rules (clipper/media/urls.py): http(s) only, no user name
    or password, no private or loopback address unless the operator allows it (CLIPPER_ALLOW_PRIVATE_ADDRESSES,
    CLIPPER_ALLOWED_HOSTS). Run at submit and again before each send (DNS may have changed). Raises the typed
    URL errors; a host that does not resolve is `DownloadFailed`."""
    url = url.strip()
    scheme, _, _ = check_url_syntax(url)
    if scheme not in NETWORK_SCHEMES:
        raise UnsupportedUrl("callback_url must be an http(s) URL")
    check_url(url, settings)
    return url


def _where(url: str) -> str:
    """`webhook http://host:port`, never the path or query (they often carry a token); "" when unusable."""
    parts = urlsplit(url)
    try:
        where = f"webhook {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a port that is not a number
        return ""
    return where if parts.scheme in ("http", "https") and parts.hostname else ""


def send_callback(n: Notification, settings: Settings) -> int:
    """POST `n` to the job's own `callback_url`, signed like the operator's webhook, after the SSRF check."""
    if not n.callback_url:
        raise NotificationRejected("the job has no callback_url")
    where = _where(n.callback_url) or "the callback_url"
    try:
        check_callback_url(n.callback_url, settings)
    except DownloadFailed:
        raise NotificationFailed(f"could not resolve the {where}; retrying") from None
    except ClipperError as err:
        raise NotificationRejected(f"{where} refused by the URL rules ({err.type_name})") from None
    return send_webhook(n, settings, url=n.callback_url)


def send_webhook(n: Notification, settings: Settings, url: str | None = None) -> int:
    """POST `n` as JSON to `url` (default `CLIPPER_WEBHOOK_URL`), signed; returns the HTTP status (2xx)."""
    url = url or settings.webhook_url
    if not url:
        raise NotificationRejected("the webhook is off: CLIPPER_WEBHOOK_URL is not set")
    where = _where(url)
    if not where:
        raise NotificationRejected("CLIPPER_WEBHOOK_URL must be an http(s) URL with a host and a valid port")
    body = webhook_body(n)
    request = urllib.request.Request(url, data=body, headers=webhook_headers(n, body, settings), method="POST")
    try:
        with _OPENER.open(request, timeout=settings.notify_timeout_s) as response:
            response.read(64 * 1024)
            return response.status
    except urllib.error.HTTPError as err:
        try:
            reply = _reply(err.read(REPLY_CHARS * 4))
        except (OSError, http.client.HTTPException):
            reply = ""
        message = _redact(f"{where} answered HTTP {err.code}" + (f": {reply}" if reply else ""), settings)
        if err.code >= 500 or err.code in (408, 425, 429):
            raise NotificationFailed(message + "; retrying") from None
        raise NotificationRejected(message) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:  # refused, timeout, DNS, reset
        reason = _reply(str(getattr(err, "reason", None) or err)) or type(err).__name__
        raise NotificationFailed(_redact(f"could not reach the {where} ({reason}); retrying", settings)) from None
