"""What a search asks and what it finds: the query (its words, bounded, never FTS syntax), the filters, the hits.

A person's query is text, never a query language: every backend gets only the words of it, each quoted for its own
syntax, so `"`, `*`, `NEAR`, `-`, `AND`, parentheses and the like are text like any other (an unbalanced quote or a
stray `*` can never make a query fail, nor turn it into something else). Words are runs of letters and digits in
any alphabet; they are matched without regard to case or accents ("resume" finds "résumé"), the last one as a
prefix ("interest ra" finds "interest rates": people search as they type). Words that stand together in the text,
in the query's order, rank first; then every other entry that holds all the words.

Both backends (clipper/search/sqlite.py, postgres.py) fold text the same way (`fold`) and mark the matched words
the same way (`mark`), so they return the same hits.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from clipper.errors import SearchQueryInvalid

KINDS = ("transcript", "quote", "chapter")
Kind = Literal["transcript", "quote", "chapter"]
MAX_QUERY_CHARS = 1000  # a longer query is refused: nobody types more, and a pasted page is no search
MAX_WORDS = 16  # words of a query used: the rest of a long query adds no precision, only work
LIMIT_DEFAULT, LIMIT_MAX = 20, 500
MARK = "**"  # around each matched word of a hit's text (Markdown's bold: readable as it is in a terminal or JSON)
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower case without accents (NFKD, combining marks dropped): how both backends compare words."""
    if text.isascii():  # most text: nothing to decompose (the ranking folds every candidate of a search)
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    """The folded words of `text`, in order."""
    return _WORD.findall(fold(text))


class SearchQuery(BaseModel):
    """A checked search: `SearchQuery.of(...)` refuses an empty or overlong query with `SearchQueryInvalid`."""

    text: str
    words: list[str]
    speaker: str | None = None  # a speaker's name or label (S1), compared folded
    job_id: str | None = None
    since: datetime | None = None  # only jobs whose media arrived since then (aware, UTC)
    kind: Kind | None = None
    limit: int = LIMIT_DEFAULT

    @classmethod
    def of(cls, text: str | None, speaker: str | None = None, job_id: str | None = None,
           since: datetime | None = None, kind: str | None = None, limit: int | None = None) -> SearchQuery:
        text = text or ""
        if len(text) > MAX_QUERY_CHARS:
            raise SearchQueryInvalid(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS} are "
                                     "searched: use a few words from what was said")
        found = words(text)[:MAX_WORDS]
        if not found:
            raise SearchQueryInvalid("the query has no words to search for: give a word or a few from what was "
                                     "said, e.g. clipper search \"interest rates\"")
        if kind is not None and kind not in KINDS:
            raise SearchQueryInvalid(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        limit = LIMIT_DEFAULT if limit is None else limit
        if not 1 <= limit <= LIMIT_MAX:
            raise SearchQueryInvalid(f"limit must be from 1 to {LIMIT_MAX}, not {limit}")
        if speaker is not None and speaker.strip() and not words(speaker):
            raise SearchQueryInvalid(f"the speaker {speaker!r} has no letters or digits: give a name or a label (S1)")
        speaker = " ".join(words(speaker or "")) or None
        return cls(text=text, words=found, speaker=speaker, job_id=job_id or None, since=since, kind=kind,
                   limit=limit)


class Hit(BaseModel):
    """One place a query was found: a transcript line, a quote or a chapter title of a job, and where to hear it."""

    job_id: str
    title: str
    kind: Kind
    start: float
    end: float
    speaker: str | None = Field(None, description="the name people gave the speaker, else the label (S1, …)")
    text: str = Field(description="the entry's text, every matched word between ** and **")
    url: str = Field(description="the job's page at the moment: /jobs/<id>?t=<seconds>")


def page_url(job_id: str, start: float) -> str:
    """The job page playing from `start`, truncated to the second so the words are heard from their beginning."""
    return f"/jobs/{job_id}?t={max(0, int(start))}"


def mark(text: str, query: SearchQuery) -> str:
    """`text` with each word the query matched between `MARK`s (the last query word as a prefix)."""
    exact, prefix = set(query.words[:-1]), query.words[-1]
    out, last = [], 0
    for match in _WORD.finditer(text):
        token = fold(match.group())
        if token in exact or token.startswith(prefix):
            out.append(text[last:match.start()] + MARK + match.group() + MARK)
            last = match.end()
    return "".join(out) + text[last:]


def hit(job_id: str, title: str | None, kind: str, start: float, end: float, label: str | None,
        name: str | None, text: str, query: SearchQuery) -> Hit:
    return Hit(job_id=job_id, title=title or job_id, kind=kind, start=start, end=end, speaker=name or label,
               text=mark(text, query), url=page_url(job_id, start))
