"""One finished job behind a running `clipper web`, for the browser tests of its pages: the committed phone call
(tests/data/real/call.mp3) through the real pipeline once (a worker process, real ffmpeg and Whisper tiny.en),
which leaves a transcript, quotes, chapters, clips and audiograms; the worker stays up while the pages are
read, for what they send (naming speakers runs on it)."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clipper.config import Settings
from clipper.job.request import JobResult
from clipper_app.client import ClipperClient, connect
from tests.helpers import FAST_POLICIES, run
from tests.helpers.httpserver import serve
from tests.helpers.processes import worker_running
from tests.helpers.real import REAL
from tests.helpers.webserver import web_server

CALL = REAL / "call.mp3"


@dataclass
class PageJob:
    base: str  # the web server's base URL
    job: str  # the finished job's id
    result: JobResult
    settings: Settings

    @property
    def page(self) -> str:
        return f"{self.base}/jobs/{self.job}"


def chromium() -> str:
    """Debian's Chromium (never `playwright install`); without it the test fails saying how to install it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the browser tests need Debian's chromium: `apt-get install -y chromium` as root "
                    "(`make test` does it), then run again", pytrace=False)
    return path


@contextlib.contextmanager
def finished_job(temporal_address: str, folder: Path) -> Iterator[PageJob]:
    """The call run to the end by a worker process on its own task queue and store under `folder`, and a web
    server on the same store; both stopped on exit."""
    settings = Settings(temporal_address=temporal_address, task_queue=f"pages-{uuid.uuid4().hex[:8]}",
                        storage_dir=folder / "storage", allow_private_addresses=True, policies=FAST_POLICIES,
                        graceful_shutdown_s=2)
    with serve({"/call.mp3": (CALL.read_bytes(), "audio/mpeg")}) as media, \
            worker_running(settings, folder / "worker.log"):

        async def submit() -> tuple[str, JobResult]:
            clipper = ClipperClient(await connect(settings), settings)
            job = (await clipper.submit(media.url("/call.mp3"))).job_id
            return job, await clipper.result(job)

        job, result = run(submit())
        with web_server(settings) as base:
            yield PageJob(base=base, job=job, result=result, settings=settings)
