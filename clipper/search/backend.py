"""The search index's interface (clipper/search/configured.py opens the one the settings describe).

Two implementations with the same hits: SQLite FTS5 in the store's folder (the default: Python's own sqlite3, no
server; clipper/search/sqlite.py), and PostgreSQL full-text search for several hosts sharing an S3 store
(`CLIPPER_SEARCH_URL=postgresql://…`; clipper/search/postgres.py). Each replaces a job's entries in one
transaction, so a reader (or a worker killed half way) never sees half a job: the old entries or the new ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from clipper.search.documents import JobEntries
from clipper.search.query import Hit, SearchQuery

class SearchIndex(ABC):
    """A full-text index of jobs' entries. Every method is blocking (call from a thread in async code)."""

    @abstractmethod
    def replace(self, job: JobEntries) -> int:
        """Put the job's entries in place of whatever the index had of it, in one transaction; returns how many."""

    @abstractmethod
    def delete(self, job_id: str) -> int:
        """Remove every entry of the job; returns how many there were."""

    @abstractmethod
    def search(self, query: SearchQuery) -> list[Hit]:
        """The best hits first: entries holding the words as a phrase, then the others holding all the words."""

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

