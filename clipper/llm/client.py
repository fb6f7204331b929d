"""Quotes and summaries from any OpenAI-compatible chat completions API (OpenAI, DeepSeek, a local server).

The SDK does no retries (`max_retries=0`): retrying is the caller's job (a Temporal retry policy), driven by
the typed errors raised here. The only retry inside the engine is asking again, up to
`llm_max_bad_output_retries` times, when the model's JSON is malformed. The API key never appears in a
message we build.
"""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clipper.config import Settings
from clipper.errors import (
    EngineNotConfigured,
    LLMAuthError,
    LLMBadOutput,
    LLMUnavailable,
)
from clipper.llm import prompts
from clipper.llm.schemas import CandidateQuote, PartialSummary, QuotesAnswer
from clipper.llm.throttle import DEFAULT_PROVIDER, throttle_for
from clipper.ops.breaker import ProviderGate, guarded, provider_key
from clipper.text.chunking import Chunk, render_chunk

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
# Request options some servers refuse; a 400 naming one makes us drop (or rename) it and ask once more.
_OPTIONAL = ("response_format", "max_tokens", "temperature")


class BadOutput(Exception):
    """The model's answer could not be used (internal: turned into LLMBadOutput after the retries)."""


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def parse_json(content: str | None) -> Any:
    """The JSON object in a model's answer, tolerating code fences, <think> blocks and stray prose."""
    text = _FENCE.sub("", _THINK.sub("", content or "").strip()).strip()
    if not text:
        raise BadOutput("the answer was empty")
    try:
        return json.loads(text)
    except ValueError:
        first, last = text.find("{"), text.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(text[first : last + 1])
            except ValueError:
                pass
    raise BadOutput(f"the answer was not JSON: {text[:80]!r}")


class LLMEngine:
    name = "llm"

    def __init__(self, settings: Settings, gate: ProviderGate | None = None) -> None:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else ""
        if not key:
            raise EngineNotConfigured("the llm text engine needs CLIPPER_LLM_API_KEY (or use text_engine=offline)")
        if not settings.llm_model:
            raise EngineNotConfigured("the llm text engine needs CLIPPER_LLM_MODEL (e.g. deepseek-chat, gpt-4o-mini)")
        import openai

        self.settings = settings
        self.model: str | None = settings.llm_model
        self.base_url = settings.llm_base_url or "the SDK's default base URL"
        self._key = settings.llm_api_key  # SecretStr: prints as ********** in reprs
        self._dropped: set[str] = set()  # request options this server refused
        self._throttle = throttle_for(settings.llm_base_url, settings.llm_requests_per_minute)
        # The provider's circuit breaker (clipper/ops/breaker.py): every request goes through it.
        self.gate, self.provider = gate or ProviderGate(), provider_key(settings.llm_base_url, DEFAULT_PROVIDER)
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url or None,
            api_key=key,
            timeout=settings.llm_timeout_s,
            max_retries=0,
        )

    # --- errors ---

    def _redact(self, text: str) -> str:
        key = self._key.get_secret_value() if self._key is not None else ""
        text = text.replace(key, "**********") if key else text
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1**********", text)

    def _map_error(self, exc: Exception) -> Exception:
        import openai

        where = f"the LLM API at {self.base_url}"
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            detail = self._redact(str(exc))[:300]
            retry_after = parse_retry_after(exc.response.headers)
            if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
                return LLMAuthError(f"the LLM API rejected the key (HTTP {code}); check CLIPPER_LLM_API_KEY")
            if isinstance(exc, openai.NotFoundError):
                return EngineNotConfigured(
                    f"unknown model {self.model!r} at base URL {self.base_url} (HTTP 404); set CLIPPER_LLM_MODEL "
                    "(and CLIPPER_LLM_BASE_URL)"
                )
            if isinstance(exc, openai.RateLimitError):
                if "insufficient_quota" in detail:
                    return LLMAuthError(
                        "the LLM API refused the request: the account's quota is used up (HTTP 429); check the "
                        "billing of CLIPPER_LLM_API_KEY"
                    )
                wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
                return LLMUnavailable(f"{where} is rate limiting us (HTTP 429){wait}", retry_after_s=retry_after)
            if code >= 500 or code in (408, 409):
                return LLMUnavailable(f"{where} is failing (HTTP {code})", retry_after_s=retry_after)
            return EngineNotConfigured(
                f"{where} rejected the request (HTTP {code}): {detail}; check CLIPPER_LLM_MODEL, "
                "CLIPPER_LLM_MAX_TOKENS and CLIPPER_LLM_CONTEXT_CHARS"
            )
        if isinstance(exc, openai.APITimeoutError):
            return LLMUnavailable(f"{where} did not answer within {self.settings.llm_timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailable(f"cannot reach {where}: {self._redact(str(exc))[:200]}")
        return LLMUnavailable(f"{where} failed: {self._redact(str(exc))[:200]}")

    def _outage(self, exc: Exception) -> str | None:
        """Why `exc` means the provider is down (for its breaker), or None: it answered (a 400, a bad key)."""
        mapped = self._map_error(exc)
        return mapped.message if isinstance(mapped, LLMUnavailable) else None

    # --- requests ---

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """One chat completion's text. A 400 naming an optional request field drops it and asks again."""
        import openai

        while True:
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
            if "temperature" not in self._dropped:
                kwargs["temperature"] = self.settings.llm_temperature
            if "max_tokens" not in self._dropped:
                kwargs["max_tokens"] = self.settings.llm_max_tokens
            else:
                kwargs["max_completion_tokens"] = self.settings.llm_max_tokens
            if "response_format" not in self._dropped:
                kwargs["response_format"] = {"type": "json_object"}
            if self._throttle is not None:
                self._throttle.acquire()
            try:
                resp = guarded(self.gate, self.provider, lambda: self._client.chat.completions.create(**kwargs),
                               self._outage)
            except openai.BadRequestError as exc:
                text = str(exc).lower()
                refused = [o for o in _OPTIONAL if o in text and o not in self._dropped]
                if not refused:
                    raise self._map_error(exc) from None
                self._dropped.add(refused[0])
                continue
            except openai.OpenAIError as exc:
                raise self._map_error(exc) from None
            choices = getattr(resp, "choices", None)
            if not choices:
                raise BadOutput("the answer had no choices")
            choice = choices[0]
            content = choice.message.content if choice.message is not None else None
            if choice.finish_reason == "length":
                raise BadOutput("the answer was cut off at CLIPPER_LLM_MAX_TOKENS")
            return content or ""

    def _ask(self, messages: list[dict[str, str]], schema: type[M]) -> M:
        """Ask, parse and validate; the same request again (bounded) when the answer is malformed."""
        attempts = 1 + max(0, self.settings.llm_max_bad_output_retries)
        problem = ""
        for _ in range(attempts):
            try:
                data = parse_json(self._complete(messages))
                if schema is QuotesAnswer and isinstance(data, list):
                    data = {"quotes": data}
                return schema.model_validate(data)
            except BadOutput as exc:
                problem = str(exc)
            except ValidationError as exc:
                problem = f"the JSON did not have the expected shape ({exc.error_count()} errors)"
        raise LLMBadOutput(
            f"the model's answer stayed unusable after {attempts} attempts: {self._redact(problem)[:200]}"
        )

    # --- the text engine interface ---

    def propose_quotes(self, chunk: Chunk, max_quotes: int) -> list[CandidateQuote]:
        s = self.settings
        messages = prompts.quotes_messages(
            render_chunk(chunk), chunk.index, max_quotes, s.quote_min_chars, s.quote_max_chars
        )
        answer = self._ask(messages, QuotesAnswer)
        # The model's own scores are not trusted: quotes are ranked by grounding and quotability.
        out = [q.model_copy(update={"score": None}) for q in answer.quotes if q.text.strip()]
        return out[:max_quotes]

    def summarize_chunk(self, chunk: Chunk) -> PartialSummary:
        return self._ask(prompts.summary_messages(render_chunk(chunk), chunk.index), PartialSummary)

    def reduce_summaries(self, parts: list[PartialSummary]) -> PartialSummary:
        return self._ask(prompts.reduce_messages(parts), PartialSummary)
