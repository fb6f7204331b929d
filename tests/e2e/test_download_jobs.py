"""Downloads that never end by themselves, as whole jobs on the real dev server with an in-process worker: a
cancel during a stalled transfer, a stall retried and resumed, a redirect chain failing in one attempt, an X
Space whose recording appears after a 404 (the local server stands in for X through `space_hosts`; the SSRF
guard stays as every test has it).

The unit tests (tests/unit/test_download_limits.py) cover the same rules on `download()` itself.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from clipper.job.status import JobState, StageState
from clipper.store.local import ArtifactStore
from clipper_app.client import JobCancelled, JobFailed
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import history_json, steering, until
from tests.helpers.reports import add_report

MEDIA = "/episode.mp3"
GIVE_UP_S = 60  # how long the misbehaving server keeps it up before hanging up itself


def transfers(server, path: str = MEDIA):
    """yt-dlp's requests for the media after the extractor's first look at its headers."""
    return server.seen(path)[1:]


def test_cancel_during_a_stalled_download_ends_the_activity_and_hangs_up(settings, request):
    store = ArtifactStore(settings.storage_dir)

    async def body(server):
        async with steering(settings) as clipper:
            job = (await clipper.submit(server.url(MEDIA))).job_id
            transfer = (await until(lambda: transfers(server), what="the transfer to start"))[0]
            await asyncio.sleep(0.5)  # blocked on a body that never comes: no progress hook runs
            cancelled_at = time.monotonic()
            await clipper.cancel(job)
            with pytest.raises(JobCancelled):
                await clipper.result(job)
            ended_at = time.monotonic()
            return job, transfer, cancelled_at, ended_at, await clipper.status(job)

    with serve({MEDIA: (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        server.trickle(MEDIA, head=0, every_s=None, for_s=GIVE_UP_S)
        job, transfer, cancelled_at, ended_at, status = run(body(server))
        assert transfer.hung_up.wait(10), "the download's connection stayed open after the cancel"
    assert status.state == JobState.cancelled
    scratch = store.job_dir(job) / ".tmp"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())
    add_report(request.config, "cancel during a stalled download (tests/e2e/test_download_jobs.py)", [
        f"cancel -> connection closed: {transfer.hung_up_at - cancelled_at:.2f} s; "
        f"cancel -> job cancelled: {ended_at - cancelled_at:.2f} s "
        f"(download heartbeat timeout {settings.stage_policies()['download'].heartbeat_timeout_s:g} s)"])


def test_a_stalled_download_is_retried_and_resumes(settings):
    settings = settings.model_copy(update={"download_stall_s": 2.0})

    async def body(server):
        async with steering(settings) as clipper:
            job = (await clipper.submit(server.url(MEDIA))).job_id
            first = (await until(lambda: transfers(server), what="the transfer to start"))[0]
            await asyncio.to_thread(first.hung_up.wait, 30)  # the worker gave up on it: a stall
            server.trickles.clear()  # the next attempt meets a healthy server
            return await clipper.result(job), await history_json(settings, job)

    with serve({MEDIA: (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        server.trickle(MEDIA, head=60_000, every_s=None, for_s=GIVE_UP_S)
        result, history = run(body(server))
        assert len(server.ranges(MEDIA)) == 1  # the second attempt resumed the .part file
    assert result.status.state == JobState.done
    assert result.status.stage("download").attempt == 2
    assert "DownloadStalled" in history  # the first attempt's failure, as the retry's start records it


async def download_failed(clipper, job: str):
    status = await clipper.status(job)
    return status if status.stage("download").state == StageState.failed else None


def test_a_redirect_chain_fails_in_one_attempt(settings):
    async def body(server):
        async with steering(settings) as clipper:
            job = (await clipper.submit(server.url("/r0"))).job_id
            status = await until(lambda: download_failed(clipper, job), what="the download to fail")
            with pytest.raises(JobFailed) as failed:  # at once: an input error, no wait for a manual retry
                await clipper.result(job)
            return status, failed.value

    with serve({MEDIA: (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        for hop in range(30):
            server.redirect(f"/r{hop}", server.url(f"/r{hop + 1}"))
        server.redirect("/r30", server.url(MEDIA))
        status, failed = run(body(server))
    download = status.stage("download")
    assert download.state == StageState.failed and download.error.type == "TooManyRedirects"
    assert download.error.attempts == 1, "retried although no retry can help"
    assert status.waiting_since is None
    assert failed.error_type == "TooManyRedirects"


def test_a_space_recording_that_answers_404_at_first_is_waited_for(settings):
    """Stand-in for X: 127.0.0.1 is a Space host for this worker, and the recording 404s at the first try."""
    settings = settings.model_copy(update={"space_hosts": ["127.0.0.1"], "space_not_ready_s": 120.0})
    space = "/i/spaces/1OdKrjqXyzaKX"

    async def body(server):
        async with steering(settings) as clipper:
            return await clipper.result((await clipper.submit(server.url(space))).job_id)

    with serve({space: (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        server.set_status(space, 404, times=1)
        result = run(body(server))
        assert [r.method for r in server.seen(space)][:1] == ["GET"] and len(server.seen(space)) == 3
    assert result.status.state == JobState.done
    assert result.status.stage("download").attempt == 1  # waited inside the attempt: no retry spent
