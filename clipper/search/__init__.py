"""Full-text search over every job's transcript lines, quotes and chapter titles (docs/search.md).

`open_index(settings)` is the index the settings describe (SQLite FTS5 in the store's folder, or PostgreSQL with
CLIPPER_SEARCH_URL); `SearchQuery.of(...)` checks a search; `index_job`/`unindex_job`/`reindex` keep the index in step
with the store. Plain Python, no Temporal: the `index` stage, `render_names`, the client's import and delete and
`clipper reindex` all call these functions.
"""

from clipper.search.backend import SearchIndex
from clipper.search.configured import open_index, where
from clipper.search.indexing import Reindexed, index_job, reindex, unindex_job
from clipper.search.query import KINDS, Hit, SearchQuery

__all__ = ["KINDS", "Hit", "Reindexed", "SearchIndex", "SearchQuery", "index_job", "open_index", "reindex",
           "unindex_job", "where"]
