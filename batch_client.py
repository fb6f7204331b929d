"""Batches from a client: submit a playlist URL or a file of URLs as one `BatchJob`, read its status and result.

`ClipperClient.submit_batch` / `.batch_status` / `.batch_result` call these. pause, resume, cancel and
set_priority need nothing new: a batch takes the same signals and update as a job, by its id.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from clipper.batch_models import BatchRequest, BatchResult, BatchStatus, JobTemplate
from clipper.errors import ClipperError, InvalidRequest
from clipper.media.playlist import batch_id_for, parse_url_list
from clipper.media.urls import NETWORK_SCHEMES, canonical_url, check_url_syntax
from clipper.models import JobOptions, JobState
from workflows.batch_job import BatchJob

if TYPE_CHECKING:
    from clipper_client import ClipperClient, Submitted

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
    try:
        scheme, _, _ = check_url_syntax(arg)
    except ClipperError:
        scheme = ""
    if scheme in NETWORK_SCHEMES:
        return arg.strip(), []
    if Path(arg).expanduser().is_file():
        return None, read_url_file(arg)
    raise InvalidRequest(f"{arg!r} is neither an http(s) playlist URL nor a file of URLs")


async def submit_batch(clipper: ClipperClient, source: str | None = None, urls: list[str] | None = None,
                       options: JobOptions | None = None, priority: int = 3, concurrency: int | None = None,
                       window: int = 100, batch_id: str | None = None) -> Submitted:
    from clipper_client import Submitted, check_engines, job_settings

    settings = clipper.settings
    if bool(source) == bool(urls):
        raise InvalidRequest("give a playlist URL or a list of URLs (exactly one of them)")
    if source:
        scheme, _, _ = check_url_syntax(source)
        if scheme not in NETWORK_SCHEMES:
            raise InvalidRequest(f"a playlist must be an http(s) URL, got {source!r}; a list of URLs goes in a file")
    check_engines(options or JobOptions())
    if not 1 <= priority <= 5:
        raise InvalidRequest(f"priority must be 1 (highest) to 5 (lowest), got {priority}")
    concurrency = settings.batch_concurrency if concurrency is None else concurrency
    if not 1 <= concurrency <= 100:
        raise InvalidRequest(f"concurrency must be 1 to 100, got {concurrency}")
    batch_id = batch_id or batch_id_for(source, urls)
    template = JobTemplate(options=options or JobOptions(), priority=priority, **job_settings(settings))
    request = BatchRequest(source=canonical_url(source) if source else None, urls=urls or [], job=template,
                           concurrency=concurrency, window=window)
    existing = await _exists(clipper, batch_id)
    try:
        await clipper.client.start_workflow(
            BatchJob.run, request, id=batch_id, task_queue=settings.task_queue,
            # The same list while running or after success → the existing batch; after a failure → a new run.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            priority=Priority(priority_key=priority),
            static_summary=(f"batch: {request.source}" if source else f"batch of {len(request.urls)} URLs")[:200])
    except WorkflowAlreadyStartedError:
        existing = True
    return Submitted(job_id=batch_id, existing=existing)


async def _exists(clipper: ClipperClient, workflow_id: str) -> bool:
    try:
        desc = await clipper.handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return desc.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED,
                           WorkflowExecutionStatus.CONTINUED_AS_NEW)


async def is_batch(clipper: ClipperClient, workflow_id: str) -> bool:
    try:
        return (await clipper.handle(workflow_id).describe()).workflow_type == BATCH_TYPE
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def batch_status(clipper: ClipperClient, batch_id: str) -> BatchStatus:
    """The batch's `status` query (the latest run's); what the server knows when no worker answers."""
    from clipper_client import SERVER_STATES, JobNotFound

    handle = clipper.handle(batch_id)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise JobNotFound(f"no batch {batch_id!r} on {clipper.settings.temporal_address}") from None
        raise
    if desc.workflow_type != BATCH_TYPE:
        raise InvalidRequest(f"{batch_id} is a {desc.workflow_type}, not a batch")
    try:
        return await handle.query(BatchJob.status, rpc_timeout=timedelta(seconds=clipper.query_timeout_s))
    except RPCError as err:
        if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE):
            raise
        return BatchStatus(batch_id=batch_id, state=SERVER_STATES.get(desc.status, JobState.queued),
                           started_at=desc.start_time, finished_at=desc.close_time)


async def batch_result(clipper: ClipperClient, batch_id: str) -> BatchResult:
    """Waits for the batch's end, across its continue-as-new runs."""
    return await clipper.client.get_workflow_handle(batch_id, result_type=BatchResult).result()
