"""Run one engine call per chunk, a bounded number at a time, with progress and stop checks."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Sequence
from typing import TypeVar

from clipper.asr.base import StopRequested
from clipper.errors import LLMBadOutput

T = TypeVar("T")
R = TypeVar("R")


def map_chunks(
    items: Sequence[T],
    fn: Callable[[T], R],
    concurrency: int,
    on_done: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.25,
    tolerate_bad_output: bool = True,
) -> tuple[dict[int, R], list[int]]:
    """`fn(item)` for every item with at most `concurrency` calls in flight.

    Returns (results by item position, positions whose call raised `LLMBadOutput`). Those are tolerated
    (unless `tolerate_bad_output` is false) only while some other item succeeded: if every item failed that
    way, the last error is raised so the stage retries. Any other error cancels the work not yet started
    and propagates. `on_done(done, total)` is called after each item; when `should_stop()` turns true,
    pending work is cancelled and `StopRequested` is raised (calls already running finish in the background).
    """
    total = len(items)
    results: dict[int, R] = {}
    failed: list[int] = []
    last_bad: LLMBadOutput | None = None
    if not total:
        return results, failed
    pool = cf.ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="clipper-text")
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=poll_s, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except LLMBadOutput as exc:
                    if not tolerate_bad_output:
                        raise
                    failed.append(i)
                    last_bad = exc
                if on_done is not None:
                    on_done(len(results) + len(failed), total)
            if pending and should_stop is not None and should_stop():
                raise StopRequested("text stage stopped on request")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if not results and last_bad is not None:
        raise last_bad
    return results, sorted(failed)
