"""The client's kept reads against a real server: a view kept from while a job ran never hides its end."""

from __future__ import annotations

import pytest

from clipper_app.client import ClipperClient, connect
from clipper_app.client.reads import JobView
from tests.helpers import run
from tests.helpers.pagejob import finished_job

pytestmark = pytest.mark.slow


def test_outputs_of_a_job_that_closed_since_its_view_was_kept(own_temporal_server, tmp_path) -> None:
    """The web app keeps a job's view for a second; a job seen `done` while it still notified, then closed, is
    asked for its outputs within that second (naming its speakers does): the kept running view is read again,
    not answered `JobNotFinished` (it was, once, in a full run)."""
    with finished_job(own_temporal_server.address, tmp_path) as job:

        async def body():
            client = ClipperClient(await connect(job.settings), job.settings, read_max_age_s=60)
            running = (await client.status(job.job)).model_copy(update={"state": "running"})

            async def kept() -> JobView:
                return JobView(status=running)

            client.reads.views.forget(job.job)
            await client.reads.views.get(job.job, kept)  # what a read while it ran left behind
            assert not (await client.job_view(job.job)).closed
            return await client.artifacts(job.job)

        result = run(body())
        assert result.artifacts == job.result.artifacts
