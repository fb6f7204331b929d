"""Which language a job is transcribed in: the job's, the operator's, or the one the model hears.

Decided once per job (and model), before any words are decoded, so every chunk of a long file and every resumed
attempt transcribe in the same language; the activities remember the decision in the job's receipts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from clipper.asr.base import AsrEngine
from clipper.asr.models import check_language, job_language
from clipper.config import Settings


class LanguageChoice(BaseModel):
    language: str | None = None  # None: the engine decides (engines that cannot detect up front)
    detected: bool = False
    probability: float | None = None  # Whisper's probability for the detected language

    def meta(self) -> dict[str, Any]:
        """What `Transcript.meta` says about a detected language (nothing when the language was given)."""
        if not self.detected:
            return {}
        return {"language_detected": True, "language_probability": self.probability}


def choose_language(engine: AsrEngine, audio: Path, requested: str | None, settings: Settings,
                    detected: LanguageChoice | None = None) -> LanguageChoice:
    """The job's language (`requested`, else the settings' rule in `job_language`), refused with
    `LanguageNotSupported` when the model cannot transcribe it; detected from the audio's first 30 s of speech
    when nothing names one and the engine can detect (the local engine with a multilingual model), unless
    `detected` says what an earlier detection found for this audio and model."""
    settings = settings.model_copy(update={"asr_engine": engine.name})
    language = job_language(requested, settings)
    check_language(language, settings)
    detect = getattr(engine, "detect_language", None)
    if language is not None or detect is None:
        return LanguageChoice(language=language)
    if detected is not None and detected.detected and detected.language:
        return detected
    code, probability = detect(Path(audio))
    return LanguageChoice(language=code, detected=True, probability=probability)
