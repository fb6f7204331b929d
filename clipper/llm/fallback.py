"""CLIPPER_LLM_FALLBACK=offline: the llm engine with the offline engine behind it.

While the provider's circuit breaker is open the gate refuses at once (`ProviderUnavailable`) instead of waiting,
and that request — one chunk's quotes, one chunk's summary, one reduce — goes to the offline engine. The outputs
say so (`fallback_note`, shown in the report), because quotes picked by rule read differently from a model's.
An ordinary failure with the breaker still closed is not a fallback: it fails the attempt, which is retried.
"""

from __future__ import annotations

import threading
from typing import Any

from clipper.errors import ProviderUnavailable


class FallbackEngine:
    def __init__(self, primary: Any, offline: Any) -> None:
        self.primary, self.offline = primary, offline
        self.name, self.model = primary.name, primary.model
        self.requests = self.fell_back = 0
        self.reason: str | None = None
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.requests += 1
        try:
            return getattr(self.primary, method)(*args)
        except ProviderUnavailable as exc:
            with self._lock:
                self.fell_back += 1
                self.reason = self.reason or exc.message
            return getattr(self.offline, method)(*args)

    def watch(self, should_stop: Any, on_tokens: Any = None) -> None:
        self.primary.watch(should_stop, on_tokens)

    def chunk_chars(self, transcript: Any) -> int:
        """The primary's budget; while its provider is down, the chars budget (the offline engine's)."""
        try:
            return self.primary.chunk_chars(transcript)
        except ProviderUnavailable:
            return self.primary.settings.llm_context_chars

    @property
    def fallback_note(self) -> str | None:
        if not self.fell_back:
            return None
        return (f"offline engine for {self.fell_back} of {self.requests} requests "
                f"(CLIPPER_LLM_FALLBACK=offline): {self.reason}")

    def propose_quotes(self, chunk: Any, max_quotes: int) -> Any:
        return self._call("propose_quotes", chunk, max_quotes)

    def summarize_chunk(self, chunk: Any) -> Any:
        return self._call("summarize_chunk", chunk)

    def reduce_summaries(self, parts: Any) -> Any:
        return self._call("reduce_summaries", parts)
