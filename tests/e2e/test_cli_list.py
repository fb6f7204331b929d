"""`clipper list` on an 80-column terminal, as a user runs it (COLUMNS=80), against the real dev server: jobs with
long URLs and long titles (the `ClipperTitle` search attribute), each line at most 80 characters, every id whole,
the title shortened with … in what is left; and a job no worker has picked up yet (no search attributes) is
listed as queued."""

from __future__ import annotations

import json
import uuid

import pytest
from temporalio import activity
from temporalio.worker import Worker

from clipper.job.messages import DownloadInput, DownloadOutput
from clipper.job.request import MediaInfo
from clipper_app.client import ClipperClient, connect
from clipper_app.workers.retry_budget import RetryBudgetInterceptor
from tests.helpers import run
from tests.helpers.jobs import until
from tests.helpers.processes import cli
from tests.helpers.standins import StandIns, ref, standin_settings
from workflows.media_job import MediaJob

LONG_HOST = "media.a-rather-long-podcast-network-host-name.example.com"


class Titled(StandIns):
    """Stand-ins whose download finds a long title, as a long episode name would be."""

    @activity.defn(name="download")
    async def download(self, request: DownloadInput) -> DownloadOutput:
        await self.enter(request)
        title = f"The {request.url.rsplit('/', 1)[-1]} episode: an extraordinarily long title about everything"
        info = MediaInfo(title=title, duration_s=self.duration_s, source_url=request.url)
        return DownloadOutput(source=ref("source.mp3"), audio=ref("audio.wav"), media=ref("media.json"), info=info)


@pytest.mark.slow
def test_list_fits_80_columns_with_whole_ids(settings):
    settings = standin_settings(settings)
    fakes = Titled()

    async def body():
        temporal = await connect(settings)
        clipper = ClipperClient(temporal, settings)
        urls = [f"https://{LONG_HOST}/podcasts/2026/12/{'very-' * 12}long/path/{uuid.uuid4().hex}.mp3" for _ in range(2)]
        async with Worker(temporal, task_queue=settings.task_queue, workflows=[MediaJob],
                          activities=fakes.activities(), interceptors=[RetryBudgetInterceptor()]):
            titled = [(await clipper.submit(url)).job_id for url in urls]
            for job in titled:
                await clipper.result(job)
        # No worker any more: this one stays queued, with no title and no search attribute set.
        waiting = (await clipper.submit(f"https://{LONG_HOST}/{uuid.uuid4().hex}/{'x' * 120}.mp3")).job_id

        async def listed():
            rows = {row["job_id"]: row for row in json.loads((await cli(settings, "list", "--json")).out)}
            if all(rows.get(job, {}).get("title") for job in titled) and waiting in rows:
                return rows
            return None
        rows = await until(listed, timeout=30, what="the titles in the list")
        assert rows[titled[0]]["title"].startswith("The ") and rows[waiting]["title"] is None

        shown = await cli(settings, "list", columns=80)
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        assert all(len(line) <= 80 for line in lines), "\n".join(lines)
        for job in titled:
            line = next(line for line in lines if line.startswith(job + " "))  # the id whole, never shortened
            assert "The " in line and line.rstrip().endswith("…") and "ago" in line, line
        line = next(line for line in lines if line.startswith(waiting + " "))
        assert "queued" in line, line
        await clipper.cancel(waiting)

    run(body())
