"""What text engines return before grounding. Shared by the LLM and the offline engine.

Validation is lenient about harmless shapes models produce (a bare string for a quote or a key point,
`"#12"` for a segment id) and strict about the rest: a missing `quotes` list fails validation, which the
LLM engine treats as bad output and asks again.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


class CandidateQuote(BaseModel):
    text: str
    reason: str | None = None
    score: float | None = None  # the engine's own 0-100 ranking score, when it has one (offline engine)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class CitedPoint(BaseModel):
    text: str
    segments: list[int] = Field(default_factory=list)  # [first segment id, last segment id]
    # Exact times, when the engine knows them (the offline engine: the utterance it took); never asked of an LLM.
    start: float | None = None
    end: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @field_validator("segments", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, (int, str)):
            value = [value]
        if isinstance(value, list):
            out = []
            for v in value:
                if isinstance(v, str):
                    m = re.search(r"\d+", v)
                    if m is None:
                        continue
                    v = int(m.group())
                out.append(v)
            return out
        return value


class ChapterNote(BaseModel):
    """An LLM's title (and key points) for one of the chapters marked in its excerpt."""

    id: int
    title: str
    key_points: list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        if isinstance(value, str):
            m = re.search(r"\d+", value)
            return int(m.group()) if m else value
        return value

    @field_validator("key_points", mode="before")
    @classmethod
    def _points(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [v.get("text", "") if isinstance(v, dict) else v for v in value]
        return value


class PartialSummary(BaseModel):
    overview: str
    key_points: list[CitedPoint] = Field(default_factory=list)
    # The offline engine's overview as units with their times (so a reduce can choose among them again).
    overview_points: list[CitedPoint] = Field(default_factory=list)
    chapters: list[ChapterNote] = Field(default_factory=list)  # titles of the chapters marked in the excerpt
    words: int = 0  # words of the text it summarises (offline engine: sizes the number of key points)

    def for_prompt(self) -> dict[str, Any]:
        """What a reduce prompt shows of this part: overview and cited points, nothing engine-internal."""
        return {"overview": self.overview,
                "key_points": [{"text": p.text, "segments": p.segments} for p in self.key_points]}


class QuotesAnswer(BaseModel):
    """The JSON the quotes prompt asks for."""

    quotes: list[CandidateQuote]
