"""The search index's interface (clipper/search/configured.py opens the one the settings describe).

Two implementations with the same hits: SQLite FTS5 in the store's folder (the default: Python's own sqlite3, no
server; clipper/search/sqlite.py), and PostgreSQL full-text search for several hosts sharing an S3 store
(`CLIPPER_SEARCH_URL=postgresql://…`; clipper/search/postgres.py). Each replaces a job's entries in one
transaction, so a reader (or a worker killed half way) never sees half a job: the old entries or the new ones.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, Self

from clipper.search.documents import JobEntries
from clipper.search.query import Hit, SearchQuery, hit

SINCE_FACTOR = 20  # with a `since`, the jobs' date is checked after the ranking: this many more are ranked
# A ranked search: (the backend's match expression, how many) → rows (entry id, job id, title, kind, start, end,
# label, name, text), best first.
Ranked = Callable[[str, int], Iterable[tuple[Any, ...]]]


class SearchIndex(ABC):
    """A full-text index of jobs' entries. Every method is blocking (call from a thread in async code)."""

    @abstractmethod
    def replace(self, job: JobEntries) -> int:
        """Put the job's entries in place of whatever the index had of it, in one transaction; returns how many."""

    @abstractmethod
    def delete(self, job_id: str) -> int:
        """Remove every entry of the job; returns how many there were."""

    def search(self, query: SearchQuery) -> list[Hit]:
        """The best hits first: entries holding the words as a phrase, then the others holding all the words."""
        expressions = [self.phrase(query.words)] + ([self.all_words(query.words)] if len(query.words) > 1 else [])
        seen: set[int] = set()
        hits: list[Hit] = []
        with self.ranking(query) as ranked:
            for expression in expressions:
                k = (query.limit + len(seen)) * (SINCE_FACTOR if query.since else 1)
                for row in ranked(expression, k):
                    if row[0] in seen or len(hits) >= query.limit:
                        continue
                    seen.add(row[0])
                    hits.append(hit(*row[1:], query=query))
                if len(hits) >= query.limit:
                    break
        return hits

    @staticmethod
    @abstractmethod
    def phrase(words: list[str]) -> str:
        """The backend's match expression for the words side by side in this order, the last as a prefix."""

    @staticmethod
    @abstractmethod
    def all_words(words: list[str]) -> str:
        """The backend's match expression for every word anywhere in the entry, the last as a prefix."""

    @abstractmethod
    def ranking(self, query: SearchQuery) -> contextlib.AbstractContextManager[Ranked]:
        """A connection for one search, as a `Ranked` with the query's filters applied."""

    @abstractmethod
    def job_ids(self) -> list[str]:
        """The jobs the index has entries of."""

    @abstractmethod
    def size_bytes(self) -> int:
        """What the index takes on disk."""

    def close(self) -> None:
        """Let go of the connection (a new call opens one again)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

