"""The search index on PostgreSQL full-text search, for workers on several hosts sharing an S3 store: every host
indexes into, and searches, the one server `CLIPPER_SEARCH_URL` names (psycopg 3).

The text's words are found and folded in Python (`words`: letters and digits, lower case, accents dropped) before
PostgreSQL's `simple` configuration makes its tsvector, so no extension (unaccent) is needed and the words compare as
SQLite's tokenizer compares them; the query is built from the same quoted words (`<->` for the phrase, `&` for all
words, `:*` for the prefix), never from the person's text. Ranked by `ts_rank_cd` (among at most `CANDIDATES`
entries holding the words). A job's entries are replaced in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from clipper.errors import SearchUnavailable
from clipper.media.urls import redact_credentials
from clipper.search.backend import Ranked, SearchIndex
from clipper.search.documents import JobEntries
from clipper.search.query import SearchQuery, words

CONNECT_TIMEOUT_S = 10
SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS clipper_search_jobs(job_id text PRIMARY KEY, title text NOT NULL, "
     "created timestamptz NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS clipper_search_entries(id bigserial PRIMARY KEY, job_id text NOT NULL, "
     "kind text NOT NULL, start_s double precision NOT NULL, end_s double precision NOT NULL, label text, name text, "
     "speaker_key text NOT NULL, text text NOT NULL, tsv tsvector NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS clipper_search_entries_job ON clipper_search_entries(job_id)",
    "CREATE INDEX IF NOT EXISTS clipper_search_entries_tsv ON clipper_search_entries USING gin(tsv)",
)
# The rank is computed for at most CANDIDATES entries holding the words (filters applied), then the best of them
# joined: a word in a tenth of a thousand hours of talk would otherwise rank tens of thousands of rows per search.
CANDIDATES = 5000
SELECT = ("SELECT e.id, e.job_id, j.title, e.kind, e.start_s, e.end_s, e.label, e.name, e.text FROM "
          "(SELECT c.id, ts_rank_cd(c.tsv, to_tsquery('simple', %(q)s)) AS rank FROM "
          "(SELECT id, tsv FROM clipper_search_entries e WHERE e.tsv @@ to_tsquery('simple', %(q)s){filters} "
          "LIMIT %(candidates)s) c ORDER BY rank DESC, c.id LIMIT %(k)s) best "
          "JOIN clipper_search_entries e ON e.id = best.id JOIN clipper_search_jobs j ON j.job_id = e.job_id"
          "{since} ORDER BY best.rank DESC, e.id")


def _quoted(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"  # words are letters and digits: quoting is belt and braces


def phrase(words: list[str]) -> str:
    return " <-> ".join(_quoted(w) for w in words) + ":*"


def all_words(words: list[str]) -> str:
    return " & ".join(_quoted(w) for w in words) + ":*"


class PostgresIndex(SearchIndex):
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=False)
                with self._conn.transaction():
                    self._conn.execute("SELECT pg_advisory_xact_lock(1178810)")  # one schema creator at a time
                    for statement in SCHEMA:
                        self._conn.execute(statement)
            with self._conn.transaction():
                yield self._conn
        except psycopg.Error as err:
            if self._conn is not None and self._conn.broken:
                self._conn = None
            raise SearchUnavailable(f"the search index on {redact_credentials(self.url)} failed: "
                                    f"{redact_credentials(str(err).strip())}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def replace(self, job: JobEntries) -> int:
        with self._db() as db:
            self._remove(db, job.job_id)
            db.execute("INSERT INTO clipper_search_jobs(job_id, title, created) VALUES (%s, %s, %s)",
                       (job.job_id, job.title, job.created_at))
            rows = [(job.job_id, e.kind, e.start, e.end, e.label, e.name, e.speaker_key, e.text,
                     " ".join(words(e.text)))
                    for e in job.rows()]
            with db.cursor() as cur:
                cur.executemany("INSERT INTO clipper_search_entries(job_id, kind, start_s, end_s, label, name, "
                                "speaker_key, text, tsv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                                "to_tsvector('simple', %s))", rows)
            count = len(rows)
            return count

    def delete(self, job_id: str) -> int:
        with self._db() as db:
            return self._remove(db, job_id)

    @staticmethod
    def _remove(db: Any, job_id: str) -> int:
        count = db.execute("DELETE FROM clipper_search_entries WHERE job_id = %s", (job_id,)).rowcount
        db.execute("DELETE FROM clipper_search_jobs WHERE job_id = %s", (job_id,))
        return count

    phrase = staticmethod(phrase)
    all_words = staticmethod(all_words)

    @contextlib.contextmanager
    def ranking(self, query: SearchQuery) -> Iterator[Ranked]:
        filters, params = "", {"candidates": CANDIDATES}
        if query.job_id:
            filters, params["job"] = filters + " AND e.job_id = %(job)s", query.job_id
        if query.kind:
            filters, params["kind"] = filters + " AND e.kind = %(kind)s", query.kind
        if query.speaker:
            filters += " AND position(%(speaker)s in '|' || e.speaker_key || '|') > 0"
            params["speaker"] = f"|{query.speaker}|"
        since = ""
        if query.since:
            since, params["since"] = " WHERE j.created >= %(since)s", query.since
        sql = SELECT.format(filters=filters, since=since)
        with self._db() as db:
            yield lambda expression, k: db.execute(sql, {**params, "q": expression, "k": k})

    def job_ids(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT job_id FROM clipper_search_jobs ORDER BY job_id")]

    def size_bytes(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT pg_total_relation_size('clipper_search_entries') + "
                                  "pg_total_relation_size('clipper_search_jobs')").fetchone()[0])

