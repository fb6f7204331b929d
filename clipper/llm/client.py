"""Quotes and summaries from any OpenAI-compatible chat completions API (OpenAI, DeepSeek, a local server).

The SDK does no retries (`max_retries=0`): retrying is the caller's job (a Temporal retry policy), driven by
the typed errors raised here. The only retry inside the engine is the repair: when the answer is not the JSON
asked for (whether or not the server honoured `response_format`), the request is sent again with that answer
and the validation error appended, up to `llm_max_bad_output_retries` times, then `LLMBadOutput`. Answers are
streamed (clipper/llm/stream.py: an idle timeout, not a total one; a stop flag closes the stream), and the
chunk budget is learnt in the model's tokens where the server reports them (`chunk_chars`). The API key never
appears in a message we build.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.errors import (
    EngineNotConfigured,
    LLMAuthError,
    LLMBadOutput,
    LLMUnavailable,
)
from clipper.llm import prompts
from clipper.llm.schemas import CandidateQuote, PartialSummary, QuotesAnswer
from clipper.llm.stream import Answer, Sockets, Watch, read_stream
from clipper.llm.throttle import DEFAULT_PROVIDER, throttle_for
from clipper.ops.breaker import ProviderGate, guarded, provider_key
from clipper.text.chunking import Chunk, render_chunk, render_segment

M = TypeVar("M", bound=BaseModel)
_FENCED = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)\s*```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
# Request options some servers refuse; a 400 naming one makes us drop (or rename) it and ask once more.
# (stream_options before stream: a refusal of the first names both.)
_OPTIONAL = ("response_format", "max_tokens", "temperature", "stream_options", "stream")
# The token budget: the sample the probe measures, the characters per token a real tokenizer gives (outside
# it the server's counts are not taken), and the margin kept for the estimate's error.
PROBE_CHARS = 4000
PLAUSIBLE_CHARS_PER_TOKEN = (1.0, 12.0)
TOKEN_MARGIN = 0.9
MIN_CHUNK_CHARS = 1000


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
    text = _THINK.sub("", content or "").strip()
    fenced = _FENCED.search(text)
    text = fenced.group(1).strip() if fenced else text
    if not text:
        raise BadOutput("the answer was empty")
    try:
        return json.loads(text)
    except ValueError as exc:
        error = str(exc)
    for opener, closer in ("{}", "[]"):  # leading or trailing prose around the JSON
        first, last = text.find(opener), text.rfind(closer)
        if 0 <= first < last:
            try:
                return json.loads(text[first : last + 1])
            except ValueError:
                pass
    raise BadOutput(f"the answer was not valid JSON ({error}): {text[:80]!r}")


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
        self._sockets = Sockets()
        self._should_stop: Callable[[], bool] | None = None
        self._on_tokens: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        # What the engine used, for logs and the bench: requests, tokens as the server counted them, answers that
        # were not the JSON asked for, and the characters per token learnt (None: not reported, chars budget).
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "bad_answers": 0}
        self.chars_per_token: float | None = None
        self._throttle = throttle_for(settings.llm_base_url, settings.llm_requests_per_minute)
        # The provider's circuit breaker (clipper/ops/breaker.py): every request goes through it.
        self.gate, self.provider = gate or ProviderGate(), provider_key(settings.llm_base_url, DEFAULT_PROVIDER)
        import httpx

        # No keep-alive: each request has its own connection, whose socket a stop shuts (clipper/llm/stream.py).
        # The timeout is httpx's per read: while streaming, the longest silence between tokens.
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url or None,
            api_key=key,
            timeout=settings.llm_timeout_s,
            max_retries=0,
            http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0),
                                     event_hooks={"request": [self._sockets.hook]}),
        )

    def watch(self, should_stop: Callable[[], bool] | None,
              on_tokens: Callable[[int], None] | None = None) -> None:
        """Stop reading (and close the request) when `should_stop()` turns true; `on_tokens(n)` as tokens arrive."""
        self._should_stop, self._on_tokens = should_stop, on_tokens

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
        import httpx

        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return LLMUnavailable(f"{where} sent nothing for {self.settings.llm_timeout_s:g} s (CLIPPER_LLM_TIMEOUT_S "
                                  "is the longest silence allowed, before the first token and between tokens)")
        if isinstance(exc, httpx.HTTPError):
            return LLMUnavailable(f"the connection to {where} broke off: {self._redact(str(exc))[:200]}")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailable(f"cannot reach {where}: {self._redact(str(exc))[:200]}")
        return LLMUnavailable(f"{where} failed: {self._redact(str(exc))[:200]}")

    def _outage(self, exc: Exception) -> str | None:
        """Why `exc` means the provider is down (for its breaker), or None: it answered (a 400, a bad key), or we
        stopped reading."""
        if isinstance(exc, StopRequested):
            return None
        mapped = self._map_error(exc)
        return mapped.message if isinstance(mapped, LLMUnavailable) else None

    # --- requests ---

    def _request(self, messages: list[dict[str, str]], json_mode: bool = True, max_tokens: int | None = None,
                 stream: bool = True) -> Answer:
        """One chat completion. A 400 naming an optional request field drops it and asks again; a server that
        ignores `stream` (an answer with no events) is asked again without it."""
        import httpx
        import openai

        while True:
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
            if "temperature" not in self._dropped:
                kwargs["temperature"] = self.settings.llm_temperature
            limit = max_tokens or self.settings.llm_max_tokens
            kwargs["max_tokens" if "max_tokens" not in self._dropped else "max_completion_tokens"] = limit
            if json_mode and "response_format" not in self._dropped:
                kwargs["response_format"] = {"type": "json_object"}
            streaming = stream and "stream" not in self._dropped
            if streaming:
                kwargs["stream"] = True
                if "stream_options" not in self._dropped:
                    kwargs["stream_options"] = {"include_usage": True}
            if self._throttle is not None:
                self._throttle.acquire()
            try:
                with Watch(self._sockets, self._should_stop) as watch:
                    try:
                        answer = guarded(self.gate, self.provider, lambda: self._call(kwargs, streaming, watch),
                                         self._outage)
                    except StopRequested:
                        raise
                    except Exception:
                        if watch.stopped:
                            raise StopRequested("text stage stopped on request") from None
                        raise
            except openai.BadRequestError as exc:
                text = str(exc).lower()
                refused = [o for o in _OPTIONAL if o in text and o not in self._dropped]
                if not refused:
                    raise self._map_error(exc) from None
                self._dropped.add(refused[0])
                continue
            except (openai.OpenAIError, httpx.HTTPError) as exc:
                raise self._map_error(exc) from None
            if streaming and answer.finish_reason is None and not answer.content:
                self._dropped.add("stream")  # it answered, but not as events
                continue
            with self._lock:
                self.usage["calls"] += 1
                self.usage["prompt_tokens"] += answer.prompt_tokens or 0
                self.usage["completion_tokens"] += answer.completion_tokens or 0
            return answer

    def _call(self, kwargs: dict[str, Any], streaming: bool, watch: Watch) -> Answer:
        resp = self._client.chat.completions.create(**kwargs)
        if streaming:
            return read_stream(resp, watch, self._on_tokens)
        choices = getattr(resp, "choices", None)
        usage = getattr(resp, "usage", None)
        out = Answer(prompt_tokens=getattr(usage, "prompt_tokens", None),
                     completion_tokens=getattr(usage, "completion_tokens", None))
        if choices:
            out.finish_reason = choices[0].finish_reason or "stop"
            out.content = (choices[0].message.content if choices[0].message is not None else None) or ""
        return out

    def _ask(self, messages: list[dict[str, str]], schema: type[M]) -> M:
        """Ask, parse and validate; on an unusable answer, ask again with it and what was wrong (bounded)."""
        attempts = 1 + max(0, self.settings.llm_max_bad_output_retries)
        asked, problem = messages, ""
        for _ in range(attempts):
            answer = self._request(asked)
            try:
                if answer.finish_reason == "length":
                    raise BadOutput("the answer was cut off at CLIPPER_LLM_MAX_TOKENS; give a shorter answer")
                data = parse_json(answer.content)
                if schema is QuotesAnswer and isinstance(data, list):
                    data = {"quotes": data}
                return schema.model_validate(data)
            except BadOutput as exc:
                problem = str(exc)
            except ValidationError as exc:
                wrong = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the answer'}: {e['msg']}"
                                  for e in exc.errors()[:5])
                problem = f"the JSON did not have the expected shape ({exc.error_count()} errors: {wrong})"
            with self._lock:
                self.usage["bad_answers"] += 1
            asked = prompts.repair_messages(messages, answer.content, problem)
        raise LLMBadOutput(
            f"the model's answer stayed unusable after {attempts} attempts: {self._redact(problem)[:200]}"
        )

    # --- the chunk budget ---

    def chunk_chars(self, transcript: Any) -> int:
        """Transcript characters per chunk: with CLIPPER_LLM_CONTEXT_TOKENS set and a server that counts tokens,
        what fits the model's window after the answer and the prompt around the excerpt, at the characters per
        token measured on this transcript's start; else (and never more than) CLIPPER_LLM_CONTEXT_CHARS. The
        probe is the same for every stage of a job, so its quotes and summary cut the same chunks."""
        s = self.settings
        if not s.llm_context_tokens:
            return s.llm_context_chars
        # The sample fits the smallest budget the probe can lead to (1 character a token), so it is all inside
        # the first chunk and its request starts with the probe's bytes.
        least = (s.llm_context_tokens - s.llm_max_tokens - prompts.TASK_RESERVE_CHARS) * TOKEN_MARGIN
        lines, size = [], 0
        for seg in transcript.segments:
            if seg.text.strip() and (not lines or size + len(render_segment(seg)) <= min(PROBE_CHARS, least)):
                lines.append(render_segment(seg))
                size += len(lines[-1]) + 1
        if not lines:
            return s.llm_context_chars
        messages = prompts.probe_messages("\n".join(lines))
        answer = self._request(messages, json_mode=False, max_tokens=1, stream=False)
        chars = sum(len(m["content"]) for m in messages)
        ratio = chars / answer.prompt_tokens if answer.prompt_tokens else 0.0
        lo, hi = PLAUSIBLE_CHARS_PER_TOKEN
        if not lo <= ratio <= hi:
            return s.llm_context_chars  # not reported (or not believable): the chars budget
        self.chars_per_token = round(ratio, 3)
        room = s.llm_context_tokens - s.llm_max_tokens - math.ceil(prompts.TASK_RESERVE_CHARS / ratio)
        budget = int(room * ratio * TOKEN_MARGIN)
        if budget < MIN_CHUNK_CHARS:
            raise EngineNotConfigured(
                f"CLIPPER_LLM_CONTEXT_TOKENS={s.llm_context_tokens} leaves {max(0, room)} tokens for the transcript "
                f"after CLIPPER_LLM_MAX_TOKENS={s.llm_max_tokens} and the prompt; raise the first (the model's "
                "context window) or lower the second")
        return min(s.llm_context_chars, budget)

    # --- the text engine interface ---

    def propose_quotes(self, chunk: Chunk, max_quotes: int) -> list[CandidateQuote]:
        s = self.settings
        messages = prompts.quotes_messages(
            render_chunk(chunk, marks=False), chunk.index, max_quotes, s.quote_min_chars, s.quote_max_chars
        )
        answer = self._ask(messages, QuotesAnswer)
        # The model's own scores are not trusted: quotes are ranked by grounding and quotability.
        out = [q.model_copy(update={"score": None}) for q in answer.quotes if q.text.strip()]
        return out[:max_quotes]

    def summarize_chunk(self, chunk: Chunk) -> PartialSummary:
        messages = prompts.summary_messages(render_chunk(chunk, marks=False), chunk.index, chunk.chapter_marks,
                                            chunk.continues_chapter)
        return self._ask(messages, PartialSummary)

    def reduce_summaries(self, parts: list[PartialSummary]) -> PartialSummary:
        return self._ask(prompts.reduce_messages(parts), PartialSummary)
