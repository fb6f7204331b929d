"""Worker pools: stages on their pool's task queue, workers that run a subset of pools, per-pool limits,
and the per-provider LLM request throttle."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from clipper.config import Settings
from clipper.errors import InvalidRequest
from clipper.job.stages import POOLS, STAGE_POOLS
from clipper.job.status import JobState
from clipper.llm.client import LLMEngine
from clipper.llm.throttle import RequestThrottle, provider_of, throttle_for
from clipper.text.chunking import chunk_transcript
from clipper_app.client import ClipperClient, connect
from tests.helpers import run
from tests.helpers.jobs import until
from tests.helpers.llmserver import answer, serve_llm

from clipper_app.workers.pools import POOL_ACTIVITIES, build_worker, parse_pools
from tests.helpers.text import sample_transcript


class QueueLog(Interceptor):
    """(pool name, activity type, task queue) of every activity this worker group executed."""

    def __init__(self, name: str, seen: list) -> None:
        self.name, self.seen = name, seen

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Record(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                info = activity.info()
                outer.seen.append((outer.name, info.activity_type, info.task_queue))
                return await super().execute_activity(input)

        return Record(next)


def test_parse_pools():
    assert parse_pools(None) == POOLS and parse_pools("all") == POOLS
    assert parse_pools("cpu, io,cpu") == ("cpu", "io")
    with pytest.raises(InvalidRequest, match="unknown pool.*gpu.*workflow, io, cpu, llm"):
        parse_pools("io,gpu")


def test_every_stage_has_a_pool_that_registers_its_activity():
    registered = {pool: {a.__name__ for a in acts} for pool, acts in POOL_ACTIVITIES.items()}
    assert set(STAGE_POOLS.values()) <= set(registered)
    assert "TranscribeChunkActivity" in registered["cpu"] and "QuotesActivity" in registered["llm"]
    assert "DownloadActivity" in registered["io"] and "ClipsActivity" in registered["io"]


def test_pool_limits_are_config(settings):
    settings = settings.model_copy(update={"pool_concurrency": {"cpu": 1, "io": 7}, "llm_activities_per_s": 2.5})

    async def body():
        group = build_worker(await connect(settings), settings, pools=("cpu", "io", "llm"))
        return {pool: w.config() for pool, w in group.workers.items()}

    config = run(body())
    assert config["cpu"]["task_queue"] == f"{settings.task_queue}-cpu"
    assert config["cpu"]["max_concurrent_activities"] == 1 and config["io"]["max_concurrent_activities"] == 7
    assert config["llm"]["max_concurrent_activities"] == settings.max_concurrent_activities
    assert config["llm"]["max_task_queue_activities_per_second"] == 2.5
    assert config["io"]["max_task_queue_activities_per_second"] is None


@pytest.mark.slow
def test_stages_run_on_their_pools_and_a_missing_pool_only_holds_its_stage(settings, media_server):
    seen: list[tuple[str, str, str]] = []

    async def body():
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        front = build_worker(client, settings, pools=("workflow", "io", "llm"),
                             interceptors=[QueueLog("front", seen)])
        async with front:
            job = (await clipper.submit(media_server.url("/episode.mp3"))).job_id
            # No cpu worker yet: the job waits at transcribe, its activity queued on the cpu pool's queue.

            async def waiting_on_cpu():
                pending = (await clipper.handle(job).describe()).raw_description.pending_activities
                return [p for p in pending if p.activity_type.name == "transcribe"]

            await until(waiting_on_cpu, timeout=60, what="transcribe queued")
            status = await clipper.status(job)
            assert status.state == JobState.running and status.current_stage == "transcribe"
            async with build_worker(client, settings, pools=("cpu",), interceptors=[QueueLog("cpu", seen)]):
                return await clipper.result(job)

    result = run(body())
    assert result.state == JobState.done
    queue = settings.task_queue
    ran = {(kind, group, q) for group, kind, q in seen}
    assert ("download", "front", f"{queue}-io") in ran and ("clips", "front", f"{queue}-io") in ran
    assert ("transcribe", "cpu", f"{queue}-cpu") in ran
    assert ("quotes", "front", f"{queue}-llm") in ran and ("summary", "front", f"{queue}-llm") in ran
    assert all(group == "cpu" for group, kind, _ in seen if kind == "transcribe")
    assert not [s for s in seen if s[2] == queue], "no stage may run on the workflow queue when pools are on"


class FakeClock:
    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_throttle_spaces_requests_evenly():
    clock = FakeClock()
    throttle = RequestThrottle(120, clock=lambda: clock.now, sleep=clock.sleep)  # one per 0.5 s
    waits = [throttle.acquire() for _ in range(4)]
    assert waits == [0.0, 0.5, 0.5, 0.5]
    clock.now += 10  # idle for a while: no credit is saved up for a burst beyond the next slot
    assert throttle.acquire() == 0.0 and throttle.acquire() == 0.5


def test_throttle_is_per_provider():
    limits = {"api.deepseek.com": 60, "*": 600}
    assert provider_of(None) == "api.openai.com" and provider_of("http://127.0.0.1:9/v1") == "127.0.0.1"
    deepseek = throttle_for("https://api.deepseek.com/v1", limits)
    assert deepseek is throttle_for("https://api.deepseek.com", limits) and deepseek.interval == 1.0
    assert throttle_for(None, limits).interval == 0.1
    assert throttle_for("https://api.deepseek.com", {"api.openai.com": 60}) is None


def test_llm_engine_requests_go_through_the_provider_throttle():
    replies = [answer({"quotes": []}) for _ in range(3)]
    with serve_llm(replies) as server:
        settings = Settings(llm_base_url=server.base_url, llm_api_key=SecretStr("sk-throttle-test"),
                            llm_model="test-model", llm_timeout_s=10, llm_requests_per_minute={"127.0.0.1": 7.0})
        engine = LLMEngine(settings)
        clock = FakeClock()
        engine._throttle._clock, engine._throttle._sleep = (lambda: clock.now), clock.sleep
        chunk = chunk_transcript(sample_transcript(), 10_000)[0]
        for _ in range(3):
            engine.propose_quotes(chunk, 3)
        assert len(server.chat_requests) == 3
    assert clock.slept == [pytest.approx(60 / 7), pytest.approx(60 / 7)]
