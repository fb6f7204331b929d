"""Requests per minute to one LLM provider, per worker process (CLIPPER_LLM_REQUESTS_PER_MINUTE).

Requests are spaced evenly (60 / rate seconds apart) rather than allowed in bursts: a provider's limit is
usually counted over short windows, and the chunks of a long transcript would otherwise all go at once.
Across several worker processes, `CLIPPER_LLM_ACTIVITIES_PER_S` (a task-queue rate limit the Temporal
server enforces on the llm pool) is the global brake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

DEFAULT_PROVIDER = "api.openai.com"  # where the openai SDK goes without a base URL


class RequestThrottle:
    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.interval = 60.0 / per_minute
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until this request may go; return the seconds waited. Threads are served in arrival order
        of their reservations: each reserves the next free slot under the lock, then sleeps outside it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


def provider_of(base_url: str | None) -> str:
    return (urlparse(base_url).hostname or DEFAULT_PROVIDER) if base_url else DEFAULT_PROVIDER


_throttles: dict[tuple[str, float], RequestThrottle] = {}
_registry_lock = threading.Lock()


def throttle_for(base_url: str | None, limits: dict[str, float]) -> RequestThrottle | None:
    """The process-wide throttle of the provider behind `base_url`: its own limit, else the "*" limit."""
    provider = provider_of(base_url)
    rate = limits.get(provider, limits.get("*", 0.0))
    if not rate or rate <= 0:
        return None
    with _registry_lock:
        return _throttles.setdefault((provider, rate), RequestThrottle(rate))
