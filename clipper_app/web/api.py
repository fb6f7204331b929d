"""The REST API: jobs and batches as JSON, every call through the typed `ClipperClient` (never raw Temporal).

Inputs are the same pydantic models and checks as the CLI (`JobOptions`, priorities, the URL and SSRF rules);
errors are problem JSON (clipper_app/web/problems.py). Writes (submit, controls) need the bearer token when one is set,
reads only with CLIPPER_WEB_PROTECT_READS (clipper_app/web/security.py). Controls are signals the job acts on at once or at
its next boundary, so they answer 202 Accepted; `priority` and `speakers` are updates and answer with the result.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from clipper.config import Settings
from clipper.errors import InvalidRequest, LocalPathNotAllowed
from clipper.job.batch import BatchStatus
from clipper.job.request import JobOptions
from clipper.job.stages import STAGES
from clipper.job.status import JobState, JobStatus
from clipper.media.urls import check_url_syntax
from clipper_app.client import ArtifactRef, ArtifactVersion, ClipperClient, JobClosed, JobNotFound, JobSummary
from clipper_app.web import artifacts, zips
from clipper_app.web.follows import follows
from clipper_app.web.inputs import (
    HOST_PATTERN, NAMES_SCHEMA, Pause, Retry, SetPriority, SubmitBatch, SubmitJob, check_speaker_names,
)
from clipper_app.web.problems import NotApplicable, Problem
from clipper_app.web.search import router as search_router
from clipper_app.web.security import require_reader, require_writer

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for code, text in ((401, "missing or wrong bearer token"), (404, "unknown job, batch or artifact"),
                       (409, "the control does not apply to the job's state"), (413, "body too large"),
                       (422, "invalid input"))}
JOB_ID = Path(description="the job id, e.g. clip-3f2a…", max_length=200)
BATCH_ID = Path(description="the batch id", max_length=200)  # one per name: FastAPI binds a Path to it

jobs = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERRORS)
batches = APIRouter(prefix="/api/batches", tags=["batches"], responses=ERRORS)
reads, writes = [Depends(require_reader)], [Depends(require_writer)]


class Accepted(BaseModel):
    job_id: str
    existing: bool = Field(description="true when the same media was already submitted: that job is returned")
    webhook_secret: str | None = Field(None, description=(
        "the job's own secret its webhook deliveries are signed with (Standard Webhooks, `whsec_…`); present only "
        "when the job has a webhook and the server configures no CLIPPER_WEBHOOK_SECRET"))


class ControlAccepted(BaseModel):
    job_id: str
    control: str


class PriorityChanged(BaseModel):
    job_id: str
    priority: int


class BatchAccepted(BaseModel):
    batch_id: str
    existing: bool


async def client(request: Request) -> ClipperClient:  # async: a plain function would run in a thread per request
    return request.app.state.clipper


def check_media_url(url: str, settings: Settings) -> None:
    """A local path is a file on the API server's machine: refused unless the operator allows local files."""
    scheme, _, _ = check_url_syntax(url)
    if scheme in ("", "file") and not settings.allow_local_files:
        raise LocalPathNotAllowed("submit an http(s) URL; local files need CLIPPER_ALLOW_LOCAL_FILES=true")


# --- jobs ---


@jobs.post("", status_code=202, dependencies=writes, response_model=Accepted, response_model_exclude_none=True)
async def submit(body: SubmitJob, clipper: ClipperClient = Depends(client)) -> Accepted:
    check_media_url(body.url, clipper.settings)
    submitted = await clipper.submit(body.url, body.options.plain(), body.priority, callback_url=body.callback_url)
    return Accepted(job_id=submitted.job_id, existing=submitted.existing, webhook_secret=submitted.webhook_secret)


STATE = Query(None, description="only jobs in this state")
LIMIT = Query(50, ge=1, le=1000, description="at most this many, newest first")


@jobs.get("", dependencies=reads, response_model=list[JobSummary])
async def list_jobs(state: JobState | None = STATE,
                    stage: Literal[STAGES] | None = Query(None, description="only jobs at this stage"),
                    source: str | None = Query(None, description="only media from this host, e.g. example.com",
                                               max_length=253, pattern=HOST_PATTERN),
                    limit: int = LIMIT, clipper: ClipperClient = Depends(client)) -> list[JobSummary]:
    return await clipper.list_jobs(state=state and state.value, stage=stage, source=source, limit=limit)


@jobs.get("/{job_id}", dependencies=reads, response_model=JobStatus)
async def job_status(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> JobStatus:
    return (await clipper.job_view(job_id)).status  # shared, only serialized: no copy


@jobs.delete("/{job_id}", status_code=204, dependencies=writes, response_class=Response,
             responses={202: {"model": ControlAccepted, "description": "deleted; the server is still removing its "
                                                                       "history (listed a little longer)"}})
async def delete_job(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> Response:
    """Delete an ended job and everything it left: its files (every artifact, kept versions) and its workflow runs,
    so it is no longer listed (204). 409 `JobStillRunning` while it has not ended (cancel it first), 404 for an
    unknown or already deleted job."""
    deleted = await clipper.delete_job(job_id)
    if deleted.pending:
        return JSONResponse(ControlAccepted(job_id=job_id, control="delete").model_dump(), status_code=202)
    return Response(status_code=204)


@jobs.post("/{job_id}/pause", status_code=202, dependencies=writes, response_model=ControlAccepted)
async def pause(job_id: str = JOB_ID, body: Pause | None = Body(None),
                clipper: ClipperClient = Depends(client)) -> ControlAccepted:
    await clipper.pause(job_id, now=bool(body and body.now))
    return ControlAccepted(job_id=job_id, control="pause_now" if body and body.now else "pause")


@jobs.post("/{job_id}/resume", status_code=202, dependencies=writes, response_model=ControlAccepted)
async def resume(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> ControlAccepted:
    await clipper.resume(job_id)
    return ControlAccepted(job_id=job_id, control="resume")


@jobs.post("/{job_id}/cancel", status_code=202, dependencies=writes, response_model=ControlAccepted)
async def cancel(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> ControlAccepted:
    await _open(clipper, job_id)
    await clipper.cancel(job_id)
    return ControlAccepted(job_id=job_id, control="cancel")


async def _open(clipper: ClipperClient, workflow_id: str) -> None:
    """The server takes a cancel request for a closed workflow without a word: say it does not apply (409)."""
    desc = await clipper.describe(workflow_id)
    if desc.close_time is not None:
        raise JobClosed(f"{workflow_id} has already ended ({desc.status.name.lower() if desc.status else 'closed'})")


async def _waiting(clipper: ClipperClient, job_id: str) -> None:
    """retry/abandon act only on a job waiting after a failure; otherwise 409 with the CLI's message."""
    try:
        await clipper.ensure_waiting(job_id)
    except InvalidRequest as err:
        raise NotApplicable(err) from None


@jobs.post("/{job_id}/retry", status_code=202, dependencies=writes, response_model=ControlAccepted)
async def retry(job_id: str = JOB_ID, body: Retry | None = Body(None),
                clipper: ClipperClient = Depends(client)) -> ControlAccepted:
    options = body.options.model_dump(exclude_unset=True) if body else {}
    JobOptions().changed(options)  # a bad option is the caller's input (422), whatever the job's state
    await _waiting(clipper, job_id)
    await clipper.retry(job_id, options)
    return ControlAccepted(job_id=job_id, control="retry")


@jobs.post("/{job_id}/abandon", status_code=202, dependencies=writes, response_model=ControlAccepted)
async def abandon(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> ControlAccepted:
    await _waiting(clipper, job_id)
    await clipper.abandon(job_id)
    return ControlAccepted(job_id=job_id, control="abandon")


@jobs.put("/{job_id}/priority", dependencies=writes, response_model=PriorityChanged)
async def set_priority(body: SetPriority, job_id: str = JOB_ID,
                       clipper: ClipperClient = Depends(client)) -> PriorityChanged:
    return PriorityChanged(job_id=job_id, priority=await clipper.set_priority(job_id, body.priority))


@jobs.post("/{job_id}/speakers", dependencies=writes, response_model=dict[str, str])
async def name_speakers(names: dict[str, str] = Body(..., examples=[{"S1": "Diane"}], json_schema_extra=NAMES_SCHEMA),
                        job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> dict[str, str]:
    """Name speakers ({"S1": "Diane"}; "" removes a name); answers with all the job's names. A label the job does
    not have, or a job without speakers, is 409."""
    check_speaker_names(names)
    try:
        return await clipper.name_speakers(job_id, names)
    except InvalidRequest as err:  # the form passed: what refuses it is the job's own speakers
        raise NotApplicable(err) from None


async def _job_manifest(clipper: ClipperClient, job_id: str) -> dict[str, ArtifactRef]:
    """The job's artifacts: the names its result lists (a running job: those its finished stages recorded, so
    the audio can be heard while it is transcribed, and everything once it is done but still notifying), each
    with the store manifest's current ref (naming speakers renders the transcript and report again after the
    job's result was recorded). The client keeps a finished job's result, so seeking in its audio (a Range request
    per seek) does not fetch it each time."""
    return await clipper.current(job_id, await clipper.listed_artifacts(job_id))


@jobs.get("/{job_id}/artifacts", dependencies=reads, response_model=list[ArtifactRef])
async def job_artifacts(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> list[ArtifactRef]:
    """The job's artifacts so far: name, sha256, size, stage of each (409 for a job that failed or was cancelled)."""
    return artifacts.listing(await _job_manifest(clipper, job_id))


FILE = {200: {"content": {"*/*": {}}, "description": "the file, as its own type (audio/mpeg, application/json, …)"},
        206: {"description": "a byte range"}, 304: {"description": "not modified (ETag)"},
        416: {"content": {"text/plain": {}}, "description": "range not satisfiable"}}


@jobs.get("/{job_id}/artifacts/{name:path}", dependencies=reads, response_class=Response, responses=FILE)
async def job_artifact(request: Request, name: str, job_id: str = JOB_ID,
                       clipper: ClipperClient = Depends(client)) -> Response:
    """One artifact by its manifest name (e.g. `clips/clip-01.mp3`), with HTTP Range and ETag = sha256; HEAD
    gives the same headers (size, type, ETag) without the body."""
    ref = artifacts.lookup(job_id, await _job_manifest(clipper, job_id), name)
    return await artifacts.serve(request, clipper, job_id, ref)


@jobs.head("/{job_id}/artifacts/{name:path}", dependencies=reads, response_class=Response)
async def job_artifact_head(request: Request, name: str, job_id: str = JOB_ID,
                            clipper: ClipperClient = Depends(client)) -> Response:
    """The artifact's headers (size, type, ETag) without its body."""
    return await job_artifact(request, name, job_id, clipper)


@jobs.get("/{job_id}/clips.zip", dependencies=reads, response_class=StreamingResponse,
          responses={200: {"content": {"application/zip": {}}}})
async def clips_zip(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> StreamingResponse:
    """Every audio clip of the job in one zip, streamed from the store (only names its manifest lists)."""
    files = await clipper.clip_files(job_id, await _job_manifest(clipper, job_id))  # all verified first
    return StreamingResponse(zips.stream(files), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{job_id}-clips.zip"',
                                      **artifacts.SAFE_HEADERS})


# --- artifact versions (clipper/job/versions.py): earlier outputs of stages run again ---


@jobs.get("/{job_id}/versions", dependencies=reads, response_model=list[ArtifactVersion])
async def job_versions(job_id: str = JOB_ID, clipper: ClipperClient = Depends(client)) -> list[ArtifactVersion]:
    """The job's kept versions, oldest first: number, stage, reason, the options that produced the files, when,
    and the files (`versions/<N>/<name>`, each with its sha256). An unknown job is 404."""
    return await clipper.versions(job_id)


# --- batches: a playlist or a list of URLs, one job per item; the same controls by the batch's id ---


async def _batch(clipper: ClipperClient, batch_id: str) -> None:
    if not await clipper.is_batch(batch_id):
        raise JobNotFound(f"no batch {batch_id!r} on {clipper.settings.temporal_address}")


@batches.post("", status_code=202, dependencies=writes, response_model=BatchAccepted)
async def submit_batch(body: SubmitBatch, clipper: ClipperClient = Depends(client)) -> BatchAccepted:
    for url in body.urls or []:
        check_media_url(url, clipper.settings)
    submitted = await clipper.submit_batch(source=body.source, urls=body.urls, options=body.options.plain(),
                                           priority=body.priority, concurrency=body.concurrency)
    return BatchAccepted(batch_id=submitted.job_id, existing=submitted.existing)


@batches.get("", dependencies=reads, response_model=list[JobSummary])
async def list_batches(state: JobState | None = STATE, limit: int = LIMIT,
                       clipper: ClipperClient = Depends(client)) -> list[JobSummary]:
    """Batches, newest first (`job_id` is the batch id)."""
    return await clipper.list_batches(state=state and state.value, limit=limit)


@batches.get("/{batch_id}", dependencies=reads, response_model=BatchStatus)
async def batch_status(batch_id: str = BATCH_ID, clipper: ClipperClient = Depends(client)) -> BatchStatus:
    await _batch(clipper, batch_id)
    return await clipper.batch_status(batch_id)


def _batch_control(control: str, text: str) -> None:
    async def route(batch_id: str = BATCH_ID, clipper: ClipperClient = Depends(client)) -> ControlAccepted:
        await _batch(clipper, batch_id)
        if control == "cancel":
            await _open(clipper, batch_id)
        await getattr(clipper, control)(batch_id)
        return ControlAccepted(job_id=batch_id, control=control)

    batches.add_api_route(f"/{{batch_id}}/{control}", route, methods=["POST"], status_code=202, dependencies=writes,
                          response_model=ControlAccepted, summary=f"{control.capitalize()} a batch",
                          description=text, name=f"batch_{control}")


for _control, _text in (("pause", "Start no more items until resumed."), ("resume", "Go on starting items."),
                        ("cancel", "Cancel the batch and its running items.")):
    _batch_control(_control, _text)


@batches.put("/{batch_id}/priority", dependencies=writes, response_model=PriorityChanged)
async def batch_priority(body: SetPriority, batch_id: str = BATCH_ID,
                         clipper: ClipperClient = Depends(client)) -> PriorityChanged:
    await _batch(clipper, batch_id)
    return PriorityChanged(job_id=batch_id, priority=await clipper.set_priority(batch_id, body.priority))


@batches.get("/{batch_id}/artifacts", dependencies=reads, response_model=list[ArtifactRef])
async def batch_artifacts(batch_id: str = BATCH_ID, clipper: ClipperClient = Depends(client)) -> list[ArtifactRef]:
    """The batch folder's manifest (items.json); each item's outputs are its job's (`/api/jobs/{id}/artifacts`)."""
    return artifacts.listing(await clipper.batch_artifacts(batch_id))


@batches.get("/{batch_id}/artifacts/{name:path}", dependencies=reads, response_class=Response, responses=FILE)
async def batch_artifact(request: Request, name: str, batch_id: str = BATCH_ID,
                         clipper: ClipperClient = Depends(client)) -> Response:
    ref = artifacts.lookup(batch_id, await clipper.batch_artifacts(batch_id), name)
    return await artifacts.serve(request, clipper, batch_id, ref)


@batches.head("/{batch_id}/artifacts/{name:path}", dependencies=reads, response_class=Response)
async def batch_artifact_head(request: Request, name: str, batch_id: str = BATCH_ID,
                              clipper: ClipperClient = Depends(client)) -> Response:
    """The artifact's headers without its body."""
    return await batch_artifact(request, name, batch_id, clipper)


ROUTERS = (jobs, batches, follows, search_router)

