"""The domain's data: what a job's artifacts hold (transcript, speakers, quotes, summary and chapters, clips,
audiograms). Stored in the artifact store as JSON, never sent through workflow history (only references to
them travel there): clipper/job/messages.py carries the references.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float | None = None
    speaker: str | None = None  # S1, S2, ... once the `speakers` stage has run


class Segment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)
    speaker: str | None = None  # one speaker per segment: the `speakers` stage splits a segment where it changes


class Transcript(BaseModel):
    engine: str
    model: str | None = None
    language: str | None = None
    duration_s: float | None = None
    segments: list[Segment] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments).strip()


class Quote(BaseModel):
    """A verbatim span of the transcript: `text` is always the transcript's own words, never the engine's."""

    rank: int
    text: str
    start: float
    end: float
    score: float = 0.0
    match: float = 100.0  # how closely the engine's candidate matched the transcript (rapidfuzz, 0-100)
    reason: str | None = None
    clip: str | None = None  # artifact name of the audio clip, once cut
    speaker: str | None = None  # the label (S1, ...) of the one speaker whose turn holds the quote


class QuoteSet(BaseModel):
    engine: str
    model: str | None = None
    quotes: list[Quote] = Field(default_factory=list)
    candidates: int = 0  # proposed by the engine across all chunks
    ungrounded: int = 0  # dropped: could not be found in the transcript
    duplicates: int = 0  # dropped: the same span proposed twice
    ungrounded_examples: list[str] = Field(default_factory=list)
    failed_chunks: list[int] = Field(default_factory=list)  # chunks whose output stayed malformed
    fallback: str | None = None  # the offline engine stood in for an unavailable provider (CLIPPER_LLM_FALLBACK)


class ClipInfo(BaseModel):
    rank: int
    name: str
    start: float
    end: float
    duration_s: float


class ClipIndex(BaseModel):
    format: str
    padding_s: float
    clips: list[ClipInfo] = Field(default_factory=list)


class KeyPoint(BaseModel):
    text: str
    start: float
    end: float


class Chapter(BaseModel):
    """A topic segment: its times always come from the transcript, whoever wrote the title."""

    start: float
    end: float
    title: str
    key_points: list[str] = Field(default_factory=list)  # 1-3


class Summary(BaseModel):
    engine: str
    model: str | None = None
    overview: str
    key_points: list[KeyPoint] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)
    failed_chunks: list[int] = Field(default_factory=list)  # chunks whose output stayed malformed
    fallback: str | None = None  # the offline engine stood in for an unavailable provider (CLIPPER_LLM_FALLBACK)


class SpeakerTurn(BaseModel):
    """[start, end) in seconds during which `speaker` talks."""

    start: float
    end: float
    speaker: str


class Speaker(BaseModel):
    label: str  # S1, S2, ... in order of first appearance
    name: str | None = None  # given by the user (`name_speakers`)
    talk_time_s: float = 0.0
    turns: int = 0


class SpeakerSet(BaseModel):
    """speakers.json: who speaks when, and the names people gave them."""

    engine: str
    model: str | None = None
    speakers: list[Speaker] = Field(default_factory=list)
    turns: list[SpeakerTurn] = Field(default_factory=list)
    note: str | None = None  # why there are no labels (e.g. no speaker model installed)
    overlap_share: float | None = None  # share of the speech during which two or more talk at once

    def names(self) -> dict[str, str]:
        return {s.label: s.name for s in self.speakers if s.name}

    def display(self, label: str | None) -> str | None:
        """The name people gave the speaker, else its label."""
        return None if label is None else self.names().get(label, label)

    def caption(self, label: str | None) -> str | None:
        """The speaker line of a video: the name people gave, else the label when two or more people speak (with
        one voice, "S1" tells a viewer nothing)."""
        if label is None:
            return None
        return self.names().get(label) or (label if len(self.speakers) > 1 else None)


class AudiogramInfo(BaseModel):
    rank: int
    aspect: str  # 1:1 | 9:16
    name: str
    width: int
    height: int
    start: float
    end: float
    duration_s: float
    speaker: str | None = None  # the name shown (a name people gave, never a bare label)


class AudiogramIndex(BaseModel):
    """audiograms.json: which videos the stage made (empty with a note when turned off)."""

    padding_s: float
    audiograms: list[AudiogramInfo] = Field(default_factory=list)
    note: str | None = None
