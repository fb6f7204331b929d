"""`Recent` (clipper_app/client/recent.py), the client's kept reads: concurrent gets share one fetch, a value is
served while young enough, `forget` drops it (and the answer of a fetch in flight), errors are never kept. A
made-up clock: no test waits for time to pass."""

from __future__ import annotations

import asyncio

import pytest

from clipper_app.client.recent import Recent
from tests.helpers import run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A fetch that counts its calls and answers when the test opens its gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.error: Exception | None = None

    async def fetch(self) -> str:
        self.calls += 1
        call = self.calls
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return f"answer {call}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_concurrent_gets_share_one_fetch():
    async def body():
        cache: Recent[str, str] = Recent(1.0, clock=Clock())
        source = Source()
        waiting = [asyncio.create_task(cache.get("job", source.fetch)) for _ in range(50)]
        await settle()
        assert source.calls == 1 and not any(t.done() for t in waiting)
        source.gate.set()
        assert await asyncio.gather(*waiting) == ["answer 1"] * 50
        assert source.calls == 1 and cache.fetches == 1
        assert await cache.get("other", source.fetch) == "answer 2"  # another key: its own fetch

    run(body())


def test_a_value_is_served_until_it_is_max_age_old():
    async def body():
        clock = Clock()
        cache: Recent[str, str] = Recent(1.0, clock=clock)
        source = Source()
        source.gate.set()
        assert await cache.get("job", source.fetch) == "answer 1"
        clock.now += 0.9
        assert await cache.get("job", source.fetch) == "answer 1"
        clock.now += 0.1  # 1.0 s since the fetch began: too old
        assert await cache.get("job", source.fetch) == "answer 2"
        assert source.calls == 2

    run(body())


def test_max_age_zero_only_shares_fetches_in_flight():
    async def body():
        cache: Recent[str, str] = Recent(0.0, clock=Clock())
        source = Source()
        first = [asyncio.create_task(cache.get("job", source.fetch)) for _ in range(3)]
        await settle()
        source.gate.set()
        assert await asyncio.gather(*first) == ["answer 1"] * 3
        assert await cache.get("job", source.fetch) == "answer 2"  # nothing kept once answered

    run(body())


def test_kept_for_good_until_forgotten_or_evicted():
    async def body():
        clock = Clock()
        cache: Recent[str, str] = Recent(None, size=2, clock=clock)
        source = Source()
        source.gate.set()
        assert await cache.get("a", source.fetch) == "answer 1"
        clock.now += 10_000
        assert await cache.get("a", source.fetch) == "answer 1"
        cache.forget("a")
        assert await cache.get("a", source.fetch) == "answer 2"
        await cache.get("b", source.fetch)
        await cache.get("c", source.fetch)  # beyond size 2: "a", the least recently used, goes
        assert cache.fresh("a") == (False, None) and cache.fresh("c") == (True, "answer 4")
        cache.forget_where(lambda key: key in ("b", "c"))
        assert cache.fresh("b") == (False, None) and cache.fresh("c") == (False, None)

    run(body())


def test_forget_during_a_fetch_keeps_its_answer_out():
    async def body():
        cache: Recent[str, str] = Recent(60.0, clock=Clock())
        source = Source()
        before = asyncio.create_task(cache.get("job", source.fetch))
        await settle()
        cache.forget("job")  # a write was sent meanwhile: what is being fetched may predate it
        after = asyncio.create_task(cache.get("job", source.fetch))
        await settle()
        source.gate.set()
        assert await before == "answer 1" and await after == "answer 2"
        assert await cache.get("job", source.fetch) == "answer 2"  # the fetch begun after the write is kept

    run(body())


def test_errors_reach_every_waiter_and_are_not_kept():
    async def body():
        cache: Recent[str, str] = Recent(60.0, clock=Clock())
        source = Source()
        source.error = RuntimeError("server gone")
        waiting = [asyncio.create_task(cache.get("job", source.fetch)) for _ in range(3)]
        await settle()
        source.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert [str(r) for r in results] == ["server gone"] * 3 and source.calls == 1
        source.error = None
        assert await cache.get("job", source.fetch) == "answer 2"

    run(body())


def test_a_cancelled_caller_does_not_cancel_the_shared_fetch():
    async def body():
        cache: Recent[str, str] = Recent(60.0, clock=Clock())
        source = Source()
        leaving = asyncio.create_task(cache.get("job", source.fetch))
        staying = asyncio.create_task(cache.get("job", source.fetch))
        await settle()
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        source.gate.set()
        assert await staying == "answer 1" and source.calls == 1

    run(body())


def test_a_fetch_left_by_an_ended_event_loop_is_not_joined():
    cache: Recent[str, str] = Recent(60.0, clock=Clock())

    async def abandoned():
        source = Source()  # never answers: its loop ends with the fetch in flight
        task = asyncio.create_task(cache.get("job", source.fetch))
        await settle()
        task.cancel()

    run(abandoned())

    async def later():
        source = Source()
        source.gate.set()
        return await cache.get("job", source.fetch)

    assert run(later()) == "answer 1"
