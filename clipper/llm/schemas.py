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


class PartialSummary(BaseModel):
    overview: str
    key_points: list[CitedPoint] = Field(default_factory=list)


class QuotesAnswer(BaseModel):
    """The JSON the quotes prompt asks for."""

    quotes: list[CandidateQuote]
