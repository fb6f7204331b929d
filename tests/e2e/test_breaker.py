"""The circuit breaker per provider, end to end: real workers and jobs, a real dev server, and the scripted
OpenAI-compatible server counting every call the `openai` client makes over the wire."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from pathlib import Path

from activities.metrics import prometheus_runtime
from clipper.job.outputs import QuoteSet, Summary
from clipper.job.request import JobResult
from clipper.ops.breaker import BreakerPhase, BreakerReport, provider_key
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, connect, ensure_search_attributes
from clipper_app.client.breakers import BreakerClient
from clipper_app.workers.pools import build_worker
from scripts.devserver import DevServer, free_port
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.llmserver import llm_settings, model_answers
from tests.helpers.llmserver import error, serve_llm
from tests.helpers.processes import cli
from tests.helpers.prometheus import samples
from workflows.provider_breaker import breaker_id

COOLDOWN_S = 3.0


async def until(fetch, ok, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}: {value}"
        await asyncio.sleep(0.2)


def two_episodes():
    data = SAMPLE.read_bytes()
    return serve({"/a.mp3": (data, "audio/mpeg"), "/b.mp3": (data, "audio/mpeg")})


def test_a_storm_of_500s_opens_the_breaker_only_probes_go_and_every_job_finishes(settings):
    down = threading.Event()
    down.set()
    calls_when: list[bool] = []  # one entry per call: whether the provider was down then

    def provider(request):
        calls_when.append(down.is_set())
        return error(500, "storm", "server_error") if down.is_set() else model_answers(request)

    port = free_port()
    with two_episodes() as media, serve_llm(handler=provider) as llm:
        settings = llm_settings(settings, llm).model_copy(update=dict(
            breaker_failures=3, breaker_cooldown_s=COOLDOWN_S, llm_concurrency=1))
        name = provider_key(llm.base_url, "")

        async def body():
            client = await connect(settings, prometheus_runtime(port, "127.0.0.1")[0])
            clipper, breakers = ClipperClient(client, settings), BreakerClient(client, settings.task_queue)
            async with build_worker(client, settings):
                jobs = [(await clipper.submit(media.url(p))).job_id for p in ("/a.mp3", "/b.mp3")]
                opened = await until(lambda: breakers.state(name), lambda s: s and s.phase != BreakerPhase.closed,
                                     180, "the breaker to open")
                # The job's status says what it waits for, from its running stage's heartbeat.
                waiting = await until(lambda: clipper.status(jobs[0]), lambda s: s.waiting, 30, "a waiting note")
                await asyncio.sleep(0.5)
                before, calls_before = await breakers.state(name), len(llm.chat_requests)
                await asyncio.sleep(2 * COOLDOWN_S + 1)
                after, calls_after = await breakers.state(name), len(llm.chat_requests)
                metrics = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())
                down.clear()
                results = [await clipper.result(job) for job in jobs]
                closed = await breakers.state(name)
                shown = await cli(settings, "status", columns=200)
            return jobs, opened, waiting, before, after, calls_after - calls_before, metrics, results, closed, shown

        jobs, opened, waiting, before, after, calls_open, metrics, results, closed, shown = run(body())

    assert opened.opens == 1 and opened.failures == 3 and "500" in opened.last_error
    assert waiting.waiting.startswith(f"waiting: provider {name} unavailable since {opened.opened_at:%H:%M} UTC")
    # While it was open the provider saw the probes and nothing else: one per cool-down.
    probes = after.probes - before.probes
    assert 1 <= probes <= 3 and abs(calls_open - probes) <= 1, (calls_open, probes)
    down_calls = sum(calls_when)
    assert down_calls <= 3 + 1 + closed.probes, (down_calls, closed.probes)  # +1: the other job's call in flight
    # Recovery: the probe's success closed it and every job finished with the LLM's quotes.
    assert closed.phase == BreakerPhase.closed and closed.opens == 1
    for job, result in zip(jobs, results):
        assert isinstance(result, JobResult) and result.status.stage("quotes").attempt <= 4
        quotes = QuoteSet.model_validate_json(ArtifactStore(settings.storage_dir).path(job, "quotes.json").read_bytes())
        assert quotes.engine == "llm" and quotes.quotes and quotes.fallback is None
    gauge = {labels["provider"]: value for labels, value in samples(metrics, "clipper_provider_breaker_state")}
    assert gauge.get(name) in (1.0, 2.0), gauge  # open or probing while the storm lasted
    assert shown.code == 0 and name in shown.out and "closed" in shown.out, shown.out + shown.err


def test_with_the_offline_fallback_an_open_breaker_makes_the_job_finish_offline_and_say_so(settings):
    with two_episodes() as media, serve_llm(handler=lambda req: error(503, "down", "server_error")) as llm:
        settings = llm_settings(settings, llm).model_copy(update=dict(
            breaker_failures=2, breaker_cooldown_s=600, llm_concurrency=1, llm_fallback="offline"))

        async def body():
            client = await connect(settings)
            clipper = ClipperClient(client, settings)
            async with build_worker(client, settings):
                job = (await clipper.submit(media.url("/a.mp3"))).job_id
                return job, await clipper.result(job)

        job, result = run(body())
        calls = len(llm.chat_requests)
    assert isinstance(result, JobResult), result
    assert calls == 2  # the two failures that opened it; none while it was open
    store = ArtifactStore(settings.storage_dir)
    quotes = QuoteSet.model_validate_json(store.path(job, "quotes.json").read_bytes())
    summary = Summary.model_validate_json(store.path(job, "summary.json").read_bytes())
    assert quotes.quotes and quotes.fallback and "offline engine for 1 of 1 requests" in quotes.fallback
    assert summary.overview and summary.fallback and "unavailable" in summary.fallback
    report = store.path(job, "report.md").read_text().replace("\\", "")  # Markdown escapes: CLIPPER\_LLM…
    assert "CLIPPER_LLM_FALLBACK=offline" in report and provider_key(llm.base_url, "") in report


def test_the_breaker_survives_worker_and_server_restarts(settings, tmp_path: Path):
    server = DevServer(tmp_path / "breaker.db").start()
    settings = settings.model_copy(update=dict(temporal_address=server.address))
    policy = settings.breaker_policy().model_copy(update=dict(failures=2, cooldown_s=1.0))
    failure = BreakerReport(ok=False, error="HTTP 502")

    async def open_it():
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)  # as a worker does at start
        breakers = BreakerClient(client, settings.task_queue, policy)
        async with build_worker(client, settings):
            await breakers.report("api.example.com", failure)
            return await breakers.report("api.example.com", failure)

    async def after_restart():
        client = await connect(settings)
        breakers = BreakerClient(client, settings.task_queue, policy)
        async with build_worker(client, settings):
            state = await breakers.state("api.example.com")
            assert await breakers.state("never-failed.example.com") is None  # no breaker: taken as closed
            shown = await cli(settings, "status", columns=200)
            await asyncio.sleep(1.2)
            probe = await breakers.permit("api.example.com")
            second = await breakers.permit("api.example.com")
            closed = await breakers.report("api.example.com", BreakerReport(ok=True, probe=True))
            # An operator may reset a breaker by terminating it: it reads as none, the next failure starts anew.
            await client.get_workflow_handle(breaker_id(settings.task_queue, "api.example.com")).terminate("reset")
            assert await breakers.state("api.example.com") is None
            assert (await breakers.report("api.example.com", failure)).failures == 1
            return state, shown, probe, second, closed

    try:
        opened = run(open_it())
        server.restart()
        state, shown, probe, second, closed = run(after_restart())
    finally:
        server.stop()
    assert opened.phase == BreakerPhase.open
    assert state.phase == BreakerPhase.open and state.opened_at == opened.opened_at  # the same breaker
    assert shown.code == 0 and "api.example.com" in shown.out and "open" in shown.out
    assert probe.allowed and probe.probe and not second.allowed  # one probe across every caller
    assert closed.phase == BreakerPhase.closed
