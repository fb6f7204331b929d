"""kill -9 the worker and the server in the middle of a follow's check, add an item while both are down: after
the restart every item has exactly one job.

Its own dev server (it kills it) and a worker process (`python worker.py`). The feed lists 30 items and the
follow starts their jobs one at a time (`concurrency=1`), so the kill lands while the first check is still
starting jobs — before it wrote the follow's record. The jobs' media answer 404, so each job ends at once
(`MediaNotFound`) without loading the machine. After the restart the next checks list the feed again: the items
started before the kill get the same job ids (`clip-<sha256(follow|guid)>`), which the server refuses to start
twice, and the item added while everything was down gets its one job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from clipper.config import Settings
from clipper.follow.model import RECORD_FILE, FollowRecord
from clipper_app.client import ClipperClient, connect, ensure_search_attributes
from scripts.devserver import DevServer
from tests.helpers.feeds import rss
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until
from tests.helpers.processes import start_worker

pytestmark = pytest.mark.slow

FEED = "/feed.xml"


def feed(server, count: int) -> tuple[bytes, str]:
    return rss([(f"ep{n}", server.url(f"/media/ep{n}.mp3")) for n in range(count, 0, -1)]), "application/rss+xml"


async def media_jobs(clipper: ClipperClient, queue: str) -> list[str]:
    return [w.id async for w in clipper.client.list_workflows(f'WorkflowType="MediaJob" AND TaskQueue="{queue}"')]


def record(clipper: ClipperClient, follow_id: str) -> FollowRecord | None:
    ref = clipper.store.valid_ref(follow_id, RECORD_FILE)
    return clipper.store.read_model(follow_id, ref, FollowRecord) if ref else None


def test_kill_worker_and_server_mid_check_then_an_item_comes(tmp_path):
    server = DevServer(tmp_path / "temporal.db").start()
    settings = Settings(temporal_address=server.address, task_queue=f"follow-{uuid.uuid4().hex[:6]}",
                        storage_dir=tmp_path / "storage", allow_private_addresses=True)
    worker = None
    try:
        with serve({}) as media:
            media.files[FEED] = feed(media, 30)

            async def before() -> tuple[str, ClipperClient]:
                clipper = ClipperClient(await connect(settings), settings)
                await ensure_search_attributes(clipper.client, settings.temporal_namespace)
                follow_id = (await clipper.follow(media.url(FEED), every_s=10, concurrency=1)).job_id
                await until(lambda: media_jobs(clipper, settings.task_queue), timeout=60, what="the first job")
                return follow_id, clipper

            worker = start_worker(settings, tmp_path / "worker-1.log")
            follow_id, clipper = asyncio.run(before())
            worker.kill()
            worker.wait()
            server.kill()
            assert record(clipper, follow_id) is None  # killed before the first check had written what it saw
            media.files[FEED] = feed(media, 31)  # the item that comes while everything is down
            server.start()
            worker = start_worker(settings, tmp_path / "worker-2.log")

            async def after() -> list[str]:
                clipper = ClipperClient(await connect(settings), settings)

                def all_seen():
                    r = record(clipper, follow_id)
                    return r is not None and r.items_seen == 31 and r.failures == 0
                await until(all_seen, timeout=90, what="every item seen after the restart")
                checks = record(clipper, follow_id).checks
                await clipper.check_follow_now(follow_id)  # one more check: still nothing twice
                await until(lambda: record(clipper, follow_id).checks > checks, timeout=30, what="another check")
                return await until(lambda: _listed(clipper, settings.task_queue, 31), timeout=30, what="31 jobs")

            jobs = asyncio.run(after())
            assert len(jobs) == 31 and not [j for j, n in Counter(jobs).items() if n > 1]
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(30)
        server.stop()


async def _listed(clipper: ClipperClient, queue: str, count: int) -> list[str] | None:
    found = await media_jobs(clipper, queue)
    assert len(found) <= count, f"more jobs than items: {sorted(found)}"
    return found if len(found) == count else None
