"""A job's audit log, derived from its Temporal event history: who did what to it, and when.

`audit_log` is a pure function of a `WorkflowHistory` (fetched live, or a recorded one from
`WorkflowHistory.from_json`), so it is unit-testable without a server. One entry per meaningful event:
job start and end, each stage scheduled/started/completed/failed/cancelled, retries, signals, updates and
timers. Workflow tasks, markers and search-attribute upserts are bookkeeping and are left out.

What history can and cannot tell: the server records an activity's `started` event only once its last attempt
ends, with that attempt's number and the failure of the attempt before it (`last_failure`). So a stage that
needed three attempts shows one `retry` row (attempt 3, with attempt 2's error), and a stage still running
shows only `stage scheduled`.

Entries are sorted by time (ties keep history order). History order differs in two ways a reader would trip on:
an activity's `started` event is written when the attempt ends, after events that happened meanwhile (e.g. the
cancel request of `pause --now`), and a signal that arrives during a workflow task is written after that task.
Both carry the time they really happened, which is what the log shows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadConverter

from clipper.job.status import PRIORITY_DEFAULT
from clipper.media.urls import redact_credentials

DEFAULT_CONVERTER = pydantic_data_converter.payload_converter
DETAIL_MAX = 300  # characters of a decoded payload kept in `detail`


class AuditEntry(BaseModel):
    time: datetime
    event: str  # job started, stage scheduled/started/completed/failed, retry, signal, update accepted, ...
    stage: str | None = None  # the activity type, for stage events
    attempt: int | None = None
    detail: str | None = None


def audit_log(history: WorkflowHistory, converter: PayloadConverter | None = None) -> list[AuditEntry]:
    """The job's audit log, oldest first. `converter` decodes payloads (default: the pydantic converter)."""
    return _Auditor(converter or DEFAULT_CONVERTER).run(history.events)


class _Auditor:
    def __init__(self, converter: PayloadConverter) -> None:
        self.converter = converter
        self.stages: dict[int, str] = {}  # scheduled event id → activity type
        self.attempts: dict[int, int] = {}  # started event id → attempt
        self.updates: dict[str, str] = {}  # update id → update name
        self.entries: list[AuditEntry] = []

    def run(self, events: Sequence[HistoryEvent]) -> list[AuditEntry]:
        for event in events:
            kind = event.WhichOneof("attributes")
            handler = getattr(self, f"on_{kind.removesuffix('_event_attributes')}", None) if kind else None
            if handler is not None:
                handler(event, getattr(event, kind))
        return sorted(self.entries, key=lambda e: e.time)  # stable: ties keep history order

    def add(self, event: HistoryEvent, name: str, stage: str | None = None, attempt: int | None = None,
            detail: str | None = None) -> None:
        time = event.event_time.ToDatetime(tzinfo=timezone.utc)
        # A start that bypassed the client may carry user:password@ in its URL: never shown.
        detail = redact_credentials(detail) if detail else None
        self.entries.append(AuditEntry(time=time, event=name, stage=stage, attempt=attempt, detail=detail))

    # --- decoding ---

    def values(self, payloads: Sequence[Payload]) -> list[Any]:
        try:
            return list(self.converter.from_payloads(list(payloads)))
        except Exception:  # noqa: BLE001 - an undecodable payload must not hide the rest of the log
            return [f"<{len(p.data)} bytes, {p.metadata.get('encoding', b'?').decode(errors='replace')}>"
                    for p in payloads]

    def call(self, name: str, payloads: Sequence[Payload]) -> str:
        args = ", ".join(_json(v) for v in self.values(payloads))
        return f"{name}({args})"

    def failure(self, failure: Failure) -> str:
        message = failure.message
        if failure.HasField("encoded_attributes"):  # a codec-encoded failure keeps its message in a payload
            attrs = self.values([failure.encoded_attributes])
            if attrs and isinstance(attrs[0], dict):
                message = attrs[0].get("message", message)
        if failure.HasField("application_failure_info"):
            kind = failure.application_failure_info.type or "ApplicationError"
        elif failure.HasField("timeout_failure_info"):
            kind = "Timeout " + TimeoutType.Name(failure.timeout_failure_info.timeout_type).removeprefix(
                "TIMEOUT_TYPE_").lower()
        elif failure.HasField("canceled_failure_info"):
            kind = "Cancelled"
        elif failure.HasField("terminated_failure_info"):
            kind = "Terminated"
        else:
            kind = ""
        text = message if not kind or message.startswith(kind) or f"{kind}: " in message else f"{kind}: {message}"
        return _clip(text)

    # --- the job ---

    def on_workflow_execution_started(self, event: HistoryEvent, attrs: Any) -> None:
        request = (self.values(attrs.input.payloads) or [None])[0]
        if isinstance(request, dict):
            parts = [f"url={request.get('url')}", f"priority={request.get('priority', PRIORITY_DEFAULT)}"]
            parts += [f"{k}={v}" for k, v in (request.get("options") or {}).items() if v is not None]
            detail = ", ".join(parts)
        else:
            detail = _json(request) if request is not None else None
        self.add(event, "job started", detail=detail)

    def on_workflow_execution_cancel_requested(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "cancel requested", detail=" ".join(filter(None, (attrs.cause, f"by {attrs.identity}"
                                                                             if attrs.identity else ""))))

    def on_workflow_execution_completed(self, event: HistoryEvent, attrs: Any) -> None:
        result = (self.values(attrs.result.payloads) or [None])[0]
        detail = None
        if isinstance(result, dict):
            detail = f"state={result.get('state')}, {len(result.get('artifacts') or {})} artifacts"
        self.add(event, "job completed", detail=detail)

    def on_workflow_execution_failed(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "job failed", detail=self.failure(attrs.failure))

    def on_workflow_execution_canceled(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "job cancelled")

    def on_workflow_execution_terminated(self, event: HistoryEvent, attrs: Any) -> None:
        by = f" (by {attrs.identity})" if attrs.identity else ""
        self.add(event, "job terminated", detail=(attrs.reason or "") + by)

    def on_workflow_execution_timed_out(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "job timed out")

    def on_workflow_execution_continued_as_new(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "job continued as new", detail=f"new run {attrs.new_execution_run_id}")

    # --- stages (activities) ---

    def on_activity_task_scheduled(self, event: HistoryEvent, attrs: Any) -> None:
        stage = attrs.activity_type.name
        self.stages[event.event_id] = stage
        priority = attrs.priority.priority_key if attrs.HasField("priority") else 0
        self.add(event, "stage scheduled", stage, detail=f"priority={priority}" if priority else None)

    def on_activity_task_started(self, event: HistoryEvent, attrs: Any) -> None:
        stage = self.stages.get(attrs.scheduled_event_id)
        self.attempts[event.event_id] = attrs.attempt
        if attrs.attempt > 1:
            previous = self.failure(attrs.last_failure) if attrs.HasField("last_failure") else "no error recorded"
            self.add(event, "retry", stage, attrs.attempt, f"attempt {attrs.attempt - 1} failed: {previous}")
        self.add(event, "stage started", stage, attrs.attempt, f"worker {attrs.identity}" if attrs.identity else None)

    def on_activity_task_completed(self, event: HistoryEvent, attrs: Any) -> None:
        result = (self.values(attrs.result.payloads) or [None])[0]
        detail = None
        if isinstance(result, dict):
            names = sorted(_artifact_names(result))
            detail = ", ".join(filter(None, (
                f"{result['elapsed_s']:.1f}s" if isinstance(result.get("elapsed_s"), (int, float)) else "",
                ("wrote " + ", ".join(names[:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else ""))
                if names else "",
            )))
        self.add(event, "stage completed", self.stages.get(attrs.scheduled_event_id),
                 self.attempts.get(attrs.started_event_id), detail)

    def on_activity_task_failed(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "stage failed", self.stages.get(attrs.scheduled_event_id),
                 self.attempts.get(attrs.started_event_id), self.failure(attrs.failure))

    def on_activity_task_timed_out(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "stage timed out", self.stages.get(attrs.scheduled_event_id),
                 self.attempts.get(attrs.started_event_id), self.failure(attrs.failure))

    def on_activity_task_cancel_requested(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "stage cancel requested", self.stages.get(attrs.scheduled_event_id))

    def on_activity_task_canceled(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "stage cancelled", self.stages.get(attrs.scheduled_event_id),
                 self.attempts.get(attrs.started_event_id))

    # --- control: signals, updates, timers ---

    def on_workflow_execution_signaled(self, event: HistoryEvent, attrs: Any) -> None:
        by = f" by {attrs.identity}" if attrs.identity else ""
        self.add(event, "signal", detail=self.call(attrs.signal_name, attrs.input.payloads) + by)

    def on_workflow_execution_update_accepted(self, event: HistoryEvent, attrs: Any) -> None:
        request = attrs.accepted_request
        self.updates[request.meta.update_id or attrs.protocol_instance_id] = request.input.name
        by = f" by {request.meta.identity}" if request.meta.identity else ""
        self.add(event, "update accepted", detail=self.call(request.input.name, request.input.args.payloads) + by)

    def on_workflow_execution_update_completed(self, event: HistoryEvent, attrs: Any) -> None:
        name = self.updates.get(attrs.meta.update_id, "update")
        if attrs.outcome.HasField("failure"):
            detail = f"{name} failed: {self.failure(attrs.outcome.failure)}"
        else:
            detail = f"{name} → " + ", ".join(_json(v) for v in self.values(attrs.outcome.success.payloads))
        self.add(event, "update completed", detail=detail)

    def on_timer_started(self, event: HistoryEvent, attrs: Any) -> None:
        wait = timedelta(seconds=round(attrs.start_to_fire_timeout.ToTimedelta().total_seconds()))
        self.add(event, "timer started", detail=f"timer {attrs.timer_id}: fires in {wait}")

    def on_timer_fired(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "timer fired", detail=f"timer {attrs.timer_id}")

    def on_timer_canceled(self, event: HistoryEvent, attrs: Any) -> None:
        self.add(event, "timer cancelled", detail=f"timer {attrs.timer_id}")


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 1] + "…"


def _artifact_names(value: Any) -> set[str]:
    """Names of the artifact references (`{"name", "sha256", ...}`) anywhere in a stage's output."""
    if isinstance(value, dict):
        if isinstance(value.get("name"), str) and "sha256" in value:
            return {value["name"]}
        return set().union(*(_artifact_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_artifact_names(v) for v in value)) if value else set()
    return set()


# --- imported jobs (`clipper import`, clipper_app/client/transfer.py) ---

from workflows.imported_job import IMPORTED_TYPE  # noqa: E402 - kept with the rest of this block


def imported_from(history: WorkflowHistory, converter: PayloadConverter | None = None) -> dict[str, Any] | None:
    """The start input of an `ImportedJob` (a job another deployment exported), as plain JSON: the reference of its
    archived original history (`history`) and where it came from (`source`, `exported_at`). None for the history
    of any other workflow."""
    first = history.events[0] if history.events else None
    if first is None or not first.HasField("workflow_execution_started_event_attributes"):
        return None
    attrs = first.workflow_execution_started_event_attributes
    if attrs.workflow_type.name != IMPORTED_TYPE:
        return None
    values = _Auditor(converter or DEFAULT_CONVERTER).values(attrs.input.payloads)
    return values[0] if values and isinstance(values[0], dict) else {}


def imported_audit_log(original: WorkflowHistory, imported: WorkflowHistory,
                       converter: PayloadConverter | None = None) -> list[AuditEntry]:
    """An imported job's audit log: its original run's, from the archived history, then one `job imported` entry
    saying when, and from where."""
    entries = audit_log(original, converter)
    start = imported.events[0]
    came = imported_from(imported, converter) or {}
    source = came.get("source") if isinstance(came.get("source"), dict) else {}
    detail = (f"from namespace {source.get('namespace')} at {source.get('address')}, exported "
              f"{came.get('exported_at')}")
    entries.append(AuditEntry(time=start.event_time.ToDatetime(tzinfo=timezone.utc), event="job imported",
                              detail=detail))
    return entries


# --- end imported jobs ---
