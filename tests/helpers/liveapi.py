"""The REST API running for real, for tests that use it from outside as any client would (tests/e2e/test_openapi.py).

`clipper web` on a free loopback port, a worker process on the same task queue (noop speech engine, offline text,
no diarizer: a job takes seconds), and jobs in known states for requests to point at: one done (real files in the
store), one waiting for a manual retry (its media server answers 503), and a batch (its one item waits the same
way). Media
URLs on loopback are allowed for the media server only (CLIPPER_ALLOWED_HOSTS), so a generated URL that names a
local address is refused, never fetched. On exit the workflows left open on the task queue are terminated: the
shared dev server carries no running job into other tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.service import RPCError

from clipper.config import Settings
from clipper_app.client import ClipperClient, connect
from tests.helpers import FAST_POLICIES, ROOT, SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until
from tests.helpers.webserver import web_server

FAST_WORKER = {"CLIPPER_ASR_ENGINE": "noop", "CLIPPER_TEXT_ENGINE": "offline", "CLIPPER_SPEAKERS_ENGINE": "off"}


@dataclass(frozen=True)
class LiveApi:
    base: str  # http://127.0.0.1:<port>
    settings: Settings
    done: str  # a job that finished
    waiting: str  # a job waiting for a retry
    batch: str
    kept: str  # another job waiting for a retry, for requests that must not end it (nothing else points at it)


def api_settings(temporal_address: str, root: Path) -> Settings:
    """The app's settings. The jobs it submits carry their policies and notifications: a download that fails
    waits for a retry at once, and nobody is notified, so the many jobs a test submits cost the worker little."""
    policies = {**FAST_POLICIES, "download": FAST_POLICIES["download"].model_copy(update={"max_attempts": 1})}
    return Settings(temporal_address=temporal_address, task_queue=f"api-{uuid.uuid4().hex[:8]}",
                    storage_dir=root / "storage", allowed_hosts=["127.0.0.1"], policies=policies, notify_on="",
                    graceful_shutdown_s=2)


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen]:
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOWED_HOSTS=json.dumps(settings.allowed_hosts),
               CLIPPER_LOG_FORMAT="json", HF_HUB_OFFLINE="1", **FAST_WORKER)
    env.pop("CLIPPER_ALLOW_PRIVATE_ADDRESSES", None)
    with open(log, "ab") as out:
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(30)


@contextlib.contextmanager
def live_api(temporal_address: str, root: Path) -> Iterator[LiveApi]:
    settings = api_settings(temporal_address, root)
    with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as media, \
            worker_process(settings, root / "worker.log"), web_server(settings) as base:
        media.set_status("/busy.mp3", 503)  # retried until the stage gives up: the job then waits
        try:
            yield LiveApi(base, settings, *run(_jobs(settings, media)))
        finally:
            run(terminate_open(settings))


async def _jobs(settings: Settings, media) -> tuple[str, str, str, str]:
    clipper = ClipperClient(await connect(settings), settings)
    done = (await clipper.submit(media.url("/episode.mp3"))).job_id
    waiting, kept = [(await clipper.submit(media.url(f"/busy.mp3?{n}"))).job_id for n in ("a", "b")]
    batch = (await clipper.submit_batch(urls=[media.url("/busy.mp3?item")])).job_id
    await asyncio.wait_for(clipper.result(done), 120)
    for job in (waiting, kept):
        async def stuck(job: str = job) -> bool:
            return (await clipper.status(job)).waiting_since is not None
        await until(stuck, what=f"{job} to wait for a retry", timeout=60)
    return done, waiting, batch, kept


async def terminate_open(settings: Settings) -> int:
    """Terminate every workflow still open on the settings' task queue; how many were."""
    client = await connect(settings)
    query = f"TaskQueue = '{settings.task_queue}' AND ExecutionStatus = 'Running'"
    ended = 0
    for _ in range(5):  # visibility lags a little behind the workflows started last
        found = [wf async for wf in client.list_workflows(query)]
        if not found:
            break
        for wf in found:
            with contextlib.suppress(RPCError):  # it ended meanwhile
                await client.get_workflow_handle(wf.id, run_id=wf.run_id).terminate("the test is over")
                ended += 1
        await asyncio.sleep(0.5)
    return ended
