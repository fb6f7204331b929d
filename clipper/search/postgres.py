"""The search index on PostgreSQL full-text search, for workers on several hosts sharing an S3 store: every host
indexes into, and searches, the one server `CLIPPER_SEARCH_URL` names (psycopg 3).

The text's words are found and folded in Python (`words`: letters and digits, lower case, accents dropped) before
PostgreSQL's `simple` configuration makes its tsvector, so no extension (unaccent) is needed and the words compare as
SQLite's tokenizer compares them; the query is built from the same quoted words (`<->` for the phrase, `&` for all
words, `:*` for the prefix), never from the person's text. A search takes the newest matches (from the GIN index,
or walking the newest entries when every word is common) and ranks them in Python like SQLite's
(clipper/search/backend.py). A job's entries, and its counts of words, are replaced in one transaction.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from clipper.errors import SearchUnavailable
from clipper.media.urls import redact_credentials
from clipper.search.backend import Newest, SearchIndex
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
    # How many entries of each job hold each word, written with the entries: a search asks it how common its words
    # are (byte order, so a prefix is a range of the primary key).
    ("CREATE TABLE IF NOT EXISTS clipper_search_terms(term text COLLATE \"C\" NOT NULL, job_id text NOT NULL, "
     "docs integer NOT NULL, PRIMARY KEY (term, job_id))"),
    "CREATE INDEX IF NOT EXISTS clipper_search_terms_job ON clipper_search_terms(job_id)",
)
# A search's words all in more than COMMON entries: the newest matches are found by walking the entries from the
# newest down (the primary key), stopping at the LIMIT; else from the GIN index: every entry holding the rarest word
# (one posting list, not the bitmap of every word starting with a short prefix), the whole query checked on those,
# then sorted. Walking costs ~CANDIDATES × entries / matches rows, the GIN index ~matches: they cross near
# √(CANDIDATES × entries), ~10,000 on a thousand hours.
COMMON = 10_000
NEWEST = ("SELECT e.id, e.job_id, j.title, e.kind, e.start_s, e.end_s, e.label, e.name, e.text FROM {source} e "
          "JOIN clipper_search_jobs j ON j.job_id = e.job_id WHERE e.tsv @@ to_tsquery('simple', %(q)s){filters} "
          "ORDER BY e.id DESC LIMIT %(n)s")
# Every entry holding the rarest word, from the GIN index (OFFSET 0 keeps the planner from walking the primary key).
FROM_GIN = ("(SELECT * FROM clipper_search_entries WHERE tsv @@ to_tsquery('simple', %(rarest)s) OFFSET 0)")
# How many entries hold a word (or words starting with a prefix), up to just over COMMON: the counts are summed in
# the primary key's order and the scan stops where the sum passes COMMON (a few rows for a common word); only a
# rarer word's are all summed.
DOCS = ("coalesce((SELECT docs FROM (SELECT sum(docs) OVER (ORDER BY term, job_id) AS docs FROM clipper_search_terms "
        "WHERE term >= %(lo{i})s AND term <= %(hi{i})s) t WHERE docs > %(common)s LIMIT 1), (SELECT "
        "coalesce(sum(docs), 0) FROM clipper_search_terms WHERE term >= %(lo{i})s AND term <= %(hi{i})s))")
# The words' counts, and the planner told what follows, in one round trip: walking, the primary key backwards
# whatever it guesses of a phrase (it has no statistics of phrases, and a sequential scan sorts every match); no
# parallel workers, whose start costs more than a search.
PLAN = ("WITH d AS MATERIALIZED (SELECT ARRAY[{docs}]::bigint[] AS docs), c AS MATERIALIZED (SELECT docs, CASE WHEN "
        "(SELECT min(x) FROM unnest(docs) x) > %(common)s THEN 'off' ELSE 'on' END AS gin FROM d) SELECT c.docs, "
        "set_config('enable_bitmapscan', c.gin, true), set_config('enable_seqscan', c.gin, true), "
        "set_config('enable_sort', c.gin, true), set_config('max_parallel_workers_per_gather', '0', true) FROM c")
COUNT_ALL = ("INSERT INTO clipper_search_terms(term, job_id, docs) SELECT w, job_id, count(*) FROM "
             "clipper_search_entries, unnest(tsvector_to_array(tsv)) AS w GROUP BY w, job_id")
LAST = chr(0x10FFFF)  # after every character: a prefix's range ends at prefix + LAST


def _quoted(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"  # words are letters and digits: quoting is belt and braces


def phrase(words: list[str]) -> str:
    return " <-> ".join(_quoted(w) for w in words) + ":*"


def all_words(words: list[str]) -> str:
    return " & ".join(_quoted(w) for w in words) + ":*"


# Connections per server URL, shared by every PostgresIndex of the process: `clipper web` and the workers open an
# index per search or job (clipper_app/client/search.py, activities/), and a connection (with the schema check) costs
# more than a search. Each is checked before it is handed out, so a restarted server costs a retry, not an error.
POOL_SIZE = 4
_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


def _pool(url: str) -> Any:
    import psycopg
    from psycopg_pool import ConnectionPool

    with _pools_lock:
        if url not in _pools:
            # The schema through a connection of its own first: an unreachable server fails at once, with its reason.
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(1178810)")  # one schema creator at a time
                counted = conn.execute("SELECT to_regclass('clipper_search_terms') IS NOT NULL").fetchone()[0]
                for statement in SCHEMA:
                    conn.execute(statement)
                if not counted:  # an index made by an older clipper: its words counted once, from the entries
                    conn.execute(COUNT_ALL)
            pool = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, open=False, timeout=CONNECT_TIMEOUT_S,
                                  check=ConnectionPool.check_connection,
                                  kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": False})
            pool.open()
            _pools[url] = pool
        return _pools[url]


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PostgresIndex(SearchIndex):
    def __init__(self, url: str) -> None:
        self.url = url

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        import psycopg

        try:
            with _pool(self.url).connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as err:
            raise SearchUnavailable(f"the search index on {redact_credentials(self.url)} failed: "
                                    f"{redact_credentials(str(err).strip())}") from None

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
            docs = Counter(w for row in rows for w in set(row[8].split()))
            with db.cursor() as cur:
                cur.executemany("INSERT INTO clipper_search_terms(term, job_id, docs) VALUES (%s, %s, %s)",
                                [(w, job.job_id, n) for w, n in sorted(docs.items())])
            return len(rows)

    def delete(self, job_id: str) -> int:
        with self._db() as db:
            return self._remove(db, job_id)

    @staticmethod
    def _remove(db: Any, job_id: str) -> int:
        db.execute("DELETE FROM clipper_search_terms WHERE job_id = %s", (job_id,))
        count = db.execute("DELETE FROM clipper_search_entries WHERE job_id = %s", (job_id,)).rowcount
        db.execute("DELETE FROM clipper_search_jobs WHERE job_id = %s", (job_id,))
        return count

    phrase = staticmethod(phrase)
    all_words = staticmethod(all_words)

    @contextlib.contextmanager
    def newest(self, query: SearchQuery) -> Iterator[Newest]:
        filters, params = "", {}
        if query.job_id:
            filters, params["job"] = filters + " AND e.job_id = %(job)s", query.job_id
        if query.kind:
            filters, params["kind"] = filters + " AND e.kind = %(kind)s", query.kind
        if query.speaker:
            filters += " AND position(%(speaker)s in '|' || e.speaker_key || '|') > 0"
            params["speaker"] = f"|{query.speaker}|"
        if query.since:
            filters, params["since"] = filters + " AND j.created >= %(since)s", query.since
        with self._db() as db:
            # One job's entries are few: its index finds them whatever the words. Else the rarest word decides.
            docs = self._docs(db, [] if query.job_id else query.words)
            if docs and min(docs) == 0:  # a word no entry holds: nothing to find
                yield lambda expression, n: []
                return
            if docs and min(docs) <= COMMON:
                rare = docs.index(min(docs))
                source = FROM_GIN
                params["rarest"] = _quoted(query.words[rare]) + (":*" if rare == len(docs) - 1 else "")
            else:
                source = "clipper_search_entries"
            sql = NEWEST.format(source=source, filters=filters)
            yield lambda expression, n: db.execute(sql, {**params, "q": expression, "n": n})

    @staticmethod
    def _docs(db: Any, terms: list[str]) -> list[int]:
        """How many entries hold each word (the last as a prefix), up to just over COMMON; the planner set for the
        way that follows (all over COMMON: walking)."""
        ranges = [(w, w) for w in terms[:-1]] + ([(terms[-1], terms[-1] + LAST)] if terms else [])
        docs = ", ".join(DOCS.format(i=i) for i in range(len(ranges)))
        params = {"common": COMMON, **{f"lo{i}": lo for i, (lo, _) in enumerate(ranges)},
                  **{f"hi{i}": hi for i, (_, hi) in enumerate(ranges)}}
        return list(db.execute(PLAN.format(docs=docs), params).fetchone()[0])

    def job_ids(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT job_id FROM clipper_search_jobs ORDER BY job_id")]

    def size_bytes(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT pg_total_relation_size('clipper_search_entries') + "
                                  "pg_total_relation_size('clipper_search_jobs') + "
                                  "pg_total_relation_size('clipper_search_terms')").fetchone()[0])

