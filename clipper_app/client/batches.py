"""Batches from a client: submit a playlist URL or a file of URLs as one `BatchJob`, read its status and result.

`BatchMethods` is a part of `ClipperClient`. pause, resume, cancel and set_priority need nothing new: a batch
takes the same signals and update as a job, by its id.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from clipper.asr.models import check_job_model
from clipper.errors import ClipperError, InvalidRequest
from clipper.job.batch import BatchRequest, BatchResult, BatchStatus, JobTemplate
from clipper.job.request import JobOptions
from clipper.job.status import PRIORITY_DEFAULT
from clipper.job.status import JobState, check_priority
from clipper.media.playlist import batch_id_for, parse_url_list
from clipper.media.urls import NETWORK_SCHEMES, canonical_url, check_url_syntax, refuse_credentials
from clipper_app.client.common import (
    NO_WORKER, SERVER_STATES, ClientBase, JobNotFound, Submitted, check_engines, ended_badly, job_settings,
)
from workflows.batch_job import BatchJob

BATCH_TYPE = "BatchJob"


def read_url_file(path: str | Path) -> list[str]:
    """A file of URLs on this machine: one per line, `#` comments and blank lines skipped. Each URL is made
    canonical when it can be; one that cannot stays as written and its job fails with the reason."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidRequest(f"cannot read the URL list {path}: {err}") from None
    urls = []
    for line in parse_url_list(text):
        refuse_credentials(line)  # never passed on: a password would end up in every item's job
        try:
            check_url_syntax(line)
            urls.append(canonical_url(line))
        except ClipperError:
            urls.append(line)
    if not urls:
        raise InvalidRequest(f"{path} lists no URL (one per line; # starts a comment)")
    return urls


def source_or_file(arg: str) -> tuple[str | None, list[str]]:
    """`submit-batch`'s argument: an http(s) URL is a playlist for the worker to expand; a file is read here."""
    refuse_credentials(arg)
    try:
        scheme, _, _ = check_url_syntax(arg)
    except ClipperError:
        scheme = ""
    if scheme in NETWORK_SCHEMES:
        return arg.strip(), []
    if Path(arg).expanduser().is_file():
        return None, read_url_file(arg)
    raise InvalidRequest(f"{arg!r} is neither an http(s) playlist URL nor a file of URLs")


class BatchMethods(ClientBase):
    """A playlist or a list of URLs as one BatchJob, a child job per item."""

    async def submit_batch(self, source: str | None = None, urls: list[str] | None = None,
                           options: JobOptions | None = None, priority: int = PRIORITY_DEFAULT,
                           concurrency: int | None = None, window: int = 100,
                           batch_id: str | None = None) -> Submitted:
        """`source`: a playlist/feed URL the worker expands; or `urls`, one job each."""
        settings = self.settings
        if bool(source) == bool(urls):
            raise InvalidRequest("give a playlist URL or a list of URLs (exactly one of them)")
        for url in [source or "", *(urls or [])]:
            refuse_credentials(url)
        if source:
            scheme, _, _ = check_url_syntax(source)
            if scheme not in NETWORK_SCHEMES:
                raise InvalidRequest(f"a playlist must be an http(s) URL, got {source!r}; a list of URLs goes in a file")
        check_engines(options or JobOptions())
        check_job_model(options or JobOptions(), settings)  # unknown model, a language it can't transcribe
        check_priority(priority)
        concurrency = settings.batch_concurrency if concurrency is None else concurrency
        if not 1 <= concurrency <= 100:
            raise InvalidRequest(f"concurrency must be 1 to 100, got {concurrency}")
        batch_id = batch_id or batch_id_for(source, urls)
        template = JobTemplate(options=options or JobOptions(), priority=priority, **job_settings(settings))
        request = BatchRequest(source=canonical_url(source) if source else None, urls=urls or [], job=template,
                               concurrency=concurrency, window=window)
        existing = await self.exists(batch_id)
        try:
            await self.client.start_workflow(
                BatchJob.run, request, id=batch_id, task_queue=settings.task_queue,
                # The same list while running or after success → the existing batch; after a failure → a new run.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                priority=Priority(priority_key=priority),
                static_summary=(f"batch: {request.source}" if source else f"batch of {len(request.urls)} URLs")[:200])
        except WorkflowAlreadyStartedError:
            existing = True
        return Submitted(job_id=batch_id, existing=existing)

    async def is_batch(self, workflow_id: str) -> bool:
        try:
            return (await self.describe(workflow_id)).workflow_type == BATCH_TYPE
        except JobNotFound:
            return False

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """The batch's `status` query (the latest run's); what the server knows when no worker answers."""
        desc = await self.describe(batch_id, "batch")
        if desc.workflow_type != BATCH_TYPE:
            raise InvalidRequest(f"{batch_id} is a {desc.workflow_type}, not a batch")
        try:
            with self.translating(batch_id, "batch"):
                return await self.handle(batch_id).query(
                    BatchJob.status, rpc_timeout=timedelta(seconds=self.query_timeout_s))
        except RPCError as err:
            if err.status not in NO_WORKER:
                raise
            return BatchStatus(batch_id=batch_id, state=SERVER_STATES.get(desc.status, JobState.queued),
                               started_at=desc.start_time, finished_at=desc.close_time)

    async def batch_result(self, batch_id: str) -> BatchResult:
        """Waits for the batch's end, across its continue-as-new runs."""
        try:
            with self.translating(batch_id, "batch"):
                return await self.handle(batch_id, result_type=BatchResult).result()
        except WorkflowFailureError as err:
            raise ended_badly(batch_id, err) from None
