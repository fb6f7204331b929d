"""Keeping the index in step with the store: one plain function per event, called wherever a job's outputs change.

- `index_job`: after the report (the `index` stage), after speakers are named (`render_names`), after an import;
  reads the job's current files and replaces its entries (idempotent: the same store gives the same entries).
- `unindex_job`: a deleted job's entries go with its files.
- `reindex`: `clipper reindex` rebuilds every job's entries from the store (after a restore, a move to another
  backend, or a deleted index) and drops the entries of jobs the store no longer has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clipper.search.backend import SearchIndex
from clipper.search.documents import job_entries
from clipper.store.local import ArtifactStore


def index_job(index: SearchIndex, store: ArtifactStore, job_id: str) -> int:
    """Replace the job's entries by what its store holds now; returns how many (0, and none kept, without a
    transcript)."""
    entries = job_entries(store, job_id)
    if entries is None:
        index.delete(job_id)
        return 0
    return index.replace(entries)


def unindex_job(index: SearchIndex, job_id: str) -> int:
    return index.delete(job_id)


@dataclass
class Reindexed:
    jobs: int  # jobs indexed (with a transcript)
    entries: int
    dropped: int  # jobs the index had that the store no longer has


def reindex(index: SearchIndex, store: ArtifactStore,
            progress: Callable[[str, int], None] | None = None) -> Reindexed:
    """Every job of the store indexed again; the entries of jobs it no longer has removed."""
    stored = store.job_ids()
    jobs = entries = 0
    for job_id in stored:
        count = index_job(index, store, job_id)
        if count:
            jobs, entries = jobs + 1, entries + count
        if progress is not None:
            progress(job_id, count)
    gone = sorted(set(index.job_ids()) - set(stored))
    for job_id in gone:
        index.delete(job_id)
    return Reindexed(jobs=jobs, entries=entries, dropped=len(gone))
