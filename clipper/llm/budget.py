"""Fitting a text stage to its engine: the chunk budget it can take, and the stage's stop flag and progress.

Both text stages call `fit` with the same transcript, so they cut the same chunks and their requests about a
chunk share its bytes (clipper/llm/prompts.py): the budget must not depend on which stage asks first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clipper.config import Settings


def fit(settings: Settings, engine: Any, transcript: Any, should_stop: Callable[[], bool] | None = None,
        on_tokens: Callable[[int], None] | None = None) -> Settings:
    """`settings` with `llm_context_chars` the engine's chunk budget for `transcript` (engines without one:
    unchanged); the engine told to stop reading when `should_stop()` turns true and to report tokens."""
    watch = getattr(engine, "watch", None)
    if watch is not None:
        watch(should_stop, on_tokens)
    measure = getattr(engine, "chunk_chars", None)
    if measure is None:
        return settings
    chars = int(measure(transcript))
    if chars >= settings.llm_context_chars:
        return settings
    return settings.model_copy(update={"llm_context_chars": chars})


def tokens_noted(progress: Any) -> Callable[[int], None]:
    """An `on_tokens` that keeps a running count in `progress.note` (a stage's heartbeat details)."""
    seen = [0]

    def note(n: int) -> None:
        seen[0] += n
        progress.note = f"{seen[0]} tokens received from the model"

    return note
