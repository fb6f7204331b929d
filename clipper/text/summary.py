"""Summary: map (one partial summary per chunk), reduce (merge partials in context-sized groups), then map
the segment ids the engine cited to times.

Key points are the engine's words (a summary is not verbatim) but their times come from the transcript:
the exact times the engine knew (offline), else the cited segments, else the point's text aligned with the
transcript, else the span it was written from.

Chapters (`chapters.py`) are always cut offline from the utterances; their numbers are marked in the
chunks, so an LLM engine titles them in the same map calls (no extra request); a model's title is kept only
where the chapter's words support it (`titles.supported`), and the offline phrase title stays wherever it gave
none or an unsupported one. Without an LLM the overview states facts (`overview.py`) instead of gluing
utterances together.
"""

from __future__ import annotations

from collections.abc import Callable

from clipper.config import Settings
from clipper.job.outputs import (
    Chapter,
    KeyPoint,
    Segment,
    SpeakerSet,
    Summary,
    Transcript,
)
from clipper.llm import CitedPoint, PartialSummary, TextEngine
from clipper.llm.prompts import render_parts
from clipper.speakers.changes import SoundProfile
from clipper.speakers.voices import VoiceProfile
from clipper.text.chapters import chapter_text, make_chapters
from clipper.text.chunking import Chunk, chunk_transcript
from clipper.text.fanout import map_chunks
from clipper.text.grounding import WordIndex, align
from clipper.text.overview import facts_overview
from clipper.text.titles import supported
from clipper.text.utterances import Utterance

# Key points paraphrase the transcript, so aligning one needs far less than a verbatim quote does.
POINT_MIN_MATCH = 55.0


def _groups(parts: list[PartialSummary], max_chars: int) -> list[list[PartialSummary]]:
    """Consecutive groups whose rendered text fits `max_chars`; at least two parts per group, so each round
    of reduction shrinks the list."""
    groups: list[list[PartialSummary]] = []
    for part in parts:
        if groups and (len(groups[-1]) < 2 or len(render_parts(groups[-1] + [part])) <= max_chars):
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def _reduce(
    parts: list[PartialSummary], engine: TextEngine, settings: Settings, should_stop: Callable[[], bool] | None
) -> PartialSummary:
    while len(parts) > 1:
        groups = _groups(parts, settings.llm_context_chars)

        def merge(group: list[PartialSummary]) -> PartialSummary:
            return group[0] if len(group) == 1 else engine.reduce_summaries(group)

        merged, _ = map_chunks(
            groups, merge, settings.llm_concurrency, should_stop=should_stop, tolerate_bad_output=False
        )
        parts = [merged[i] for i in sorted(merged)]
    return parts[0]


class _Locator:
    """Times of a cited point: its segments, else its text aligned with the transcript, else a fallback."""

    def __init__(self, transcript: Transcript) -> None:
        self.segments: dict[int, Segment] = {s.id: s for s in transcript.segments}
        self.index = WordIndex(transcript)
        self.lo = transcript.segments[0].start if transcript.segments else 0.0
        self.hi = max((s.end for s in transcript.segments), default=0.0)
        if transcript.duration_s:
            self.hi = min(self.hi, transcript.duration_s) if self.hi else transcript.duration_s

    def locate(self, point: CitedPoint, fallback: tuple[float, float]) -> tuple[float, float]:
        known = [self.segments[i] for i in point.segments if i in self.segments]
        if point.start is not None and point.end is not None:
            start, end = point.start, point.end
        elif known:
            first, last = min(known, key=lambda s: s.id), max(known, key=lambda s: s.id)
            start, end = first.start, max(last.end, first.start)
        else:
            hit = align(point.text, self.index)
            if hit is not None and hit[2] >= POINT_MIN_MATCH:
                start, end = self.index.tokens[hit[0]].start, self.index.tokens[hit[1]].end
            else:
                start, end = fallback
        start = min(max(start, self.lo), self.hi)
        return start, min(max(end, start), self.hi)


def _mark(chunks: list[Chunk], transcript: Transcript, chapters: list[Chapter]) -> None:
    """Number the chapters in the chunks: the segment each starts in, and the chapter a chunk starts inside."""
    starts = []
    for n, c in enumerate(chapters, 1):
        seg = next((s for s in transcript.segments if s.end > c.start), None)
        if seg is not None:
            starts.append((seg.id, seg.start, n))
    for chunk in chunks:
        ids = {s.id for s in chunk.segments}
        chunk.chapter_marks = {sid: n for sid, _, n in starts if sid in ids}
        before = [n for sid, at, n in starts if at < chunk.start and sid not in ids]
        if before and chunk.segments and chunk.segments[0].id not in chunk.chapter_marks:
            chunk.continues_chapter = before[-1]


def _titled(chapters: list[Chapter], parts: list[PartialSummary], units: list[Utterance]) -> list[Chapter]:
    """The engine's titles and points for the numbered chapters (the first part to name a chapter wins); a title
    the chapter's words do not support is not taken (the offline one stays, with the engine's points)."""
    notes = {}
    for part in parts:
        for note in part.chapters:
            if note.title.strip():
                notes.setdefault(note.id, note)
    out = []
    for n, c in enumerate(chapters, 1):
        note = notes.get(n)
        if note is None:
            out.append(c)
            continue
        points = [p.strip() for p in note.key_points if p.strip()][:3] or c.key_points
        title = " ".join(note.title.split())[:80]
        title = title if supported(title, chapter_text(c, units)) else c.title
        out.append(c.model_copy(update={"title": title, "key_points": points}))
    return out


def summarize(
    transcript: Transcript,
    engine: TextEngine,
    settings: Settings,
    on_chunk_done: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    speakers: SpeakerSet | None = None,
    sound: SoundProfile | None = None,
    voices: VoiceProfile | None = None,
) -> Summary:
    """The summary and chapters of `transcript`; `sound`, the recording's sound profile, and `voices`, the
    speakers stage's embeddings, let the chapters start where the sound and the voices change too
    (clipper/speakers/changes.py, voices.py)."""
    summary = Summary(engine=engine.name, model=engine.model, overview="")
    chunks = chunk_transcript(transcript, settings.llm_context_chars)
    if not chunks:
        return summary
    chapters, units = make_chapters(transcript, settings, sound, voices=voices)
    _mark(chunks, transcript, chapters)
    parts, failed = map_chunks(chunks, engine.summarize_chunk, settings.llm_concurrency, on_chunk_done, should_stop)
    summary.failed_chunks = [chunks[i].index for i in failed]
    ordered = sorted(parts)
    summary.chapters = _titled(chapters, [parts[i] for i in ordered], units)
    if len(ordered) == 1:
        final = parts[ordered[0]]
        span = (chunks[ordered[0]].start, chunks[ordered[0]].end)
    else:
        final = _reduce([parts[i] for i in ordered], engine, settings, should_stop)
        span = (chunks[0].start, chunks[-1].end)

    locator = _Locator(transcript)
    points = []
    for p in final.key_points:
        if not p.text.strip():
            continue
        start, end = locator.locate(p, span)
        points.append(KeyPoint(text=p.text.strip(), start=start, end=end))
    summary.key_points = sorted(points, key=lambda k: (k.start, k.end))
    summary.overview = final.overview.strip()
    # No model wrote it (the offline engine, or its units came back through a fallback): state what is known
    # and quote the rest.
    if engine.name == "offline" or final.overview_points:
        summary.overview = facts_overview(transcript, summary.chapters, summary.key_points, speakers)
    summary.fallback = getattr(engine, "fallback_note", None)
    return summary
