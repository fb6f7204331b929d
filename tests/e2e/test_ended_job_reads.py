"""An ended job is read from what it left, not from a query a worker must replay (clipper_app/client/reads.py):
a finished job's status and artifacts come from its result, with no worker running at all, through the client
and the REST API; a failed job's status, queried once while a worker ran, is still answered once none does.
Real dev server; the jobs run on stand-in activities (tests/helpers/standins.py)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from clipper.job.status import JobState, StageState
from clipper_app.client import ClipperClient, JobFailed, JobNotFinished
from tests.helpers import run
from tests.helpers.jobs import until
from tests.helpers.standins import StandIns, fail, harness, outcome, standin_settings, wait_for_retry
from tests.helpers.webserver import web_server
from workflows import search_attributes as sa
from workflows.media_job import MediaJob


async def no_worker_answers(clipper: ClipperClient, job: str) -> None:
    """The job's `status` query times out: no worker polls its task queue (the old way of reading it hangs)."""
    with pytest.raises(RPCError) as err:
        await clipper.handle(job).query(MediaJob.status, rpc_timeout=timedelta(seconds=1))
    assert err.value.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED), err.value  # a timeout


@pytest.mark.slow
def test_a_finished_job_is_read_with_no_worker_running(settings):
    settings = standin_settings(settings)

    async def body():
        async with harness(settings, StandIns()) as (clipper, job):
            result = await outcome(clipper, job)
        # The worker has stopped. A new client (nothing kept from before) reads the job from its result.
        reader = ClipperClient(clipper.client, settings)
        await no_worker_answers(reader, job)
        status = await reader.status(job)
        listed = await reader.listed_artifacts(job)
        artifacts = await reader.artifacts(job)
        with web_server(settings) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                served = await http.get(f"/api/jobs/{job}")
                listing = await http.get(f"/api/jobs/{job}/artifacts")
        return result, status, listed, artifacts, served, listing

    result, status, listed, artifacts, served, listing = run(body())
    assert status == result.status  # the status it ended with, every stage's state, times and artifacts
    assert status.state == JobState.done and status.stages
    assert all(s.state == StageState.done for s in status.stages), status.stages
    assert listed == result.artifacts and artifacts == result
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["state"] == "done" and [s["state"] for s in body["stages"]] == ["done"] * len(status.stages)
    assert body["artifacts"].keys() == result.artifacts.keys()
    assert listing.status_code == 200, listing.text  # the result's names (stand-ins write no files to the store)
    assert sorted(a["name"] for a in listing.json()) == sorted(result.artifacts)


@pytest.mark.slow
def test_a_failed_job_queried_once_is_still_read_when_no_worker_runs(settings):
    settings = standin_settings(settings)
    fakes = StandIns(failures={"quotes": [fail("SomeError")]})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await wait_for_retry(clipper, fakes, job)
            await clipper.abandon(job)
            with pytest.raises(JobFailed):
                await outcome(clipper, job)
            while_running = await clipper.status(job)  # closed: queried once, then kept for good
        await no_worker_answers(clipper, job)
        after = await clipper.status(job)
        with pytest.raises(JobNotFinished, match="failed"):
            await clipper.listed_artifacts(job)
        return while_running, after

    while_running, after = run(body())
    assert after == while_running
    assert after.state == JobState.failed and after.error is not None and after.error.type == "SomeError"
    assert after.stage("quotes").state == StageState.failed


@pytest.mark.slow
def test_a_running_job_no_worker_answers_for_shows_where_it_was(settings):
    """Its query cannot be answered: the status says what the server knows — the job's last state, stage,
    progress and priority from its search attributes — not a job back at 0 %."""
    settings = standin_settings(settings)
    fakes = StandIns(held={"quotes"})

    async def body():
        async with harness(settings, fakes, priority=2) as (clipper, job):
            await until(lambda: fakes.of("quotes"), what="the quotes stage to start")

            async def published():
                attrs = (await clipper.describe(job)).typed_search_attributes
                return attrs.get(sa.CLIPPER_STAGE) == "quotes" and attrs
            attrs = await until(published, what="the quotes stage in the search attributes")
            live = await clipper.status(job)
        reader = ClipperClient(clipper.client, settings)
        reader.query_timeout_s = 1.0
        await no_worker_answers(reader, job)
        return live, attrs, await reader.status(job)

    live, attrs, seen = run(body())
    assert live.current_stage == "quotes" and live.progress > 0
    assert seen.state == JobState.running and seen.current_stage == "quotes" and seen.priority == 2
    assert seen.progress == attrs.get(sa.CLIPPER_PROGRESS) / 100 > 0
