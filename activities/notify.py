"""Activity `notify`: email and/or webhook about a job (clipper/ops/notify.py), whichever the worker configures.

Which events notify is the job's (`JobRequest.notify_on`, from the submitting client's `CLIPPER_NOTIFY_ON`):
the workflow only runs this activity for those. It skips quietly when the worker configures no channel.
Each channel is idempotent per notification (job, event, time): a channel that delivered on an earlier
attempt leaves a receipt in the job's `.receipts/notify-<event>-<channel>.json` (in the artifact store, so
every worker sees it) and is not sent again when
the other channel's failure makes Temporal retry the activity. A channel that was rejected (non-retryable)
is recorded too, so the other channel's retries do not send to it again; the activity then ends with
`NotificationRejected`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity

from activities.breaker import TemporalGate
from activities.runtime import StageDeps, to_application_error
from clipper.errors import NotificationFailed, NotificationRejected, ProviderUnavailable
from clipper.ops.breaker import guarded, provider_key
from clipper.ops.notify import Notification, NotifyResult, delivery_id, send_callback, send_email, send_webhook
from clipper.store.local import ArtifactStore, now_utc

SENT, REJECTED = "sent", "rejected"


class NotifyActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    def channels(self, n: Notification | None = None) -> dict[str, Callable[[Notification, Any], Any]]:
        """The operator's channels (when the event is one of the job's notify_on), and the job's callback_url."""
        settings = self.deps.settings
        operator = n is None or n.notify_operator
        return {name: send for name, send, on in (("email", send_email, operator and settings.smtp_host),
                                                   ("webhook", send_webhook, operator and settings.webhook_url),
                                                   ("callback", send_callback, n is not None and n.callback_url))
                if on}

    @activity.defn(name="notify")
    async def run(self, notification: Notification) -> NotifyResult:
        n, settings = notification, self.deps.settings
        log = structlog.get_logger().bind(job_id=n.job_id, notify_event=n.event, attempt=activity.info().attempt)
        result = NotifyResult(event=n.event)
        channels = self.channels(n)
        if not channels:
            result.skipped = "no channel configured (CLIPPER_SMTP_HOST, CLIPPER_WEBHOOK_URL, the job's callback_url)"
            return result
        store = self.deps.store
        if n.event == "done" and n.report_path is None:
            report = await asyncio.to_thread(store.local_copy, n.job_id, "report.md")
            n = n.model_copy(update={"report_path": store.uri(n.job_id, "report.md") if report else None})
        key = delivery_id(n)
        # Each target's circuit breaker: while one is open it is not called (waits=False: the retry policy waits).
        gate = TemporalGate.unattended(self.deps.breakers, asyncio.get_running_loop())
        failed: list[NotificationFailed] = []
        rejected: list[str] = []
        for name, send in channels.items():
            receipt = f"notify-{n.event}-{name}"
            earlier = await asyncio.to_thread(_read, store, n.job_id, receipt)
            if earlier.get("delivery") == key:  # an earlier attempt settled this channel
                result.channels[name] = f"already {earlier.get('outcome')}"
                if earlier.get("outcome") == REJECTED:
                    rejected.append(f"{name}: {earlier.get('error', '')}")
                continue
            try:
                outcome = await asyncio.to_thread(guarded, gate, _provider(name, n, settings), lambda: send(n, settings),
                                                  _outage)
            except (NotificationFailed, ProviderUnavailable) as exc:  # an open breaker: not called, retried the same
                err = exc if isinstance(exc, NotificationFailed) else NotificationFailed(f"{name}: {exc.message}")
                log.warning("notify.failed", channel=name, error=err.message)
                failed.append(err)
                result.channels[name] = "failed"
                continue
            except NotificationRejected as err:
                log.warning("notify.rejected", channel=name, error=err.message)
                await asyncio.to_thread(_write, store, n.job_id, receipt, key, REJECTED, err.message)
                rejected.append(f"{name}: {err.message}")
                result.channels[name] = REJECTED
                continue
            await asyncio.to_thread(_write, store, n.job_id, receipt, key, SENT)
            log.info("notify.sent", channel=name)
            if name == "email" and outcome:  # the server took the message for the other recipients
                log.warning("notify.recipients_refused", channel=name, refused=outcome)
            result.channels[name] = SENT
        if failed:  # Temporal retries the activity; channels that are settled are not sent again
            raise to_application_error(NotificationFailed("; ".join(e.message for e in failed)))
        if rejected:
            raise to_application_error(NotificationRejected("; ".join(rejected)))
        return result


def _provider(channel: str, n: Notification, settings: Any) -> str:
    """The provider a channel calls, for its circuit breaker: the SMTP server, the webhook's or callback's host."""
    if channel == "email":
        return f"{settings.smtp_host}:{settings.smtp_port}"
    return provider_key(settings.webhook_url if channel == "webhook" else n.callback_url, channel)


def _outage(exc: Exception) -> str | None:
    return exc.message if isinstance(exc, NotificationFailed) else None  # rejected (4xx, refused address): it answered


def _read(store: ArtifactStore, job_id: str, receipt: str) -> dict[str, Any]:
    try:
        data = json.loads(store.read_receipt(job_id, receipt) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(store: ArtifactStore, job_id: str, receipt: str, key: str, outcome: str, error: str | None = None) -> None:
    record = {"delivery": key, "outcome": outcome, "at": now_utc().isoformat(), "error": error}
    store.put_receipt(job_id, receipt, json.dumps(record).encode())
