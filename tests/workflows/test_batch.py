"""Batches on the real dev server: a podcast feed expanded by yt-dlp (flat), a file of URLs, continue-as-new,
pause/resume/priority/cancel passed on to the children. Real yt-dlp and ffmpeg over a local HTTP server; the
noop ASR engine and the offline text engine keep each child job to a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Replayer

from clipper.job.batch import BatchRequest, BatchStatus
from clipper.job.status import JobState, StageState
from clipper.media.playlist import parse_url_list
from clipper_app.client import ClipperClient, JobCancelled, connect
from clipper_app.client.batches import read_url_file, source_or_file
from clipper_app.workers.pools import build_worker
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import until
from workflows.batch_job import BatchJob


@pytest.fixture
def fast(settings):
    """The worker's settings: no speech model, no LLM."""
    return settings.model_copy(update={"asr_engine": "noop", "text_engine": "offline"})


@pytest.fixture
def episodes():
    with serve({f"/ep{i}.mp3": (SAMPLE.read_bytes(), "audio/mpeg") for i in range(8)}) as server:
        yield server


def podcast_feed(server, count: int) -> str:
    """An RSS feed of `count` episodes (enclosures → yt-dlp's generic extractor lists them); returns its URL."""
    size = SAMPLE.stat().st_size
    items = "".join(
        f'<item><title>Episode {i}</title><guid>ep{i}</guid>'
        f'<enclosure url="{escape(server.url(f"/ep{i}.mp3"))}" type="audio/mpeg" length="{size}"/></item>'
        for i in range(count))
    feed = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Test cast</title>'
            f'<link>http://example.com/</link>{items}</channel></rss>')
    server.files["/feed.xml"] = (feed.encode(), "application/rss+xml")
    return server.url("/feed.xml")


@contextlib.asynccontextmanager
async def clipper_with_worker(settings, **worker_options) -> AsyncIterator[ClipperClient]:
    client = await connect(settings)
    async with build_worker(client, settings, **worker_options):
        yield ClipperClient(client, settings)


async def child_spans(clipper: ClipperClient, batch_id: str, count: int) -> list[tuple]:
    """(start, close, status) of each child job, by its deterministic id."""
    spans = []
    for index in range(count):
        desc = await clipper.handle(f"{batch_id}-{index:04d}").describe()
        spans.append((desc.start_time, desc.close_time, desc.status))
    return spans


def most_at_once(spans: list[tuple]) -> int:
    events = sorted([(start, 1) for start, _, _ in spans] + [(close, -1) for _, close, _ in spans],
                    key=lambda e: (e[0], e[1]))  # a close at the same instant as a start counts first
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


async def exists(clipper: ClipperClient, workflow_id: str) -> bool:
    try:
        await clipper.handle(workflow_id).describe()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
        return False
    return True


@pytest.mark.slow
def test_playlist_feed_runs_every_item_at_most_two_at_once(fast, episodes):
    feed = podcast_feed(episodes, 5)

    async def body():
        async with clipper_with_worker(fast) as clipper:
            batch = (await clipper.submit_batch(feed, concurrency=2)).job_id
            samples = []

            async def sample():
                status = await clipper.batch_status(batch)
                samples.append(status.counts.running)
                return status.state == JobState.done

            await until(sample, timeout=90, what="the batch to finish")
            result = await clipper.batch_result(batch)
            return batch, result, samples, await child_spans(clipper, batch, 5)

    batch, result, samples, spans = run(body())
    assert result.state == JobState.done and result.status.title == "Test cast"
    counts = result.counts
    assert (counts.total, counts.done, counts.failed, counts.cancelled, counts.running, counts.queued) == \
        (5, 5, 0, 0, 0, 0)
    assert max(samples) <= 2 and most_at_once(spans) == 2
    assert all(status == WorkflowExecutionStatus.COMPLETED for _, _, status in spans)
    items = sorted(result.status.items, key=lambda i: i.index)
    assert [i.job_id for i in items] == [f"{batch}-{n:04d}" for n in range(5)]
    assert [i.title for i in items] == [f"Episode {n}" for n in range(5)]
    assert [i.url for i in items] == [episodes.url(f"/ep{n}.mp3") for n in range(5)]


@pytest.mark.slow
def test_file_of_urls_with_a_bad_one_completes_with_one_failed(fast, episodes, tmp_path):
    episodes.set_status("/gone.mp3", 404)
    good = [episodes.url(f"/ep{i}.mp3") for i in range(3)]
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# three episodes and a dead link\n\n{good[0]}\n  {good[1]}  \n   # not this\n"
                       f"{episodes.url('/gone.mp3')}\n{good[2]}\n")
    source, urls = source_or_file(str(listing))
    assert source is None and urls == [good[0], good[1], episodes.url("/gone.mp3"), good[2]]

    async def body():
        async with clipper_with_worker(fast) as clipper:
            batch = (await clipper.submit_batch(urls=urls, concurrency=3)).job_id
            return batch, await clipper.batch_result(batch)

    batch, result = run(body())
    assert result.state == JobState.done
    assert (result.counts.total, result.counts.done, result.counts.failed) == (4, 3, 1)
    [failed] = result.failed
    assert failed.job_id == f"{batch}-0002" and failed.url == episodes.url("/gone.mp3")
    assert failed.error.startswith("MediaNotFound")


@pytest.mark.slow
def test_long_list_continues_as_new_and_runs_every_item_exactly_once(fast, episodes):
    urls = [episodes.url(f"/ep{i}.mp3") for i in range(7)]

    async def body():
        async with clipper_with_worker(fast) as clipper:
            batch = (await clipper.submit_batch(urls=urls, concurrency=3, window=3)).job_id
            result = await clipper.batch_result(batch)
            runs = [wf async for wf in clipper.client.list_workflows(f'WorkflowId = "{batch}"')]
            children = [wf async for wf in clipper.client.list_workflows(
                f'WorkflowType = "MediaJob" AND TaskQueue = "{fast.task_queue}"')]
            carried, replayer = [], Replayer(workflows=[BatchJob], data_converter=pydantic_data_converter)
            for wf in runs:
                history = await clipper.client.get_workflow_handle(batch, run_id=wf.run_id).fetch_history()
                await replayer.replay_workflow(history)  # every run replays deterministically
                if wf.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    payloads = history.events[-1].workflow_execution_continued_as_new_event_attributes.input.payloads
                    [request] = await clipper.client.data_converter.decode(payloads, [BatchRequest])
                    carried.append((request, sum(len(p.data) for p in payloads)))
            return batch, result, runs, children, carried

    batch, result, runs, children, carried = run(body())
    assert result.state == JobState.done and result.counts.done == 7 and result.counts.total == 7
    assert result.status.run == 3
    assert sorted(wf.status.name for wf in runs) == ["COMPLETED", "CONTINUED_AS_NEW", "CONTINUED_AS_NEW"]
    assert sorted(wf.id for wf in children) == [f"{batch}-{i:04d}" for i in range(7)]  # each once, none twice
    assert all(wf.status == WorkflowExecutionStatus.COMPLETED for wf in children)
    # Each run hands the next a reference to the stored list and a cursor, never the list itself.
    assert sorted(request.carry.cursor for request, _ in carried) == [3, 6]
    for request, size in carried:
        assert request.urls == [] and request.carry.items.name == "items.json" and size < 8000


class Gate(Interceptor):
    """Holds every `download` activity until opened, heartbeating so that a cancellation reaches it."""

    def __init__(self, free_suffix: str | None = None) -> None:
        self.opened = False
        self.free_suffix = free_suffix  # jobs whose id ends so are let through
        self.held: list[str] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        gate = self

        class Hold(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                job = activity.info().workflow_id
                free = gate.free_suffix is not None and job.endswith(gate.free_suffix)
                if activity.info().activity_type == "download" and not free:
                    gate.held.append(job)
                    while not gate.opened:
                        activity.heartbeat()
                        await asyncio.sleep(0.1)
                return await super().execute_activity(input)

        return Hold(next)


async def job_is(clipper: ClipperClient, job_id: str, state: JobState) -> bool:
    return (await clipper.status(job_id)).state == state


@pytest.mark.slow
def test_pause_priority_resume_reach_running_and_later_children(fast, episodes):
    gate = Gate()
    urls = [episodes.url(f"/ep{i}.mp3") for i in range(4)]

    async def body():
        async with clipper_with_worker(fast, interceptors=[gate]) as clipper:
            batch = (await clipper.submit_batch(urls=urls, concurrency=2)).job_id
            first = [f"{batch}-0000", f"{batch}-0001"]
            await until(lambda: set(first) <= set(gate.held), what="two children downloading")
            await clipper.pause(batch)
            for job in first:
                await until(lambda: job_is(clipper, job, JobState.paused), what=f"{job} paused")
            assert await clipper.set_priority(batch, 1) == 1
            assert [(await clipper.status(job)).priority for job in first] == [1, 1]
            gate.opened = True  # the running stage finishes; the next waits, and the batch starts no new item
            for job in first:
                await until(lambda: _download_done(clipper, job), what=f"{job} download")
            await asyncio.sleep(1.0)
            paused = await clipper.batch_status(batch)
            children = [await clipper.status(job) for job in first]
            third_started = await exists(clipper, f"{batch}-0002")
            await clipper.resume(batch)
            result = await clipper.batch_result(batch)
            later = await clipper.result(f"{batch}-0003")
            return paused, children, third_started, result, later

    paused, children, third_started, result, later = run(body())
    assert paused.state == JobState.paused and paused.priority == 1 and paused.paused_since is not None
    assert (paused.counts.running, paused.counts.queued) == (2, 2) and not third_started
    assert all(c.state == JobState.paused and c.stage("transcribe").state == StageState.pending for c in children)
    assert result.state == JobState.done and result.counts.done == 4 and result.status.paused_since is None
    assert later.status.priority == 1  # started after the change: with the batch's new priority


async def _download_done(clipper: ClipperClient, job_id: str) -> bool:
    return (await clipper.status(job_id)).stage("download").state == StageState.done


@pytest.mark.slow
def test_cancel_batch_cancels_running_children_and_starts_no_more_then_a_rerun_redoes_only_those(fast, episodes):
    gate = Gate(free_suffix="-0000")  # the first item finishes; the next ones are held in their download
    urls = [episodes.url(f"/ep{i}.mp3") for i in range(4, 8)]
    quick = {**fast.policies, "download": fast.policies["download"].model_copy(update={"heartbeat_timeout_s": 2})}
    fast = fast.model_copy(update={"policies": quick})  # a held download hears of the cancel within ~2 s

    async def body():
        async with clipper_with_worker(fast, interceptors=[gate]) as clipper:
            batch = (await clipper.submit_batch(urls=urls, concurrency=2)).job_id
            await until(lambda: len(gate.held) == 2, what="two children held downloading")
            await clipper.cancel(batch)
            with pytest.raises(JobCancelled) as err:
                await clipper.batch_result(batch)
            spans = await child_spans(clipper, batch, 3)
            never = await exists(clipper, f"{batch}-0003")
            cancelled = await clipper.batch_status(batch)
            gate.opened = True  # the same list again: a new run of the batch
            again = await clipper.submit_batch(urls=urls, concurrency=2)
            rerun = await clipper.batch_result(batch)
            first_runs = (await clipper.client.count_workflows(f'WorkflowId = "{batch}-0000"')).count
            return err.value, spans, never, cancelled, again, rerun, first_runs

    cause, spans, never, cancelled, again, rerun, first_runs = run(body())
    assert isinstance(cause, JobCancelled)
    assert [s for _, _, s in spans] == [WorkflowExecutionStatus.COMPLETED] + [WorkflowExecutionStatus.CANCELED] * 2
    assert not never and cancelled.state == JobState.cancelled
    counts = cancelled.counts
    assert (counts.done, counts.cancelled, counts.running, counts.queued) == (1, 2, 0, 1)
    # Run again after the cancel: the cancelled and unstarted items run; the finished one is not redone.
    assert again.job_id == cancelled.batch_id and not again.existing
    assert rerun.state == JobState.done and rerun.counts.done == 4 and first_runs == 1
    assert [i.existing for i in sorted(rerun.status.items, key=lambda i: i.index)] == [True, False, False, False]


def test_url_list_parsing_and_argument_kinds(tmp_path):
    assert parse_url_list("# c\n\nhttps://a.example/x.mp3\n  https://b.example/y  \n#x\n") == [
        "https://a.example/x.mp3", "https://b.example/y"]
    listing = tmp_path / "list.txt"
    listing.write_text("https://WWW.YouTube.com/watch?v=abc&utm_source=x\nnot a url\n")
    assert read_url_file(listing) == ["https://youtube.com/watch?v=abc", "not a url"]
    assert source_or_file("https://example.com/feed.xml") == ("https://example.com/feed.xml", [])
    with pytest.raises(Exception, match="neither"):
        source_or_file(str(tmp_path / "missing.txt"))


@pytest.mark.slow
def test_cli_submit_batch_from_a_file_waits_and_status_shows_the_batch(fast, episodes, tmp_path):
    from tests.helpers.processes import cli

    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(episodes.url(f"/ep{i}.mp3") for i in range(2)) + "\n")

    async def body():
        client = await connect(fast)
        async with build_worker(client, fast):
            submitted = await cli(fast, "submit-batch", str(listing), "--wait", "--concurrency", "2", columns=200,
                                  timeout=60)
            batch = submitted.out.splitlines()[0].strip()
            return submitted, batch, await cli(fast, "status", batch, columns=200), \
                await cli(fast, "status", batch, "--json")

    submitted, batch, shown, as_json = run(body())
    assert submitted.code == 0 and batch.startswith("batch-"), submitted
    assert "2/2 done" in submitted.out and "2/2 done" in shown.out and f"{batch}-0001" in shown.out, shown
    status = BatchStatus.model_validate_json(as_json.out)
    assert status.batch_id == batch and status.state == JobState.done and status.concurrency == 2
