"""A job's searchable files written into a store (no pipeline), and the index's hits in a comparable form."""

from __future__ import annotations

from clipper.job.outputs import Chapter, Quote, QuoteSet, Segment, Speaker, SpeakerSet, Summary, Transcript
from clipper.job.request import MediaInfo
from clipper.store.local import ArtifactStore

Line = tuple[float, float, str | None, str]  # start, end, speaker label, text


def put_job(store: ArtifactStore, job_id: str, lines: list[Line], title: str = "An episode",
            quotes: list[Line] = (), chapters: list[tuple[float, float, str]] = (),
            names: dict[str, str] | None = None) -> None:
    """The files the index reads: media.json, transcript.json, speakers.json, quotes.json, summary.json."""
    store.put_model(job_id, "media.json", MediaInfo(title=title, source_url=f"https://example.com/{job_id}.mp3",
                                                     duration_s=max((e for _, e, _, _ in lines), default=0)),
                    "download")
    store.put_model(job_id, "transcript.json", Transcript(engine="test", segments=[
        Segment(id=i, start=s, end=e, text=t, speaker=who) for i, (s, e, who, t) in enumerate(lines)]), "speakers")
    labels = sorted({who for _, _, who, _ in lines if who})
    store.put_model(job_id, "speakers.json", SpeakerSet(engine="test", speakers=[
        Speaker(label=label, name=(names or {}).get(label)) for label in labels]), "speakers")
    store.put_model(job_id, "quotes.json", QuoteSet(engine="test", quotes=[
        Quote(rank=i + 1, start=s, end=e, speaker=who, text=t) for i, (s, e, who, t) in enumerate(quotes)]), "quotes")
    store.put_model(job_id, "summary.json", Summary(engine="test", overview="", chapters=[
        Chapter(start=s, end=e, title=t) for s, e, t in chapters]), "summary")


def shape(hits) -> list[tuple]:
    return [(h.job_id, h.kind, h.start, h.speaker, h.text) for h in hits]
