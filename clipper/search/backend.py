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
from clipper.search.query import Hit, SearchQuery, hit, words

# A pass of a search ranks the newest CANDIDATES entries matching it (or `limit`, if more): both indexes hand those
# over without scoring every match (a word in a tenth of a thousand hours of talk is in ~100,000 entries), and the
# ranking below is the same Python for both, so they give the same hits in the same order.
CANDIDATES = 100
K1, B = 1.2, 0.75  # bm25's term-frequency saturation and length normalisation (the usual values)
# The newest matches: (the backend's match expression, how many) → rows (entry id, job id, title, kind, start, end,
# label, name, text), the newest (highest id) first, the query's filters applied.
Newest = Callable[[str, int], Iterable[tuple[Any, ...]]]


def best(rows: list[tuple[Any, ...]], query: SearchQuery) -> list[tuple[Any, ...]]:
    """The rows best first: bm25's term frequency and length parts over the candidates, every query word weighing
    the same (no idf: within one pass every candidate holds every word, and it would only weigh one word's
    repetitions against another's), newer first among equals."""
    exact, prefix = set(query.words[:-1]), query.words[-1]
    tokens = [words(row[8]) for row in rows]
    mean = sum(map(len, tokens)) / len(tokens) if tokens else 1.0

    def score(found: list[str]) -> float:
        norm = K1 * (1 - B + B * len(found) / (mean or 1.0))
        counts = [found.count(w) for w in exact] + [sum(t.startswith(prefix) for t in found)]
        return sum(f * (K1 + 1) / (f + norm) for f in counts)

    scores = [score(found) for found in tokens]
    return [rows[i] for i in sorted(range(len(rows)), key=lambda i: (-scores[i], -rows[i][0]))]


class SearchIndex(ABC):
    """A full-text index of jobs' entries. Every method is blocking (call from a thread in async code)."""

    @abstractmethod
    def replace(self, job: JobEntries) -> int:
        """Put the job's entries in place of whatever the index had of it, in one transaction; returns how many."""

    @abstractmethod
    def delete(self, job_id: str) -> int:
        """Remove every entry of the job; returns how many there were."""

    def search(self, query: SearchQuery) -> list[Hit]:
        """The best hits first: entries holding the words as a phrase, then the others holding all the words; each
        pass ranks its newest `CANDIDATES` matches (`best`)."""
        expressions = [self.phrase(query.words)] + ([self.all_words(query.words)] if len(query.words) > 1 else [])
        seen: set[int] = set()
        hits: list[Hit] = []
        with self.newest(query) as newest:
            for expression in expressions:
                rows = [r for r in newest(expression, max(CANDIDATES, query.limit) + len(seen)) if r[0] not in seen]
                for row in best(rows, query)[:query.limit - len(hits)]:
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
    def newest(self, query: SearchQuery) -> contextlib.AbstractContextManager[Newest]:
        """A connection for one search, as a `Newest` with the query's filters applied."""

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

