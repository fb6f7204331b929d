"""Custom search attributes: registered by the worker, the demo and the tests; upserted on every change,
so Web UI lists and `starter.py list` can filter jobs (e.g. `ClipperState="failed"`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CLIPPER_STATE = SearchAttributeKey.for_keyword("ClipperState")  # queued running paused failed done cancelled
CLIPPER_STAGE = SearchAttributeKey.for_keyword("ClipperStage")
CLIPPER_PRIORITY = SearchAttributeKey.for_int("ClipperPriority")
CLIPPER_PROGRESS = SearchAttributeKey.for_int("ClipperProgress")  # 0-100
CLIPPER_SOURCE = SearchAttributeKey.for_keyword("ClipperSource")  # the media's host
# The media's title once the download knows it: a column people can read in the Web UI's list and `clipper list`.
CLIPPER_TITLE = SearchAttributeKey.for_keyword("ClipperTitle")
# Set at start on the workflows that serve jobs (naming speakers, circuit breakers): `ClipperKind IS NULL` in a
# list query leaves them out, so a person sees jobs and batches only.
CLIPPER_KIND = SearchAttributeKey.for_keyword("ClipperKind")
HELPER = "helper"
HELPER_ATTRIBUTES = TypedSearchAttributes([SearchAttributePair(CLIPPER_KIND, HELPER)])
SEARCH_ATTRIBUTES = (CLIPPER_STATE, CLIPPER_STAGE, CLIPPER_PRIORITY, CLIPPER_PROGRESS, CLIPPER_SOURCE, CLIPPER_TITLE,
                     CLIPPER_KIND)
TITLE_CHARS = 200  # a keyword is meant to be short; the full title is in the job's status and report


def source_host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "local").lower()
    except ValueError:
        return "unknown"
