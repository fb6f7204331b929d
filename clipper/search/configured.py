"""Which search index the settings describe: CLIPPER_SEARCH_URL's PostgreSQL server, else SQLite in the store's
folder. Kept apart from the interface so that neither implementation imports this module back."""

from __future__ import annotations

from pathlib import Path

from clipper.config import Settings
from clipper.errors import SearchUnavailable
from clipper.search.backend import SearchIndex

SQLITE_NAME = "search.sqlite3"  # in the store's folder (CLIPPER_STORAGE_DIR)


def where(settings: Settings) -> str:
    """The index as people are told where it is: a path, or the PostgreSQL server without its password."""
    url = settings.search_url.get_secret_value() if settings.search_url else ""
    if url:
        from clipper.media.urls import redact_credentials

        return redact_credentials(url)
    return str(Path(settings.storage_dir) / SQLITE_NAME)


def open_index(settings: Settings) -> SearchIndex:
    """The index the settings describe: CLIPPER_SEARCH_URL's PostgreSQL server, else SQLite in the store's folder."""
    url = settings.search_url.get_secret_value() if settings.search_url else ""
    if not url:
        from clipper.search.sqlite import SqliteIndex

        return SqliteIndex(Path(settings.storage_dir) / SQLITE_NAME)
    if url.startswith(("postgresql://", "postgres://")):
        from clipper.search.postgres import PostgresIndex

        return PostgresIndex(url)
    raise SearchUnavailable(f"CLIPPER_SEARCH_URL must be a postgresql://… URL (or unset for SQLite in the store's "
                            f"folder), not {where(settings)!r}")
