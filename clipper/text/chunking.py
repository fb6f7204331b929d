"""Split a transcript into prompt-sized chunks, always on segment boundaries.

A chunk renders as one line per segment, `[#<segment id> mm:ss] text` (`[#12 03:10] S2: text` once speakers
are known), so a model can cite the segments a point comes from and we can map its answer back to times.
When the summary asks for chapter titles, a line `=== chapter N ===` goes before the segment a chapter
starts in (`=== chapter N (continued) ===` at the top of a chunk that starts inside one).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from clipper.clock import clock
from clipper.job.outputs import Segment, Transcript


class Chunk(BaseModel):
    index: int
    segments: list[Segment] = Field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    chapter_marks: dict[int, int] = Field(default_factory=dict)  # segment id -> number of the chapter it starts
    continues_chapter: int | None = None  # the chapter the chunk's first segment is inside of (not its start)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments).strip()

    def as_transcript(self, like: Transcript | None = None) -> Transcript:
        """This chunk's segments as a Transcript (for grounding within the chunk)."""
        return Transcript(
            engine=like.engine if like else "chunk",
            language=like.language if like else None,
            segments=self.segments,
        )


def segment_text(segment: Segment) -> str:
    """The segment's words (their own spacing), else its text: one space between words either way."""
    words = " ".join(w.word.strip() for w in segment.words) if segment.words else segment.text
    return " ".join(words.split())


def render_segment(segment: Segment) -> str:
    who = f"{segment.speaker}: " if segment.speaker else ""
    return f"[#{segment.id} {clock(segment.start, hours=False)}] {who}{segment_text(segment)}"


def render_chunk(chunk: Chunk, marks: bool = True) -> str:
    """The chunk's lines; `marks=False`: without the chapter lines (the LLM engine tells chapters after the
    excerpt, so the excerpt is the same bytes in every request about it)."""
    show = marks and chunk.continues_chapter is not None
    lines = [f"=== chapter {chunk.continues_chapter} (continued) ==="] if show else []
    for s in chunk.segments:
        if marks and s.id in chunk.chapter_marks:
            lines.append(f"=== chapter {chunk.chapter_marks[s.id]} ===")
        lines.append(render_segment(s))
    return "\n".join(lines)


def _make(index: int, segments: list[Segment]) -> Chunk:
    return Chunk(index=index, segments=segments, start=segments[0].start, end=max(s.end for s in segments))


def chunk_transcript(t: Transcript, max_chars: int) -> list[Chunk]:
    """Consecutive chunks whose `render_chunk` text is at most `max_chars` (a longer segment stands alone)."""
    max_chars = max(1, int(max_chars))
    chunks: list[Chunk] = []
    current: list[Segment] = []
    size = 0
    for seg in t.segments:
        if not seg.text.strip():
            continue
        line = len(render_segment(seg))
        added = line if not current else line + 1  # +1: the newline joining it to the previous line
        if current and size + added > max_chars:
            chunks.append(_make(len(chunks), current))
            current, size, added = [], 0, line
        current.append(seg)
        size += added
    if current:
        chunks.append(_make(len(chunks), current))
    return chunks
