"""Reads remembered for a moment: one fetch answers every caller who asks for the same thing at the same time.

A web page polls each job's status every second, and a busy server gets the same read from many clients at
once; each read is a round trip to Temporal (a status query even needs a worker to replay the job). `Recent`
keeps a value for `max_age_s` seconds after the fetch that produced it began, and while a fetch is under way,
every other caller of the same key waits for that one instead of starting its own: fifty requests at once are
one query. With `max_age_s=0` nothing is kept, only concurrent callers share (the library client's default:
every call sees the server as it is when the call starts, or one already in flight). `None` keeps values until
they are evicted (least recently used first, beyond `size`) or forgotten: what a closed job left never changes.

`forget(key)` drops a value and detaches a fetch in flight (its answer is then not kept), so a write through
this client (a control, a delete) is seen by the next read at once. Errors are never kept: the next caller
tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, max_age_s: float | None, size: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s, self.size, self.clock = max_age_s, size, clock
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._pending: dict[K, asyncio.Task[V]] = {}
        self.fetches = 0  # fetches started: what a test (or a curious operator) counts

    def fresh(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when a value for `key` is kept and young enough to serve."""
        hit = self._values.get(key)
        if hit is None:
            return False, None
        if self.max_age_s is not None and self.clock() - hit[0] >= self.max_age_s:
            del self._values[key]
            return False, None
        self._values.move_to_end(key)
        return True, hit[1]

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The kept value, or the answer of the fetch in flight for `key`, or of a new `fetch()`. A caller that
        is cancelled stops waiting; the shared fetch goes on for the others."""
        found, value = self.fresh(key)
        if found:
            return value  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        task = self._pending.get(key)
        if task is None or task.get_loop() is not loop:  # a fetch of another (ended) event loop is no one's
            task = loop.create_task(self._fetch(key, fetch))
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _fetch(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        self.fetches += 1
        started = self.clock()
        mine = asyncio.current_task()
        try:
            value = await fetch()
        finally:
            current = self._pending.get(key) is mine
            if current:
                del self._pending[key]
        if current and (self.max_age_s is None or self.max_age_s > 0):
            self.put(key, value, started)
        return value

    def put(self, key: K, value: V, at: float | None = None) -> None:
        self._values[key] = (self.clock() if at is None else at, value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def forget(self, key: K) -> None:
        self._values.pop(key, None)
        self._pending.pop(key, None)

    def forget_where(self, match: Callable[[K], bool]) -> None:
        """Forget every key `match` accepts (e.g. every run of one job)."""
        for key in [k for k in (*self._values, *self._pending) if match(k)]:
            self.forget(key)

    def clear(self) -> None:
        self._values.clear()
        self._pending.clear()
