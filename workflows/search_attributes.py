"""Custom search attributes: registered by the worker, the demo and the tests; upserted on every change,
so Web UI lists and `starter.py list` can filter jobs (e.g. `ClipperState="failed"`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from temporalio.common import SearchAttributeKey

CLIPPER_STATE = SearchAttributeKey.for_keyword("ClipperState")  # queued running paused failed done cancelled
CLIPPER_STAGE = SearchAttributeKey.for_keyword("ClipperStage")
CLIPPER_PRIORITY = SearchAttributeKey.for_int("ClipperPriority")
CLIPPER_PROGRESS = SearchAttributeKey.for_int("ClipperProgress")  # 0-100
CLIPPER_SOURCE = SearchAttributeKey.for_keyword("ClipperSource")  # the media's host
SEARCH_ATTRIBUTES = (CLIPPER_STATE, CLIPPER_STAGE, CLIPPER_PRIORITY, CLIPPER_PROGRESS, CLIPPER_SOURCE)


def source_host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "local").lower()
    except ValueError:
        return "unknown"
