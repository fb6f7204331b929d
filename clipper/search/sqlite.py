"""The default search index: SQLite FTS5 in the store's folder, with Python's own sqlite3 (no server).

The entries are a plain table; the FTS5 table indexes their text (external content: the text is stored once) with
the `unicode61` tokenizer folding case and accents (`remove_diacritics 2`); a search takes the newest matches from
it and ranks them in Python (clipper/search/backend.py). A job's entries
are replaced in one `BEGIN IMMEDIATE` transaction: a worker killed half way leaves the journal to roll back, so the
index has the job's old entries or its new ones, never half of them. WAL lets searches run while a job is indexed,
and several processes of one host (workers, `clipper web`) share the file, waiting for each other's writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from clipper.errors import SearchUnavailable
from clipper.search.backend import Newest, SearchIndex
from clipper.search.documents import JobEntries
from clipper.search.query import SearchQuery, words

# prefix='1 2 3': prefixes of up to three letters are indexed as terms of their own, so `interest r` walks one
# doclist lazily instead of merging those of every word starting with r (hundreds of milliseconds on a thousand hours).
FTS = ("CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(text, tags, content='entries', content_rowid='id', "
       "prefix='1 2 3', tokenize=\"unicode61 remove_diacritics 2\")")
BUSY_TIMEOUT_S = 30.0  # another process writing: wait this long for it before giving up (SearchUnavailable)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs(job_id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, kind TEXT NOT NULL, "
     "start REAL NOT NULL, end_s REAL NOT NULL, label TEXT, name TEXT, speaker_key TEXT NOT NULL, text TEXT NOT NULL, "
     "tags TEXT NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS entries_job ON entries(job_id)",
    FTS,
)
# The newest matches: FTS5 walks its doclists from the highest rowid down and stops at the LIMIT (no score is computed
# for any match), then the few rows are joined. Filters on job, kind and speaker are tags in the same MATCH; the
# exact checks after it (`+e.job_id`: no index, the full-text one drives) rarely drop a row.
NEWEST = ("SELECT e.id, e.job_id, j.title, e.kind, e.start, e.end_s, e.label, e.name, e.text FROM entries_fts f "
          "JOIN entries e ON e.id = f.rowid JOIN jobs j ON j.job_id = e.job_id WHERE entries_fts MATCH ?{checks} "
          "ORDER BY f.rowid DESC LIMIT ?")


def tag(prefix: str, value: str) -> str:
    """One token of the tags column: a filter's value as the tokenizer keeps it (folded letters and digits)."""
    return prefix + "".join(words(value))


def tags(job_id: str, kind: str, label: str | None, name: str | None) -> str:
    return " ".join([tag("job", job_id), tag("kind", kind),
                     *(tag("spk", v) for v in (label, name) if v and words(v))])


def phrase(terms: list[str]) -> str:
    """The words side by side in this order, the last as a prefix; every word quoted, so nothing is syntax."""
    return '{text}: "' + " ".join(terms) + '" *'


def all_words(terms: list[str]) -> str:
    """Every word anywhere in the entry, the last as a prefix."""
    return "{text}: (" + " AND ".join(f'"{w}"' for w in terms) + " *)"


def filters(query: SearchQuery) -> str:
    """The query's job, kind and speaker as tags the entries must carry (quoted: letters and digits only)."""
    wanted = [tag("job", query.job_id) if query.job_id else "", tag("kind", query.kind) if query.kind else "",
              tag("spk", query.speaker) if query.speaker else ""]
    return "".join(f' AND {{tags}}: "{t}"' for t in wanted if t)


class SqliteIndex(SearchIndex):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._ready = self._ready and self.path.exists()  # a deleted index is made again (`clipper reindex`)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise SearchUnavailable(f"cannot open the search index {self.path}: {err}") from None
        try:
            if not self._ready:
                db.execute("PRAGMA journal_mode=WAL")
                for statement in SCHEMA:
                    db.execute(statement)
                self._upgrade(db)
                self._ready = True
            yield db
        except sqlite3.DatabaseError as err:
            if db.in_transaction:
                db.rollback()
            raise SearchUnavailable(f"the search index {self.path} failed: {err} (if it is damaged, delete the "
                                    "file and run `clipper reindex`)") from None
        finally:
            db.close()

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """An index made before the prefix indexes: its full-text table made again from the entries (once)."""
        made = db.execute("SELECT sql FROM sqlite_master WHERE name = 'entries_fts'").fetchone()
        if made and "prefix=" not in made[0]:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TABLE entries_fts")
            db.execute(FTS)
            db.execute("INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')")
            db.execute("COMMIT")

    def replace(self, job: JobEntries) -> int:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            self._remove(db, job.job_id)
            db.execute("INSERT INTO jobs(job_id, title, created) VALUES (?, ?, ?)",
                       (job.job_id, job.title, job.created_at.timestamp()))
            count = db.executemany(
                "INSERT INTO entries(job_id, kind, start, end_s, label, name, speaker_key, text, tags) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((job.job_id, e.kind, e.start, e.end, e.label, e.name, e.speaker_key, e.text,
                  tags(job.job_id, e.kind, e.label, e.name)) for e in job.rows()),
            ).rowcount
            db.execute("INSERT INTO entries_fts(rowid, text, tags) SELECT id, text, tags FROM entries WHERE job_id = ?",
                       (job.job_id,))
            db.execute("COMMIT")
            return count

    def delete(self, job_id: str) -> int:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            count = self._remove(db, job_id)
            db.execute("COMMIT")
            return count

    @staticmethod
    def _remove(db: sqlite3.Connection, job_id: str) -> int:
        # External content: the index is told each row's old text before the row goes.
        db.execute("INSERT INTO entries_fts(entries_fts, rowid, text, tags) SELECT 'delete', id, text, tags "
                   "FROM entries WHERE job_id = ?", (job_id,))
        count = db.execute("DELETE FROM entries WHERE job_id = ?", (job_id,)).rowcount
        db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        return count

    phrase = staticmethod(phrase)
    all_words = staticmethod(all_words)

    @contextlib.contextmanager
    def newest(self, query: SearchQuery) -> Iterator[Newest]:
        # The exact filters again on the joined rows: a tag is the value's letters and digits only.
        checks, params = "", []
        if query.job_id:
            checks, params = checks + " AND +e.job_id = ?", [*params, query.job_id]
        if query.since:
            checks, params = checks + " AND j.created >= ?", [*params, query.since.timestamp()]
        if query.speaker:
            checks += " AND instr('|' || e.speaker_key || '|', ?) > 0"
            params.append(f"|{query.speaker}|")
        sql = NEWEST.format(checks=checks)
        wanted = filters(query)
        with self._db() as db:
            yield lambda expression, n: db.execute(sql, [expression + wanted, *params, n])

    def job_ids(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT job_id FROM jobs ORDER BY job_id")]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
