"""Speech to text through an OpenAI-compatible `/v1/audio/transcriptions` endpoint (OpenAI, or a self-hosted
server such as faster-whisper-server / speaches / LocalAI).

The SDK does no retries of its own (`max_retries=0`): retrying is the workflow's job, driven by the error
types here. The API key never appears in a message we raise.
"""

from __future__ import annotations

import bisect
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from clipper.asr.base import check_stop, cut_wav, r3, wav_duration, within
from clipper.config import Settings
from clipper.errors import EngineNotConfigured, TranscriptionFailed
from clipper.job.outputs import Segment, Word
from clipper.ops.breaker import ProviderGate, guarded, provider_key


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: Settings, *, timeout_s: float = 900.0, gate: ProviderGate | None = None) -> None:
        if not settings.asr_api_base_url:
            raise EngineNotConfigured(
                "the openai ASR engine needs CLIPPER_ASR_API_BASE_URL (e.g. https://api.openai.com/v1)"
            )
        key = settings.asr_api_key.get_secret_value() if settings.asr_api_key is not None else ""
        if not key:
            raise EngineNotConfigured("the openai ASR engine needs CLIPPER_ASR_API_KEY")
        import openai

        self._key = settings.asr_api_key  # SecretStr: prints as ********** in reprs
        self.base_url = settings.asr_api_base_url
        self.model: str | None = settings.asr_api_model
        self.detected_language: str | None = None
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=timeout_s)
        # The provider's circuit breaker (clipper/ops/breaker.py): every request goes through it.
        self.gate, self.provider = gate or ProviderGate(), provider_key(self.base_url, "asr")

    # --- errors ---

    def _redact(self, text: str) -> str:
        key = self._key.get_secret_value() if self._key is not None else ""
        return text.replace(key, "**********") if key else text

    def _map_error(self, exc: Exception) -> Exception:
        import openai

        where = f"ASR API at {self.base_url}"
        detail = self._redact(str(exc))[:500]
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return EngineNotConfigured(
                f"the {where} refused our credentials (HTTP {exc.status_code}); check CLIPPER_ASR_API_KEY"
            )
        if isinstance(exc, openai.NotFoundError):
            return EngineNotConfigured(
                f"the {where} does not know model {self.model!r} or the endpoint (HTTP 404); check "
                "CLIPPER_ASR_API_MODEL and CLIPPER_ASR_API_BASE_URL"
            )
        if isinstance(exc, openai.APITimeoutError):
            return TranscriptionFailed(f"the {where} timed out")
        if isinstance(exc, openai.APIConnectionError):
            return TranscriptionFailed(f"cannot reach the {where}: {detail}")
        if isinstance(exc, (openai.RateLimitError, openai.InternalServerError)):
            return TranscriptionFailed(f"the {where} is busy or failing (HTTP {exc.status_code})")
        if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
            # The same request will be refused again: bad audio, bad language, bad model options.
            return EngineNotConfigured(f"the {where} rejected the request (HTTP {exc.status_code}): {detail}")
        if isinstance(exc, openai.APIStatusError):
            return TranscriptionFailed(f"the {where} answered HTTP {exc.status_code}: {detail}")
        return TranscriptionFailed(f"the {where} failed: {detail}")

    # --- transcription ---

    def _request(self, audio: Path, language: str | None) -> dict[str, Any]:
        import openai

        kwargs: dict[str, Any] = {}
        if language:
            kwargs["language"] = language
        try:
            resp = guarded(self.gate, self.provider, lambda: self._post(audio, kwargs), self._outage)
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None
        if isinstance(resp, str):
            try:
                resp = json.loads(resp)
            except ValueError:
                raise TranscriptionFailed("the ASR API returned text, not verbose_json") from None
        if hasattr(resp, "model_dump"):
            resp = resp.model_dump()
        if not isinstance(resp, dict):
            raise TranscriptionFailed("the ASR API returned an unexpected response")
        return resp

    def _post(self, audio: Path, kwargs: dict[str, Any]) -> Any:
        with open(audio, "rb") as f:
            return self._client.audio.transcriptions.create(
                model=self.model or "whisper-1",
                file=(audio.name, f, "audio/wav"),
                response_format="verbose_json",
                timestamp_granularities=["segment", "word"],
                **kwargs,
            )

    def _outage(self, exc: Exception) -> str | None:
        """Why `exc` means the API is down (for its breaker: timeouts, refused connections, 429, 5xx), or None."""
        import openai

        down = isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                                openai.InternalServerError))
        return self._map_error(exc).args[0] if down else None

    def transcribe(
        self,
        audio: Path,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        language: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[Segment]:
        check_stop(should_stop)
        audio = Path(audio)
        start_s = max(0.0, float(start_s))
        if start_s > 0 or end_s is not None:
            with tempfile.TemporaryDirectory(prefix="clipper-asr-") as tmp:
                part = Path(tmp) / "rest.wav"
                length = cut_wav(audio, part, start_s, end_s=end_s)
                if length <= 0:
                    return
                body = self._request(part, language)
        else:
            length = wav_duration(audio)
            body = self._request(audio, language)
        self.detected_language = body.get("language") or language
        for seg in parse_verbose_json(body, offset_s=start_s, end_s=start_s + length):
            check_stop(should_stop)
            yield seg


def parse_verbose_json(body: dict[str, Any], *, offset_s: float = 0.0, end_s: float | None = None) -> list[Segment]:
    """Segments with their words from a verbose_json body; times offset by `offset_s` and clamped to the audio.

    Words come top-level; each goes to the segment whose [start, end] contains its start (a word in a gap
    goes to the segment before it, one starting on a boundary to the segment starting there).
    """

    def t(value: Any) -> float:
        v = float(value or 0.0) + offset_s
        return r3(max(v, offset_s)) if end_s is None else within(v, offset_s, end_s)

    raw_segments = sorted(body.get("segments") or [], key=lambda s: float(s.get("start") or 0.0))
    segments: list[Segment] = [
        Segment(id=0, start=t(s.get("start")), end=t(s.get("end")), text=str(s.get("text") or "").strip())
        for s in raw_segments
    ]
    if not segments and str(body.get("text") or "").strip():
        end = t(body.get("duration")) if body.get("duration") else (end_s if end_s is not None else offset_s)
        segments = [Segment(id=0, start=r3(offset_s), end=r3(end), text=str(body["text"]).strip())]
    if segments:
        starts = [s.start for s in segments]
        for w in sorted(body.get("words") or [], key=lambda w: float(w.get("start") or 0.0)):
            text = str(w.get("word") or "").strip()
            if not text:
                continue
            word = Word(start=t(w.get("start")), end=t(w.get("end")), word=text)
            i = max(0, bisect.bisect_right(starts, word.start) - 1)
            segments[i].words.append(word)
    return [s for s in segments if s.text]
