"""Search over every job (`clipper search`, `GET /api/search`, the pages' search box), and rebuilding the index
(`clipper reindex`). A part of `ClipperClient`.

`Searcher(settings)` has the same methods without a Temporal client. The index is read where the settings say it is (clipper/search/: SQLite in the store's folder, or the PostgreSQL
server of CLIPPER_SEARCH_URL), not through Temporal: a search needs no worker and no server. The client keeps it
in step where the client changes a job's outputs itself: an import indexes the job, a delete removes its entries.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import structlog

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.search import Hit, Reindexed, SearchQuery, index_job, open_index, reindex, unindex_job
from clipper.store.local import ArtifactStore
from clipper_app.client.files import JobFiles


class SearchMethods:
    """Needs only `settings` and `store`: a part of `ClipperClient`, and of `Searcher` (no Temporal server)."""

    settings: Settings
    store: ArtifactStore  # OutputMethods' (the configured store)

    async def search(self, query: str, speaker: str | None = None, job_id: str | None = None,
                     since: timedelta | datetime | None = None, kind: str | None = None,
                     limit: int | None = None) -> list[Hit]:
        """Where the query's words were said or written, best first: `{job_id, title, kind, start, end, speaker,
        text, url}` with the matched words marked `**…**`. `since`: jobs whose media arrived within that long (or
        since then). `SearchQueryInvalid` for a query without words or over 1,000 characters."""
        if isinstance(since, timedelta):
            try:
                since = datetime.now(timezone.utc) - since
            except OverflowError:  # longer ago than the calendar goes: every job
                since = None
        checked = SearchQuery.of(query, speaker=speaker, job_id=job_id, since=since, kind=kind, limit=limit)
        return await asyncio.to_thread(self._search, checked)

    def _search(self, query: SearchQuery) -> list[Hit]:
        with open_index(self.settings) as index:
            return index.search(query)

    async def reindex(self) -> Reindexed:
        """Rebuild the index from the store: every job indexed again, the entries of jobs it no longer has dropped."""
        def run() -> Reindexed:
            with open_index(self.settings) as index:
                return reindex(index, self.store)

        return await asyncio.to_thread(run)

    async def index_job(self, job_id: str) -> int:
        """Index one job again from the store (after an import)."""
        def run() -> int:
            with open_index(self.settings) as index:
                return index_job(index, self.store, job_id)

        return await asyncio.to_thread(run)

    async def unindex_job(self, job_id: str) -> int:
        def run() -> int:
            with open_index(self.settings) as index:
                return unindex_job(index, job_id)

        return await asyncio.to_thread(run)

    async def index_quietly(self, job_id: str) -> None:
        """Index a job whose files just arrived (an import): a failure is logged, not raised, since the job itself
        is in place; `clipper reindex` catches up."""
        try:
            await self.index_job(job_id)
        except ClipperError as err:
            structlog.get_logger().warning("search.index_failed", job_id=job_id, error=err.type_name,
                                           message=err.message, hint="run `clipper reindex` once the index is back")


class Searcher(SearchMethods):
    """Search and reindex where no Temporal server is needed (`clipper search`, `clipper reindex`), like `show`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = JobFiles(settings).store
