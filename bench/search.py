"""The search index at scale: 1,000 hour-long transcripts, SQLite FTS5 and PostgreSQL side by side.

    python -m bench.search [--jobs 1000] [--queries 400] [--backends sqlite,postgres]

Each job is an hour of transcript built from the committed real texts (tests/data/: the sample's reference, the
phone call's reference lines, Allison's prompts, the German sample), its sentences shuffled per job with a seed and
laid out as ~900 lines of 4 s (about 9,000 words an hour, a talker's pace) among up to four speakers, two of them
named, plus ten quotes and eight chapter titles: the same words recur across jobs, which is what makes a
search's posting lists long. Every job is written through `index_job`'s backend call (`replace`, one transaction),
timed one by one; then a mix of queries (one common word, a rare one, a phrase, a prefix, a speaker filter, a job
filter) is timed through `search` and the p50/p95 printed with the index's size. PostgreSQL is a throw-away
server of Debian's binaries (tests/helpers/postgres.py); without them its row says so.

A job's indexing is compared with the wall time of a whole hour-long job (`JOB_WALL_S`, docs/performance.md's
"Long jobs of real speech": 72 s for 1.05 h): the goal is ≤ 1 % of it, and a search's p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from clipper.search.backend import SearchIndex
from clipper.search.documents import Entry, JobEntries
from clipper.search.query import SearchQuery, words

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
HOUR_S = 3600.0
LINE_S = 4.0
JOB_WALL_S = 72.0  # a whole 1.05 h job on 2 cores (docs/performance.md, bench/long_job.py)
NAMES = ("Diane", "Sheila", "Allison", "Carlo")


def sentences() -> list[str]:
    """Every sentence of the committed real texts."""
    texts = [(DATA / "sample.txt").read_text(), (DATA / "german.txt").read_text()]
    texts += [p["text"] for p in json.loads((DATA / "real" / "allison.json").read_text())["prompts"]]
    texts += [" ".join(line.split()[5:]) for line in (DATA / "real" / "call.stm").read_text().splitlines()]
    found = [s.strip() for t in texts for s in re.split(r"(?<=[.?!])\s+", " ".join(t.split()))]
    return [s for s in found if len(words(s)) >= 2]


def hour_job(i: int, pool: list[str]) -> JobEntries:
    rng = random.Random(i)
    order = pool[:]
    rng.shuffle(order)
    speakers = [f"S{k}" for k in range(1, rng.randint(2, 4) + 1)]
    names = dict(zip(speakers, rng.sample(NAMES, 2)))
    entries, t, n = [], 0.0, 0
    while t < HOUR_S:
        text = " ".join(order[(n + k) % len(order)] for k in range(rng.randint(1, 2)))
        who = speakers[(n // rng.randint(1, 4)) % len(speakers)]
        entries.append(Entry(kind="transcript", start=t, end=t + LINE_S, text=text, label=who, name=names.get(who)))
        t, n = t + LINE_S, n + 1
    lines = list(entries)
    entries += [Entry(kind="quote", start=e.start, end=e.end, text=e.text, label=e.label, name=e.name)
                for e in rng.sample(lines, 10)]
    entries += [Entry(kind="chapter", start=c * HOUR_S / 8, end=(c + 1) * HOUR_S / 8,
                      text=" ".join(words(rng.choice(pool))[:4]).capitalize()) for c in range(8)]
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i)
    return JobEntries(job_id=f"clip-{i:016x}", title=f"Episode {i}", created_at=created, entries=entries)


def queries(pool: list[str], jobs: int, count: int) -> list[SearchQuery]:
    rng = random.Random(7)
    vocabulary = sorted({w for s in pool for w in words(s)})
    made = []
    for n in range(count):
        sentence = words(rng.choice(pool))
        start = rng.randrange(max(1, len(sentence) - 2))
        kind = n % 6
        if kind == 0:
            made.append(SearchQuery.of(rng.choice(vocabulary)))
        elif kind == 1:
            made.append(SearchQuery.of(" ".join(sentence[start:start + 3])))
        elif kind == 2:
            made.append(SearchQuery.of(" ".join(sentence[start:start + 2])[:-1]))  # the last word cut: a prefix
        elif kind == 3:
            made.append(SearchQuery.of(rng.choice(vocabulary), speaker=rng.choice(NAMES)))
        elif kind == 4:
            made.append(SearchQuery.of(rng.choice(vocabulary), job_id=f"clip-{rng.randrange(jobs):016x}"))
        else:
            made.append(SearchQuery.of(f'"{rng.choice(vocabulary)}" NEAR -{rng.choice(vocabulary)}*'))
    return made


def measure(name: str, index: SearchIndex, jobs: int, count: int) -> str:
    pool = sentences()
    build, rows = [], 0
    for i in range(jobs):
        job = hour_job(i, pool)
        started = time.perf_counter()
        rows += index.replace(job)
        build.append(time.perf_counter() - started)
    asked = queries(pool, jobs, count)
    for query in asked[:20]:  # warm the caches as a running service has them
        index.search(query)
    took = []
    for query in asked:
        started = time.perf_counter()
        index.search(query)
        took.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(took, n=20)[18]
    per_job = statistics.mean(build)
    return (f"| {name} | {jobs} | {rows:,} | {index.size_bytes() / 2**20:,.0f} MiB | {per_job * 1000:.0f} ms "
            f"({per_job / JOB_WALL_S:.2%}) | {statistics.quantiles(build, n=20)[18] * 1000:.0f} ms | "
            f"{statistics.median(took):.1f} ms | {p95:.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at start; "
          f"{len(sentences())} sentences of committed real text", flush=True)
    rows = [("| index | jobs (1 h each) | entries | size | build per job (of a 1 h job's 72 s) | build p95 | "
             "query p50 | query p95 |"), "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                from clipper.search.sqlite import SqliteIndex

                rows.append(measure("SQLite FTS5", SqliteIndex(Path(folder) / "search.sqlite3"), args.jobs,
                                    args.queries))
            else:
                from tests.helpers.postgres import MISSING, pg_binaries, postgres_server

                if pg_binaries() is None:
                    rows.append(f"| PostgreSQL | – | – | – | – | – | – | not run: {MISSING} |")
                    continue
                from clipper.search.postgres import PostgresIndex

                with postgres_server() as url:
                    index = PostgresIndex(url)
                    try:
                        rows.append(measure("PostgreSQL 15", index, args.jobs, args.queries))
                    finally:
                        index.close()
            print(rows[-1], flush=True)
    print(f"# load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
