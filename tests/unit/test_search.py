"""The search index (clipper/search/): phrase and prefix queries, accents, FTS syntax as text, refusals, filters,
rebuild and delete, and a killed indexing that leaves no half index — on SQLite FTS5 and on a real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from clipper.errors import SearchQueryInvalid
from clipper.search import SearchQuery, index_job, reindex, unindex_job
from clipper.search.postgres import PostgresIndex
from clipper.search.sqlite import SqliteIndex
from clipper.store.local import ArtifactStore
from tests.helpers import ROOT
from tests.helpers.search import put_job, shape

LINES = [(0.0, 4.0, "S1", "Where did interest rates go this year?"),
         (4.0, 9.5, "S2", "Rates went up, and interest on savings followed."),
         (9.5, 12.0, "S1", "Le café était très bon à Zürich."),
         (12.0, 15.0, "S2", 'She said "NEAR" and -minus * star (AND) OR not.')]


def fresh_database(url: str) -> str:
    """The URL of a new, empty database of the session's PostgreSQL server."""
    import psycopg

    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request, tmp_path):
    """A factory of empty indexes of one kind (a PostgreSQL one: a fresh database of the session's server)."""
    if request.param == "sqlite":
        yield lambda: SqliteIndex(tmp_path / "search.sqlite3")
        return
    url = fresh_database(request.getfixturevalue("postgres_url"))
    opened: list[PostgresIndex] = []

    def make() -> PostgresIndex:
        opened.append(PostgresIndex(url))
        return opened[-1]

    yield make
    for index in opened:
        index.close()


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "store")
    put_job(store, "clip-one", LINES, title="Money talk", quotes=[(4.0, 9.5, "S2", "Rates went up")],
            chapters=[(0.0, 12.0, "Interest rates")], names={"S2": "Sheila"})
    put_job(store, "clip-two", [(1.0, 3.0, None, "Nothing about money here, only coffee.")], title="Coffee")
    return store


@pytest.fixture
def index(backend, store):
    index = backend()
    for job in ("clip-one", "clip-two"):
        index_job(index, store, job)
    yield index


def search(index, text, **filters):
    return index.search(SearchQuery.of(text, **filters))


def test_a_phrase_ranks_before_the_same_words_apart(index):
    hits = search(index, "interest rates")
    assert [(h.kind, h.start) for h in hits[:2]] in ([("transcript", 0.0), ("chapter", 0.0)],
                                                     [("chapter", 0.0), ("transcript", 0.0)])
    assert hits[2].start == 4.0 and hits[2].speaker == "Sheila"  # both words, not side by side
    assert hits[0].url in ("/jobs/clip-one?t=0",) and hits[0].title == "Money talk"
    assert "**interest** **rates**" in hits[0].text.lower()


def test_the_last_word_is_a_prefix(index):
    assert {(h.job_id, h.start) for h in search(index, "interest ra")} >= {("clip-one", 0.0)}
    assert [h.text for h in search(index, "savin")] == ["Rates went up, and interest on **savings** followed."]


def test_accents_and_case_do_not_matter(index):
    for query in ("cafe etait", "CAFÉ", "zurich", "ZÜRICH"):
        hits = search(index, query)
        assert [(h.start, h.speaker) for h in hits] == [(9.5, "S1")], query
    assert "**Zürich**" in search(index, "zurich")[0].text


@pytest.mark.parametrize("query", ['"NEAR"', "NEAR(", '-minus', "star *", '"said', "(AND) OR", 'near "* -'])
def test_fts_syntax_is_text(index, query):
    hits = search(index, query)
    assert [h.start for h in hits] == [12.0]


def test_no_words_is_refused_with_what_to_do():
    for query in ("", "   ", '"*-()', None):
        with pytest.raises(SearchQueryInvalid, match="no words"):
            SearchQuery.of(query)
    with pytest.raises(SearchQueryInvalid):
        SearchQuery.of("rates", kind="video")
    with pytest.raises(SearchQueryInvalid):
        SearchQuery.of("rates", limit=0)


def test_a_long_query_is_bounded(index):
    long = ("interest rates " * 100)[:1000]
    assert len(SearchQuery.of(long).words) == 16
    assert search(index, long) == search(index, "interest rates " * 8)
    with pytest.raises(SearchQueryInvalid, match="1000"):
        SearchQuery.of(long + "x")


def test_filters(index):
    assert {h.job_id for h in search(index, "money")} == {"clip-two"}
    assert {h.speaker for h in search(index, "rates", speaker="sheila")} == {"Sheila"}
    assert {h.speaker for h in search(index, "rates", speaker="s2")} == {"Sheila"}  # the label too
    assert {h.speaker for h in search(index, "rates", speaker="S1")} == {"S1"}
    assert {h.kind for h in search(index, "rates", kind="quote")} == {"quote"}
    assert search(index, "coffee", job_id="clip-one") == []
    assert len(search(index, "rates", limit=1)) == 1
    assert search(index, "rates", since=datetime.now(timezone.utc) + timedelta(days=1)) == []
    assert search(index, "rates", since=datetime.now(timezone.utc) - timedelta(days=7))


def test_indexing_again_replaces_and_delete_removes(index, store):
    before = shape(search(index, "rates"))
    assert index_job(index, store, "clip-one") == len(LINES) + 2
    assert shape(search(index, "rates")) == before
    assert unindex_job(index, "clip-one") == len(LINES) + 2
    assert search(index, "rates") == [] and search(index, "coffee")
    assert index.job_ids() == ["clip-two"]


def test_a_rebuilt_index_gives_the_same_hits(index, backend, store, tmp_path):
    queries = ("interest rates", "cafe", "coffee", "near")
    before = [shape(search(index, q)) for q in queries]
    index.close()
    for name in ("search.sqlite3", "search.sqlite3-wal", "search.sqlite3-shm"):  # SQLite: the files are gone
        (tmp_path / name).unlink(missing_ok=True)
    for job in index.job_ids():  # PostgreSQL: its rows are
        index.delete(job)
    unindex_job(index, "clip-gone")
    result = reindex(index, store)
    assert (result.jobs, result.dropped) == (2, 0)
    assert [shape(search(index, q)) for q in queries] == before
    assert index.size_bytes() > 0


def test_a_renamed_speaker_is_found_by_the_new_name(index, store):
    put_job(store, "clip-one", LINES, title="Money talk", names={"S1": "Diane", "S2": "Sheila"})
    index_job(index, store, "clip-one")
    assert {h.start for h in search(index, "rates", speaker="Diane")} == {0.0}


KILLED = """
import sys, time
from pathlib import Path
from clipper.search.documents import Entry, JobEntries
from clipper.search.postgres import PostgresIndex
from clipper.search.sqlite import SqliteIndex

class Slow(JobEntries):
    def rows(self):
        for i, e in enumerate(self.entries):
            if i == 500:
                Path(sys.argv[2]).touch()
                time.sleep(60)
            yield e

where = sys.argv[1]
index = PostgresIndex(where) if where.startswith("postgresql://") else SqliteIndex(Path(where))
entries = [Entry(kind="transcript", start=i, end=i + 1, text=f"replacement words {i}") for i in range(1000)]
index.replace(Slow(job_id="clip-one", title="t", created_at="2026-01-01T00:00:00Z", entries=entries))
"""


@pytest.mark.slow
def test_a_killed_indexing_leaves_the_old_entries_whole(backend, store, tmp_path):
    index = backend()
    index_job(index, store, "clip-one")
    before = shape(search(index, "rates"))
    index.close()
    marker = tmp_path / "halfway"  # the killed worker had removed the old entries (in its transaction) by then
    where = str(index.path) if isinstance(index, SqliteIndex) else index.url
    proc = subprocess.Popen([sys.executable, "-c", KILLED, where, str(marker)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the indexing never got half way"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    reopened = backend()
    assert shape(search(reopened, "rates")) == before
    assert search(reopened, "replacement") == []
    assert reopened.job_ids() == ["clip-one"]
    assert index_job(reopened, store, "clip-one") == len(LINES) + 2  # nothing of the killed one holds a lock
    assert shape(search(reopened, "rates")) == before


def test_a_word_in_very_many_entries_ranks_the_newest(backend, tmp_path, monkeypatch):
    from clipper.search import backend as shared

    monkeypatch.setattr(shared, "CANDIDATES", 2)
    store, index = ArtifactStore(tmp_path / "store"), backend()
    for n in range(3):  # the oldest line is the best (the shortest): past the bound, it is not ranked
        text = "same words" if n == 0 else "the same words, said again"
        put_job(store, f"clip-{n}", [(float(n), n + 1.0, None, text), (9.0, 10.0, None, "other")])
        index_job(index, store, f"clip-{n}")
    assert [h.job_id for h in search(index, "same words", limit=2)] == ["clip-2", "clip-1"]
    assert search(index, "same words", limit=3)[0].job_id == "clip-0"
    assert [h.job_id for h in search(index, "same", job_id="clip-0")] == ["clip-0"]  # the filter comes first


def test_an_index_made_before_the_prefix_indexes_is_made_again_on_first_use(store, tmp_path):
    import sqlite3

    from clipper.search import sqlite as sqlite_index

    path = tmp_path / "search.sqlite3"
    old = sqlite_index.FTS.replace("prefix='1 2 3', ", "")
    index_job(SqliteIndex(path), store, "clip-one")
    with contextlib.closing(sqlite3.connect(path)) as db:  # as an older clipper left it: no prefix indexes
        db.execute("DROP TABLE entries_fts")
        db.execute(old)
        db.execute("INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')")
        db.commit()
    index = SqliteIndex(path)
    assert [h.start for h in search(index, "interest r")][:2] == [0.0, 0.0]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert "prefix='1 2 3'" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'entries_fts'").fetchone()[0]


@pytest.mark.slow
def test_both_indexes_give_the_same_hits_in_the_same_order(store, tmp_path, postgres_url, monkeypatch):
    from clipper.search import backend as shared

    monkeypatch.setattr(shared, "CANDIDATES", 4)  # past the bound too: the same entries are ranked
    said = [line[3] for line in LINES] + ["Rates, rates and more rates.", "Interest only.", "Savings rates rose."]
    for n in range(6):
        lines = [(i * 4.0, i * 4.0 + 4, f"S{i % 3 + 1}", said[(i + n) % len(said)]) for i in range(12)]
        put_job(store, f"clip-{n}", lines, title=f"Episode {n}", names={"S2": "Sheila"},
                quotes=[lines[n]], chapters=[(0.0, 48.0, said[n])])
    indexes = [SqliteIndex(tmp_path / "search.sqlite3"), PostgresIndex(fresh_database(postgres_url))]
    for index in indexes:
        reindex(index, store)
    for text, filters in [("rates", {}), ("interest rates", {}), ("r", {}), ("interest ra", {"limit": 3}),
                          ("rates", {"speaker": "sheila"}), ("rates", {"kind": "quote"}), ("cafe", {}),
                          ("savings rates", {"job_id": "clip-2"}), ('"near" -minus', {})]:
        sqlite_hits, pg_hits = (search(index, text, **filters) for index in indexes)
        assert sqlite_hits == pg_hits and sqlite_hits, (text, filters)


@pytest.mark.slow
def test_a_postgresql_index_made_before_the_word_counts_gets_them_on_first_use(store, postgres_url):
    import psycopg

    from clipper.search import postgres

    url = fresh_database(postgres_url)
    index_job(PostgresIndex(url), store, "clip-one")
    before = shape(search(PostgresIndex(url), "interest ra"))
    with psycopg.connect(url, autocommit=True) as db:  # as an older clipper left it: no word counts
        db.execute("DROP TABLE clipper_search_terms")
    postgres._close_pools()  # a process started after the upgrade
    assert before and shape(search(PostgresIndex(url), "interest ra")) == before
