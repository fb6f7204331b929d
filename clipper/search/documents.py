"""What of a job is searched, read from its store: every transcript line, quote and chapter title, with its
times and speaker (label, and the name people gave).

Read through the manifest (the current, sha256-checked files), never through references a workflow carries: a
job's outputs change after its pipeline ended (speakers named, a stage run again), and the index follows the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from pydantic import BaseModel

from clipper.job.outputs import QuoteSet, SpeakerSet, Summary, Transcript
from clipper.job.request import MediaInfo
from clipper.search.query import words
from clipper.store.local import ArtifactStore


class Entry(BaseModel):
    kind: str  # transcript | quote | chapter
    start: float
    end: float
    text: str
    label: str | None = None  # S1, ...
    name: str | None = None  # the name people gave the speaker

    @property
    def speaker_key(self) -> str:
        """The speaker's name and label, folded, as the speaker filter compares them ("diane|s1")."""
        return "|".join(" ".join(words(v)) for v in (self.name, self.label) if v)


class JobEntries(BaseModel):
    """A job as the index holds it: its title, when its media arrived (`--since`), and its entries."""

    job_id: str
    title: str
    created_at: datetime
    entries: list[Entry]

    def rows(self) -> Iterator[Entry]:
        return iter(self.entries)


def job_entries(store: ArtifactStore, job_id: str) -> JobEntries | None:
    """The job's searchable entries from its store; None when it has no transcript (yet, or any more)."""
    transcript_ref = store.valid_ref(job_id, "transcript.json")
    if transcript_ref is None:
        return None
    transcript = store.read_model(job_id, transcript_ref, Transcript)
    media_ref = store.valid_ref(job_id, "media.json")
    info = store.read_model(job_id, media_ref, MediaInfo) if media_ref else None
    created = media_ref.created_at if media_ref else transcript_ref.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    names: dict[str, str] = {}
    if (speakers_ref := store.valid_ref(job_id, "speakers.json")) is not None:
        names = store.read_model(job_id, speakers_ref, SpeakerSet).names()
    entries = [Entry(kind="transcript", start=s.start, end=s.end, text=s.text.strip(), label=s.speaker,
                     name=names.get(s.speaker or "")) for s in transcript.segments if s.text.strip()]
    if (quotes_ref := store.valid_ref(job_id, "quotes.json")) is not None:
        entries += [Entry(kind="quote", start=q.start, end=q.end, text=q.text.strip(), label=q.speaker,
                          name=names.get(q.speaker or ""))
                    for q in store.read_model(job_id, quotes_ref, QuoteSet).quotes if q.text.strip()]
    if (summary_ref := store.valid_ref(job_id, "summary.json")) is not None:
        entries += [Entry(kind="chapter", start=c.start, end=c.end, text=c.title.strip())
                    for c in store.read_model(job_id, summary_ref, Summary).chapters if c.title.strip()]
    title = (info.title if info else None) or job_id
    return JobEntries(job_id=job_id, title=title, created_at=created, entries=entries)

