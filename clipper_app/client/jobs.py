"""A typed client for clipper: what the CLI uses, and what another Python service can import.

Callers never need to know workflow internals: they submit a URL, read a `JobStatus`, wait for a `JobResult`,
read the outputs as models (`clipper_app/client/outputs.py`). Every method raises `JobNotFound` for an unknown id and
`JobClosed` for a control sent to a job that has ended. Live progress of a running stage comes from its
heartbeat details (no history events).
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

from clipper.asr.models import check_job_model
from clipper.config import Settings, get_settings
from clipper.errors import DownloadFailed, InvalidRequest
from clipper.job.request import JobOptions, JobRequest, JobResult, PauseRequest, RetryRequest, SpeakerNames
from clipper.job.status import PRIORITY_DEFAULT, JobState, check_priority
from clipper.media.urls import canonical_url, check_submittable, job_id_for
from clipper.ops.breaker import BreakerState
from clipper.ops.notify import check_callback_url
from clipper.ops.signing import submitter_secret
from clipper.speakers.names import check_names
from clipper_app.client.batches import BatchMethods
from clipper_app.client.follows import FollowMethods
from clipper_app.client.breakers import BreakerClient
from clipper_app.client.common import (
    ArtifactNotFound, JobClosed, Submitted, check_engines, connect, ended_badly, job_settings,
)
from clipper_app.client.delete import DeleteMethods
from clipper_app.client.history import AuditEntry, audit_log, imported_from
from clipper_app.client.listing import ListingMethods
from clipper_app.client.outputs import OutputMethods
from clipper_app.client.remote import RemoteClipperClient
from clipper_app.client.search import SearchMethods
from clipper_app.client.transfer import TransferMethods
from workflows import search_attributes as sa
from workflows.media_job import MediaJob
from workflows.name_speakers import NameSpeakers


def refused(err: WorkflowUpdateFailedError | WorkflowFailureError) -> InvalidRequest:
    """A workflow's refusal (an update's validator, or the activity an update or a short workflow ran) as the
    `InvalidRequest` it is, with the refusal's own message."""
    cause = err.cause.cause if isinstance(err.cause, ActivityError) else err.cause
    return InvalidRequest(getattr(cause, "message", None) or str(cause))


class ClipperClient(BatchMethods, FollowMethods, ListingMethods, OutputMethods, TransferMethods, DeleteMethods,
                    SearchMethods):
    """`read_max_age_s`: how long a job's status (and a jobs list) is reused (clipper_app/client/reads.py); by
    default only concurrent reads share one, the web app keeps them a second."""

    def __init__(self, client: Client, settings: Settings | None = None, read_max_age_s: float = 0.0) -> None:
        super().__init__(client, settings)
        self.read_max_age_s = read_max_age_s

    @classmethod
    async def connect(cls, settings: Settings | None = None, read_max_age_s: float = 0.0) -> ClipperClient:
        settings = settings or get_settings()
        return cls(await connect(settings), settings, read_max_age_s)

    @staticmethod
    def over_http(base_url: str, token: str | None = None, **options: Any) -> RemoteClipperClient:
        """A client of `clipper web` at `base_url`, for a machine without Temporal or the store: the everyday
        methods, the same models and typed errors, over the REST API (clipper_app/client/remote.py)."""
        return RemoteClipperClient(base_url, token, **options)

    async def submit(self, url: str, options: JobOptions | None = None,
                     priority: int = PRIORITY_DEFAULT, callback_url: str | None = None) -> Submitted:
        """`callback_url` receives the signed webhook when the job is done or fails (clipper/ops/notify.py)."""
        url = url.strip()
        check_submittable(url)  # refuse what no worker could fetch before it becomes a job
        callback_url = _checked_callback(callback_url, self.settings)
        check_engines(options or JobOptions())
        check_job_model(options or JobOptions(), self.settings)  # unknown model, language it can't transcribe
        check_priority(priority)
        canonical, job_id = canonical_url(url), job_id_for(url)
        request = JobRequest(url=canonical, options=options or JobOptions(), priority=priority,
                             callback_url=callback_url, **job_settings(self.settings))
        # Derived here (before anything starts: a key file it cannot use is refused first), as the worker derives
        # it when it sends: the secret never enters the workflow's input, so never its history.
        secret = submitter_secret(job_id, self.settings, callback_url)
        existing = await self.exists(job_id)
        try:
            await self.client.start_workflow(
                MediaJob.run,
                request,
                id=job_id,
                task_queue=self.settings.task_queue,
                # Same media while running or after success → the existing job; after failure → a new run.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                priority=Priority(priority_key=priority),
                static_summary=canonical[:200],
                static_details=f"clipper job for {canonical}",
            )
        except WorkflowAlreadyStartedError:
            existing = True
        self.forget(job_id)  # a failed job's id may have started a new run
        return Submitted(job_id=job_id, existing=existing, webhook_secret=secret)

    async def breakers(self) -> list[BreakerState]:
        """Every provider's circuit breaker on this deployment (`clipper status` without a job)."""
        return await BreakerClient(self.client, self.settings.task_queue).all()

    # --- control: plain-JSON signals and updates, the same any Temporal client can send ---

    async def signalling(self, job_id: str, send: Any) -> Any:
        """Every write to a job goes through here: what this client kept of the job is dropped once it is sent."""
        try:
            return await super().signalling(job_id, send)
        finally:
            self.forget(job_id)

    async def pause(self, job_id: str, now: bool = False) -> None:
        await self.signalling(job_id, lambda: self.handle(job_id).signal(MediaJob.pause, PauseRequest(now=now)))

    async def resume(self, job_id: str) -> None:
        await self.signalling(job_id, lambda: self.handle(job_id).signal(MediaJob.resume))

    async def retry(self, job_id: str, options: dict[str, Any] | None = None) -> None:
        """Retry a job waiting after a failure; `options` change JobOptions fields (e.g. llm_model)."""
        JobOptions().changed(options)  # unknown or invalid options: InvalidRequest, before anything is sent
        await self.signalling(job_id, lambda: self.handle(job_id).signal(
            MediaJob.retry, RetryRequest(options=options or {})))

    async def abandon(self, job_id: str) -> None:
        await self.signalling(job_id, lambda: self.handle(job_id).signal(MediaJob.abandon))

    async def cancel(self, job_id: str) -> None:
        await self.signalling(job_id, lambda: self.handle(job_id).cancel())

    async def set_priority(self, job_id: str, priority: int) -> int:
        check_priority(priority)
        try:
            return await self.signalling(job_id, lambda: self.handle(job_id).execute_update(
                MediaJob.set_priority, priority))
        except WorkflowUpdateFailedError as err:
            raise refused(err) from None

    async def name_speakers(self, job_id: str, names: dict[str, str]) -> dict[str, str]:
        """Name a job's speakers ({"S1": "Diane"}; "" removes a name) and get all its names back. A running job
        takes the update `name_speakers`; a finished one (closed workflows take no updates) a `NameSpeakers`
        workflow that renders its outputs again. A bad label or name is an `InvalidRequest`."""
        check_names(names)
        desc = await self.describe(job_id)
        if desc.close_time is None:
            try:
                return await self.signalling(job_id, lambda: self.handle(job_id).execute_update(
                    MediaJob.name_speakers, names))
            except WorkflowUpdateFailedError as err:
                raise refused(err) from None
        # A finished job: checked against the speakers it has before anything starts (a refusal starts nothing).
        try:
            labels = [s.label for s in (await self.speakers(job_id)).speakers]
        except ArtifactNotFound:
            raise InvalidRequest(f"{job_id} has no speakers to name (no speakers.json: it ran without the "
                                 "speakers stage)") from None
        check_names(names, labels)
        self.forget(job_id)  # its outputs are rendered again
        try:
            return await self.client.execute_workflow(
                NameSpeakers.run, SpeakerNames(job_id=job_id, names=names, worker_pools=self.settings.worker_pools),
                id=f"{job_id}/names-{uuid.uuid4().hex[:8]}", task_queue=self.settings.task_queue,
                static_summary=f"helper: name the speakers of {job_id}",
                search_attributes=sa.HELPER_ATTRIBUTES)
        except WorkflowFailureError as err:
            raise refused(err) from None

    async def ensure_waiting(self, job_id: str) -> None:
        """`retry`/`abandon` only act on a job waiting after a failure: refuse, rather than send a signal the job
        ignores (`InvalidRequest` while it runs, `JobClosed` once it has ended)."""
        desc = await self.describe(job_id)
        if desc.close_time is not None:
            raise JobClosed(f"{job_id} has already ended ({desc.status.name.lower() if desc.status else 'closed'})")
        state = desc.typed_search_attributes.get(sa.CLIPPER_STATE) or JobState.queued.value
        if state == JobState.paused.value:  # paused while waiting, or paused while running: ask the job
            status = await self.status(job_id)
            state = None if status.waiting_since else state
        if state in (JobState.queued.value, JobState.running.value, JobState.paused.value):
            raise InvalidRequest(f"{job_id} is {state}, not waiting for a manual retry after a failure")

    async def result(self, job_id: str) -> JobResult:
        """Waits for the job's end: `JobFailed` (stage, error type, message) or `JobCancelled` if it did not finish."""
        try:
            with self.translating(job_id):
                return await self.handle(job_id, result_type=JobResult).result()
        except WorkflowFailureError as err:
            raise ended_badly(job_id, err) from None

    async def history(self, job_id: str) -> list[AuditEntry]:
        """The job's audit log (stages, attempts, retries, signals, updates, timers) from its event history."""
        with self.translating(job_id):
            history = await self.handle(job_id).fetch_history()
        if imported_from(history) is not None:  # brought from another deployment: the log of its original run
            return await self.imported_audit(job_id, history)
        return audit_log(history, self.client.data_converter.payload_converter)


def _checked_callback(url: str | None, settings: Settings) -> str | None:
    """A callback_url by the media URLs' SSRF rules; a host that does not resolve is an input error here."""
    if not url or not url.strip():
        return None
    try:
        return check_callback_url(url, settings)
    except DownloadFailed as err:
        raise InvalidRequest(f"callback_url: {err.message}") from None
