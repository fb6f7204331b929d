"""Text engines: `llm` (any OpenAI-compatible chat API) and `offline` (deterministic, extractive).

Both expose the same three methods, so callers don't care which one runs:
`propose_quotes(chunk, max_quotes)`, `summarize_chunk(chunk)` and `reduce_summaries(parts)`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from clipper.config import Settings
from clipper.errors import EngineNotConfigured
from clipper.llm.schemas import CandidateQuote, CitedPoint, PartialSummary
from clipper.ops.breaker import ProviderGate

TEXT_ENGINES = ("auto", "offline", "llm")

__all__ = ["TEXT_ENGINES", "CandidateQuote", "CitedPoint", "PartialSummary", "TextEngine", "get_text_engine"]


@runtime_checkable
class TextEngine(Protocol):
    name: str
    model: str | None

    def propose_quotes(self, chunk, max_quotes: int) -> list[CandidateQuote]: ...

    def summarize_chunk(self, chunk) -> PartialSummary: ...

    def reduce_summaries(self, parts: list[PartialSummary]) -> PartialSummary: ...


def get_text_engine(settings: Settings, name: str | None = None, gate: ProviderGate | None = None) -> TextEngine:
    """The engine `name` (default: `settings.text_engine`; `auto` = llm when a key and a model are set). The llm
    engine calls its provider through `gate` (its circuit breaker), with the offline engine behind it when
    CLIPPER_LLM_FALLBACK=offline."""
    choice = (name or settings.text_engine or "auto").strip().lower()
    if choice == "auto":
        choice = settings.model_copy(update={"text_engine": "auto"}).resolved_text_engine()
    if choice == "llm":
        from clipper.llm.client import LLMEngine

        engine = LLMEngine(settings, gate)
        if settings.llm_fallback != "offline":
            return engine
        from clipper.llm.fallback import FallbackEngine
        from clipper.text.offline import OfflineEngine

        return FallbackEngine(engine, OfflineEngine(settings))
    if choice == "offline":
        from clipper.text.offline import OfflineEngine

        return OfflineEngine(settings)
    raise EngineNotConfigured(f"unknown text engine {name or settings.text_engine!r}; choose auto, offline or llm")
