"""Running and watching jobs in tests: a job with an in-process worker, polling for a state or a
condition, and what its history and manifest say."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator

from clipper.job.request import JobRequest, JobResult
from clipper.job.status import JobState, JobStatus, StageState
from clipper.store.files import sha256_file
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, JobFailed, connect
from clipper_app.workers.pools import build_worker
from workflows.media_job import MediaJob


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z' ]", " ", text.lower())).strip()


async def wait_for_state(clipper: ClipperClient, job_id: str, state: JobState, timeout: float = 60) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await clipper.status(job_id)
        if status.state == state:
            return status
        assert asyncio.get_running_loop().time() < deadline, f"job never reached {state}: {status.state}"
        await asyncio.sleep(0.2)


async def run_job(
    settings, url: str, interceptors=(), raw_start: bool = False, during=None
) -> tuple[ClipperClient, str, JobResult | Exception]:
    """Submit `url` with an in-process worker and wait for the end; `during(clipper, job_id)` steers it."""
    client = await connect(settings)
    clipper = ClipperClient(client, settings)
    async with build_worker(client, settings, interceptors=interceptors):
        if raw_start:
            job_id = f"raw-{uuid.uuid4().hex[:8]}"
            await client.start_workflow(MediaJob.run, JobRequest(url=url, policies=settings.stage_policies()),
                                        id=job_id, task_queue=settings.task_queue)
        else:
            job_id = (await clipper.submit(url)).job_id
        if during is not None:
            await during(clipper, job_id)
        try:
            result: JobResult | Exception = await clipper.result(job_id)
        except JobFailed as err:
            result = err
        return clipper, job_id, result


def assert_manifest_matches(store: ArtifactStore, job_id: str) -> None:
    manifest = store.read_manifest(job_id)
    assert manifest.artifacts, "manifest lists no artifacts"
    for name, ref in manifest.artifacts.items():
        assert sha256_file(store.path(job_id, name)) == ref.sha256, name


def decoded(value):
    """A history (as JSON) with every payload's data decoded: in `to_json_dict` it is base64, where a search for
    a planted secret or a transcript's words could never find it."""
    if isinstance(value, dict):
        if "data" in value and "metadata" in value:
            return {**value, "data": base64.b64decode(value["data"]).decode(errors="replace")}
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


async def history_json(settings, job_id: str) -> str:
    """The job's event history as JSON text, payloads decoded."""
    client = await connect(settings)
    history = await client.get_workflow_handle(job_id).fetch_history()
    return json.dumps(decoded(history.to_json_dict()))


async def scheduled_activities(settings, job_id: str) -> list[str]:
    client = await connect(settings)
    history = await client.get_workflow_handle(job_id).fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]


async def until(predicate, timeout: float = 60, what: str = "condition", interval: float = 0.05):
    """Poll `predicate` (plain or async) until it returns something truthy; return that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def steering(settings, **worker_options) -> AsyncIterator[ClipperClient]:
    """A client to steer jobs with, and an in-process worker running them."""
    client = await connect(settings)
    async with build_worker(client, settings, **worker_options):
        yield ClipperClient(client, settings)


async def stage_pending(clipper, job, stage):
    status = await clipper.status(job)
    return status if status.stage(stage).state == StageState.pending else None
