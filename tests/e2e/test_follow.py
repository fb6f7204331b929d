"""Follows on a real dev server: a local HTTP server serves an RSS feed the test edits, an in-process worker runs
the follow's checks. The jobs the checks start stay queued at their download (only the workflow pool runs here),
so a test counts them without running a pipeline, and terminates them at its end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request

import httpx
import pytest
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput

from activities.metrics import prometheus_runtime
from clipper.errors import FollowNotFound
from clipper.follow.model import follow_id_for
from clipper.job.stages import StagePolicy
from clipper.media.urls import canonical_url
from clipper_app.client import ClipperClient, connect
from clipper_app.workers.pools import build_worker
from scripts.devserver import free_port
from tests.helpers.feeds import audio_page, rss
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until
from tests.helpers.pagejob import chromium
from tests.helpers.processes import cli
from tests.helpers.prometheus import samples
from tests.helpers.webserver import web_server

pytestmark = pytest.mark.slow

FEED = "/show/feed.xml"
QUICK = StagePolicy(initial_interval_s=0.2, max_interval_s=0.5, max_attempts=2, heartbeat_timeout_s=10,
                    timeout_base_s=60)


def items(server, *guids: str) -> list[tuple[str, str]]:
    return [(g, server.url(f"/media/{g}.mp3")) for g in guids]


def publish(server, *guids: str) -> None:
    server.files[FEED] = (rss(items(server, *guids)), "application/rss+xml")


async def media_jobs(client: Client, queue: str) -> list[str]:
    return [w.id async for w in client.list_workflows(f'WorkflowType="MediaJob" AND TaskQueue="{queue}"')]


async def checks(clipper: ClipperClient, follow_id: str, more_than: int) -> int:
    """Waits for a check after the `more_than`th (the record counts them) and returns the count."""
    async def counted():
        info = await clipper.follow_info(follow_id)
        return info.last_check_at and (await asyncio.to_thread(clipper._record, follow_id)).checks > more_than

    await until(counted, timeout=30, what=f"check {more_than + 1} of {follow_id}")
    return (await asyncio.to_thread(clipper._record, follow_id)).checks


class StartsInFlight(Interceptor):
    """Observes the MediaJob starts of the worker's client: how many are in flight at once (the calls are real)."""

    def __init__(self) -> None:
        self.now = self.peak = self.total = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        gauge = self

        class Counting(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput):
                if input.workflow != "MediaJob":
                    return await super().start_workflow(input)
                gauge.now += 1
                gauge.peak = max(gauge.peak, gauge.now)
                try:
                    return await super().start_workflow(input)
                finally:
                    gauge.now -= 1
                    gauge.total += 1

        return Counting(next)


@contextlib.asynccontextmanager
async def following(settings, runtime=None, interceptors=()):
    client = await connect(settings, runtime) if runtime else await connect(settings)
    if interceptors:
        client = Client(**{**client.config(), "interceptors": list(interceptors)})
    clipper = ClipperClient(client, settings)
    try:
        async with build_worker(client, settings, pools=["workflow"]):
            yield clipper, client
    finally:  # schedules are the server's, not the queue's: the session's other tests must not see these
        async for listed in await client.list_schedules():
            handle = client.get_schedule_handle(listed.id)
            with contextlib.suppress(Exception):
                if (await handle.describe()).schedule.action.task_queue == settings.task_queue:
                    await handle.delete()
        for job_id in await media_jobs(client, settings.task_queue):
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(job_id).terminate("test over")


async def jobs_settle(client: Client, queue: str, count: int) -> list[str]:
    """The MediaJobs on the queue once visibility shows `count` (it lags the starts a little)."""
    return await until(lambda: _exactly(client, queue, count), timeout=20, what=f"{count} jobs listed")


async def _exactly(client: Client, queue: str, count: int) -> list[str] | None:
    found = await media_jobs(client, queue)
    assert len(found) <= count, f"more jobs than items: {found}"
    return found if len(found) == count else None


def test_items_become_one_job_each_and_pause_and_unfollow_stop_it(settings):
    settings = settings.model_copy(update={"policies": {**settings.policies, "follow": QUICK}})

    async def main():
        with serve({}) as server:
            publish(server, "ep2", "ep1")
            async with following(settings) as (clipper, client):
                queue = settings.task_queue
                follow_id = (await clipper.follow(server.url(FEED), every_s=10)).job_id
                assert (await clipper.follow(server.url(FEED), every_s=10)).existing  # the same source: one follow
                n = await checks(clipper, follow_id, 0)
                first = await jobs_settle(client, queue, 2)
                info = await clipper.follow_info(follow_id)
                assert info.jobs_started == 2 and info.items_seen == 2 and info.title == "A show"
                assert info.last_result == "ok: 2 new" and not info.paused

                # A new item, listed twice (a duplicate guid): one job; the old ones are not started again.
                server.files[FEED] = (rss(items(server, "ep3", "ep3", "ep2", "ep1")), "application/rss+xml")
                await clipper.check_follow_now(follow_id)
                n = await checks(clipper, follow_id, n)
                assert set(first) < set(await jobs_settle(client, queue, 3))

                # Paused: no check, whatever the feed lists.
                assert (await clipper.pause_follow(follow_id)).paused
                n = (await asyncio.to_thread(clipper._record, follow_id)).checks
                publish(server, "ep4", "ep3", "ep2", "ep1")
                await asyncio.sleep(12)  # longer than --every
                assert (await asyncio.to_thread(clipper._record, follow_id)).checks == n
                assert len(await media_jobs(client, queue)) == 3

                # Resumed: the next check takes what came meanwhile.
                assert not (await clipper.resume_follow(follow_id)).paused
                await clipper.check_follow_now(follow_id)
                n = await checks(clipper, follow_id, n)
                await jobs_settle(client, queue, 4)
                assert [f.follow_id for f in await clipper.follows()].count(follow_id) == 1

                # Unfollowed: no more checks, no more jobs.
                await clipper.unfollow(follow_id)
                publish(server, "ep5", "ep4", "ep3", "ep2", "ep1")
                await asyncio.sleep(12)
                assert len(await media_jobs(client, queue)) == 4
                with pytest.raises(FollowNotFound):
                    await clipper.follow_info(follow_id)

    asyncio.run(main())


def test_a_huge_feed_starts_its_jobs_at_the_batch_concurrency(settings):
    """10,000 items: a check starts 100 (the rest wait for the next checks), with CLIPPER_BATCH_CONCURRENCY
    starts in flight (the setting submit-batch uses): never more, and that many at once, not one at a time."""
    settings = settings.model_copy(update={"batch_concurrency": 4})
    gauge = StartsInFlight()

    async def main():
        with serve({}) as server:
            publish(server, *(f"ep{n}" for n in range(10_000)))
            async with following(settings, interceptors=[gauge]) as (clipper, client):
                follow_id = (await clipper.follow(server.url(FEED), every_s=3600)).job_id
                await checks(clipper, follow_id, 0)
                await jobs_settle(client, settings.task_queue, 100)
                info = await clipper.follow_info(follow_id)
                assert (info.jobs_started, info.items_seen) == (100, 100)
                assert info.last_result == "ok: 10000 new, 9900 left for the next check"

    asyncio.run(main())
    assert (gauge.total, gauge.peak) == (100, 4)


def test_a_page_yt_dlp_lists_is_followed_through_its_listing(settings):
    """The yt-dlp listing path (YouTube channels and playlists, X accounts) offline: a page of `<audio>` elements
    that yt-dlp's generic extractor lists as a playlist; items are identified by their URL."""
    async def main():
        with serve({}) as server:
            server.files["/show.html"] = (audio_page([server.url("/a.mp3"), server.url("/b.mp3")]), "text/html")
            async with following(settings) as (clipper, client):
                follow_id = (await clipper.follow(server.url("/show.html"), every_s=3600)).job_id
                n = await checks(clipper, follow_id, 0)
                first = await jobs_settle(client, settings.task_queue, 2)
                info = await clipper.follow_info(follow_id)
                assert (info.jobs_started, info.title, info.last_result) == (2, "Episodes", "ok: 2 new")
                server.files["/show.html"] = (audio_page([server.url(f"/{x}.mp3") for x in "cab"]), "text/html")
                await clipper.check_follow_now(follow_id)
                await checks(clipper, follow_id, n)
                assert set(first) < set(await jobs_settle(client, settings.task_queue, 3))

    asyncio.run(main())


def test_a_feed_that_404s_shows_its_error_and_pauses_itself(settings):
    settings = settings.model_copy(update={"policies": {**settings.policies, "follow": QUICK},
                                           "follow_max_failures": 2})

    async def main():
        with serve({}) as server:
            server.set_status(FEED, 404)
            async with following(settings) as (clipper, client):
                follow_id = (await clipper.follow(server.url(FEED), every_s=10)).job_id
                await checks(clipper, follow_id, 0)
                info = await clipper.follow_info(follow_id)
                assert info.failures == 1 and "MediaNotFound" in info.last_result and "404" in info.last_result
                assert not info.paused
                assert len(server.seen(FEED)) == 2  # the check asked again (its retry policy) before giving up
                await clipper.check_follow_now(follow_id)
                info = await until(lambda: _paused(clipper, follow_id), timeout=30, what="the follow pausing itself")
                assert info.failures == 2 and "failed checks in a row" in (info.note or "")
                assert not await media_jobs(client, settings.task_queue)

    asyncio.run(main())


async def _paused(clipper: ClipperClient, follow_id: str):
    info = await clipper.follow_info(follow_id)
    return info if info.paused else None


def test_follows_over_rest(settings):
    """The same follow through `clipper web`: made, listed, paused, resumed, removed; an unknown id is a 404 problem."""
    async def main():
        with serve({}) as server, web_server(settings) as base:
            publish(server, "ep1")
            async with following(settings) as (clipper, _), httpx.AsyncClient(base_url=base, timeout=15) as http:
                made = await http.post("/api/follows", json={"source": server.url(FEED), "every_s": 10})
                assert made.status_code == 201, made.text
                follow_id = made.json()["follow_id"]
                assert (await http.post("/api/follows", json={"source": server.url(FEED)})).json()["existing"]
                await checks(clipper, follow_id, 0)
                listed = (await http.get("/api/follows")).json()
                mine = next(f for f in listed if f["follow_id"] == follow_id)
                assert mine["jobs_started"] == 1 and mine["every_s"] == 10 and mine["recent_jobs"][0]["job_id"]
                page = (await http.get("/follows")).text  # the Follows view: the follow, its job, its controls
                assert follow_id in page and mine["recent_jobs"][0]["job_id"] in page and 'data-action="pause"' in page
                assert (await http.post(f"/api/follows/{follow_id}/pause")).json()["paused"] is True
                assert (await http.post(f"/api/follows/{follow_id}/resume")).json()["paused"] is False
                async with ClipperClient.over_http(base) as remote:  # the Python client without the store
                    assert (await remote.follow(server.url(FEED), every_s=10)).job_id == follow_id
                    assert any(f.follow_id == follow_id and f.jobs_started == 1 for f in await remote.follows())
                    assert (await remote.pause_follow(follow_id)).paused
                    assert not (await remote.resume_follow(follow_id)).paused
                    assert (await remote.follow_info(follow_id)).source == mine["source"]
                assert (await http.delete(f"/api/follows/{follow_id}")).status_code == 204
                gone = await http.get(f"/api/follows/{follow_id}")
                assert gone.status_code == 404 and gone.json()["error"] == "FollowNotFound"
                async with ClipperClient.over_http(base) as remote:
                    with pytest.raises(FollowNotFound):
                        await remote.follow_info(follow_id)
                bad = await http.post("/api/follows", json={"source": server.url(FEED), "every_s": 5})
                assert bad.status_code == 422

    asyncio.run(main())


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def test_follow_metrics(settings):
    """Checks, items found, jobs started and failures on the worker's /metrics, as the stages' are."""
    port = free_port()

    async def main() -> str:
        with serve({}) as server:
            publish(server, "ep2", "ep1")
            async with following(settings, prometheus_runtime(port, "127.0.0.1")[0]) as (clipper, _):
                follow_id = (await clipper.follow(server.url(FEED), every_s=3600)).job_id
                await checks(clipper, follow_id, 0)
                return follow_id, await asyncio.to_thread(scrape, port)

    follow_id, text = asyncio.run(main())
    assert [v for labels, v in samples(text, "clipper_follow_checks_total") if labels["result"] == "ok"] == [1]
    assert sum(v for _, v in samples(text, "clipper_follow_items_found_total")) == 2
    assert sum(v for _, v in samples(text, "clipper_follow_jobs_started_total")) == 2
    assert [v for labels, v in samples(text, "clipper_follow_items_seen") if labels["follow_id"] == follow_id] == [2]


def test_the_follows_view_in_a_real_browser(settings):
    """Add a follow from the form, see its check's result and job, pause it, remove it: in Chromium."""
    from playwright.async_api import async_playwright

    executable = chromium()

    async def main():
        with serve({}) as server, web_server(settings) as base:
            publish(server, "ep1")
            async with following(settings) as (clipper, _), async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
                page = await browser.new_page()
                problems = []
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
                await page.goto(base + "/follows")
                await page.fill("#follow-form input[name=source]", server.url(FEED))
                await page.select_option("#follow-form select[name=every_s]", "10")
                await page.click("#follow-form button[type=submit]")
                follow_id = follow_id_for(canonical_url(server.url(FEED)))
                row = page.locator(f'#follows tr[data-follow="{follow_id}"]')
                await row.wait_for()
                await checks(clipper, follow_id, 0)
                await page.reload()
                assert "ok: 1 new" in await row.inner_text() and await row.locator("a[href^='/jobs/']").count() == 1
                await row.locator("button[data-action=pause]").click()
                await page.wait_for_selector(f'#follows tr[data-follow="{follow_id}"][data-paused=true]')
                assert (await clipper.follow_info(follow_id)).paused
                await page.locator(f'#follows tr[data-follow="{follow_id}"] button[data-action=remove]').click()
                await page.locator(f'#follows tr[data-follow="{follow_id}"]').wait_for(state="detached")
                assert not [f for f in await clipper.follows() if f.follow_id == follow_id]
                await browser.close()
                assert not problems, problems

    asyncio.run(main())


def test_the_cli_follows_lists_pauses_and_unfollows(settings):
    """`clipper follow`, `follows`, `follow --pause/--resume`, `unfollow` as a user types them; refusals are one line."""
    async def main():
        with serve({}) as server:
            publish(server, "ep2", "ep1")
            async with following(settings) as (clipper, _):
                made = await cli(settings, "follow", server.url(FEED), "--every", "10s", "--language", "en", "--json")
                assert made.code == 0, made.err
                follow_id = json.loads(made.out)["follow_id"]
                await checks(clipper, follow_id, 0)
                listed = json.loads((await cli(settings, "follows", "--json")).out)
                mine = [(f["follow_id"], f["jobs_started"], f["paused"]) for f in listed if f["follow_id"] == follow_id]
                assert mine == [(follow_id, 2, False)]
                table = await cli(settings, "follows", columns=160)
                assert follow_id in table.out and "ok: " in table.out and "10s" in table.out and "A show" in table.out
                assert (await cli(settings, "follow", "--pause", follow_id)).out.strip() == f"{follow_id}: paused"
                assert (await cli(settings, "follow", "--resume", follow_id)).out.strip() == f"{follow_id}: following"
                assert (await cli(settings, "unfollow", follow_id)).code == 0
                unknown = await cli(settings, "unfollow", follow_id)
                assert unknown.code == 2 and unknown.one_line_error().startswith("error FollowNotFound:")
                fast = await cli(settings, "follow", server.url(FEED), "--every", "5s")
                assert fast.code == 2 and "error InvalidRequest: --every '5s'" in fast.one_line_error()

    asyncio.run(main())
