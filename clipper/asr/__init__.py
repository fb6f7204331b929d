"""Speech to text. Knows nothing of Temporal: engines turn a 16 kHz mono WAV into `Segment`s, and
`transcribe_resumable` drives an engine so that a crash loses at most one segment of work.

Engines: `local` (faster-whisper, offline), `openai` (any OpenAI-compatible transcription API) and `noop`
(load tests and benchmarks only). `chunks` cuts long audio in silences, transcribes a span resumably and
merges the spans transcribed side by side.
"""

from __future__ import annotations

from clipper.asr.base import AsrEngine, StopRequested, decode_wav16k, wav_duration
from clipper.asr.render import transcript_to_text
from clipper.asr.resume import transcribe_resumable
from clipper.config import Settings
from clipper.errors import EngineNotConfigured
from clipper.ops.breaker import ProviderGate

ENGINES = ("local", "openai", "noop")


def get_engine(settings: Settings, name: str | None = None, *, chunked: bool = False,
               gate: ProviderGate | None = None) -> AsrEngine:
    """The engine `name` (default: `settings.asr_engine`), configured from `settings`.

    `chunked=True`: the engine decodes one chunk of several decoded side by side (the local model then
    splits the cores between `settings.asr_parallel` decodes instead of giving each decode all of them).
    `gate`: the circuit breaker an API engine calls its provider through.

    Raises `EngineNotConfigured` for an unknown name or missing/invalid engine settings. The local model is
    loaded lazily on the first transcription and then cached for the process.
    """
    choice = (name or settings.asr_engine or "").strip().lower()
    if choice == "local":
        from clipper.asr.local import LocalWhisperEngine

        return LocalWhisperEngine(settings, chunked=chunked)
    if choice == "openai":
        from clipper.asr.openai_api import OpenAIEngine

        return OpenAIEngine(settings, gate=gate)
    if choice == "noop":
        from clipper.asr.noop import NoopEngine

        return NoopEngine(settings)
    raise EngineNotConfigured(f"unknown ASR engine {choice or name!r}; choose local, openai or noop")


__all__ = [
    "ENGINES",
    "AsrEngine",
    "EngineNotConfigured",
    "StopRequested",
    "decode_wav16k",
    "get_engine",
    "transcribe_resumable",
    "transcript_to_text",
    "wav_duration",
]
