"""`GET /api/search`: where words were said, across every job (the CLI's `clipper search`, the same JSON).

Read through the client's `search` (the index of clipper/search/), like every other read. A query without a word,
or over 1,000 characters, is a 422 `SearchQueryInvalid`; an index that cannot be reached a 503 `SearchUnavailable`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from clipper.ops.stats import parse_duration
from clipper.search import KINDS, Hit
from clipper.search.query import LIMIT_DEFAULT, LIMIT_MAX, MAX_QUERY_CHARS
from clipper_app.client import ClipperClient
from clipper_app.web.problems import Problem
from clipper_app.web.security import require_reader

# `since`: a whole number of seconds, minutes, hours, days or weeks (what `parse_duration` takes, kept below the
# calendar's end).
SINCE_PATTERN = "^0{0,3}[1-9][0-9]{0,5}[smhdwSMHDW]$"
ERRORS = {code: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
          for code, text in ((401, "missing or wrong bearer token"),
                             (422, ("invalid input: a query without a word (letters or digits of any alphabet), "
                                    "or a filter out of range (SearchQueryInvalid)")))}

router = APIRouter(prefix="/api/search", tags=["search"], responses=ERRORS)


async def _client(request: Request) -> ClipperClient:
    return request.app.state.clipper


@router.get("", dependencies=[Depends(require_reader)], response_model=list[Hit])
async def search(q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS, description=(
                     "words that were said or written: matched in any case and without accents, side by side first, "
                     "the last word as a prefix; quotes, * and - are text like any other")),
                 speaker: str | None = Query(None, max_length=200, description="a speaker's name or label (S1)"),
                 job: str | None = Query(None, max_length=200, description="only this job"),
                 kind: Literal[KINDS] | None = Query(None, description="only transcript lines, quotes or chapters"),
                 since: str | None = Query(None, pattern=SINCE_PATTERN,
                                           description="only jobs whose media arrived within this long: 30m, 24h, 7d"),
                 limit: int = Query(LIMIT_DEFAULT, ge=1, le=LIMIT_MAX, description="at most this many hits, best first"),
                 clipper: ClipperClient = Depends(_client)) -> list[Hit]:
    """Hits, best first: `{job_id, title, kind, start, end, speaker, text, url}`, the matched words in `text`
    between `**`; `url` is the job's page playing from the hit's second."""
    return await clipper.search(q, speaker=speaker, job_id=job, kind=kind, limit=limit,
                                since=parse_duration(since) if since else None)
