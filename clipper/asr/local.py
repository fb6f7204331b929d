"""Local speech to text with faster-whisper (CTranslate2), fully offline.

The model folder comes from the table in clipper/asr/models.py (CLIPPER_ASR_MODEL: tiny.en or base), or is
`settings.asr_model_path`. The hub is never contacted: a path that is not an existing folder is an
`EngineNotConfigured` error, not a model name to download.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clipper.asr.base import SAMPLE_RATE, check_stop, decode_wav16k, floor_ms, within
from clipper.asr.models import english_only, model_label, model_path
from clipper.asr.quiet import silent, speech_windows
from clipper.asr.segments import split_segment
from clipper.config import Settings
from clipper.errors import EngineNotConfigured
from clipper.job.outputs import Segment, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# Before faster-whisper (and so huggingface_hub, which reads it at import) is imported: never try the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A worker transcribes many jobs: each model is loaded once per process and shared. CTranslate2 models are
# safe to call from several threads: calls queue on the model's `num_workers` workers (CTranslate2
# inter_threads, one model replica each), so up to `num_workers` decodes really run at once, each on
# `cpu_threads` threads (intra_threads).
_MODELS: dict[tuple[str, str, int, int], WhisperModel] = {}
_MODELS_LOCK = threading.Lock()

# Whisper invents words over silence ("You", "Thank you."): audio that is `silent` (clipper/asr/quiet.py) is not
# transcribed, and a segment over such a span is dropped.


def resolve_model_path(settings: Settings) -> Path:
    """The model folder these settings choose, checked to be a complete faster-whisper folder."""
    path = Path(model_path(None, settings)).expanduser()
    if not path.is_dir():
        raise EngineNotConfigured(
            f"local speech model folder {str(path)!r} does not exist; set CLIPPER_ASR_MODEL_PATH to a "
            "faster-whisper (CTranslate2) model folder"
        )
    # Without tokenizer.json faster-whisper fetches the tokenizer from the hub (the `tokenizers` library
    # ignores HF_HUB_OFFLINE), so a folder missing it is refused here rather than hanging on the network.
    missing = [f for f in ("model.bin", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        raise EngineNotConfigured(
            f"{str(path)!r} is not a complete faster-whisper model folder (missing {', '.join(missing)}); "
            "set CLIPPER_ASR_MODEL_PATH"
        )
    return path


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask in a container, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def decode_threads(settings: Settings, chunked: bool = False) -> int:
    """Threads per decode: CLIPPER_ASR_CPU_THREADS if set; for chunks decoded side by side, the cores shared
    between the `asr_parallel` decodes; else 0 (CTranslate2's default: every core, up to 4), as one pass
    alone on a worker is fastest with all the cores."""
    if settings.asr_cpu_threads > 0:
        return settings.asr_cpu_threads
    if chunked and settings.asr_parallel > 1:
        return max(1, available_cores() // settings.asr_parallel)
    return 0


def load_model(path: Path, compute_type: str = "int8", cpu_threads: int = 0, num_workers: int = 1) -> WhisperModel:
    """The cached `WhisperModel` for these settings, loaded on first use."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    key = (str(Path(path).resolve()), compute_type, int(cpu_threads), max(1, int(num_workers)))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            try:
                model = WhisperModel(
                    key[0],
                    device="cpu",
                    compute_type=compute_type,
                    cpu_threads=key[2],
                    num_workers=key[3],
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise EngineNotConfigured(f"cannot load the local speech model from {key[0]!r}: {exc}") from exc
            _MODELS[key] = model
        return model


# faster-whisper's own default: beam search, then sampling at these temperatures while a decode fails its checks.
WHISPER_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class LocalWhisperEngine:
    name = "local"

    def __init__(self, settings: Settings, *, chunked: bool = False) -> None:
        self.model_path = resolve_model_path(settings)
        self.model: str | None = model_label(settings)
        self.multilingual = not english_only(settings)
        # Punctuated text before every window (CLIPPER_ASR_PROMPT): Whisper then punctuates; empty = none.
        self.prompt = settings.asr_prompt.strip() or None
        self.compute_type = settings.asr_compute_type
        self.cpu_threads = decode_threads(settings, chunked)
        self.num_workers = max(1, settings.asr_parallel)  # decodes that run at once from different threads
        self.beam_size = settings.asr_beam_size
        self.temperature = WHISPER_TEMPERATURES if settings.asr_resample else (0.0,)
        self.batch_size = settings.asr_batch_size if chunked else 1  # windows decoded together (chunks only)
        self.detected_language: str | None = None

    def load(self) -> WhisperModel:
        return load_model(self.model_path, self.compute_type, self.cpu_threads, self.num_workers)

    def prompt_for(self, language: str | None) -> str | None:
        """The prompt for a decode in `language`. English only: an English prompt makes a multilingual model
        translate other languages into English (measured on tests/data/german.mp3), so none is given there."""
        if not self.multilingual or (language or "").lower() == "en":
            return self.prompt
        return None

    def detect_language(self, audio: Path, start_s: float = 0.0, end_s: float | None = None) -> tuple[str, float]:
        """The spoken language of `audio` and Whisper's probability for it, from the first 30 s of speech
        (silence left out) after `start_s`. An English-only model answers ("en", 1.0) without decoding.

        Callers detect once per job and pass the code on, so every chunk of a long file, and every resumed
        attempt, transcribes in the same language.
        """
        if not self.multilingual:
            return "en", 1.0
        samples = decode_wav16k(Path(audio), start_s, end_s)
        speech, total = [], 0
        for a, b in speech_windows(samples):
            piece = samples[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)]
            speech.append(piece)
            total += len(piece)
            if total >= 30 * SAMPLE_RATE:
                break
        if not speech:
            return "en", 0.0  # nothing to listen to: no words will come out anyway
        import numpy as np

        language, probability, _ = self.load().detect_language(audio=np.concatenate(speech)[: 30 * SAMPLE_RATE])
        return language, round(float(probability), 4)

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
        start_s = max(0.0, float(start_s))
        samples = decode_wav16k(Path(audio), start_s, end_s)
        end_s = floor_ms(start_s + len(samples) / SAMPLE_RATE)  # never past the last sample read
        if len(samples) == 0 or silent(samples):
            return
        model = self.load()
        if self.batch_size > 1:
            # Chunks: the span in ≤ 30 s windows cut in pauses (clipper/asr/quiet.py; cheaper than the Silero
            # VAD faster-whisper would run), `batch_size` windows decoded together; on CPU this beats one
            # window at a time by ~1.5× (bench/chunked_vs_single.py). Timestamp tokens off (with them, batched
            # decoding drops text); segments are re-cut from the word timestamps below.
            from faster_whisper import BatchedInferencePipeline

            windows = speech_windows(samples)
            if not windows:
                return
            segments, info = BatchedInferencePipeline(model=model).transcribe(
                samples, language=language, beam_size=self.beam_size, word_timestamps=True,
                batch_size=self.batch_size, without_timestamps=True, temperature=list(self.temperature), hotwords=self.prompt_for(language),
                clip_timestamps=[{"start": a, "end": b} for a, b in windows])
        else:
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=self.beam_size,
                temperature=list(self.temperature),
                word_timestamps=True,
                vad_filter=False,
                condition_on_previous_text=False,
                hotwords=self.prompt_for(language),  # not initial_prompt: that one reaches window 1 only
            )
        self.detected_language = info.language

        def clamp(t: float) -> float:
            return within(float(t) + start_s, start_s, end_s)

        it = iter(segments)
        while True:
            check_stop(should_stop)
            try:
                seg = next(it)  # the expensive part: whisper decodes the next window here
            except StopIteration:
                return
            text = seg.text.strip()
            if not text or silent(samples, seg.start, seg.end):
                continue
            words = [
                Word(
                    start=clamp(w.start),
                    end=clamp(w.end),
                    word=w.word.strip(),
                    probability=round(float(w.probability), 4),
                )
                for w in (seg.words or [])
                if w.word.strip()
            ]
            whole = Segment(id=0, start=clamp(seg.start), end=clamp(seg.end), text=text, words=words)
            for i, piece in enumerate(split_segment(whole) if self.batch_size > 1 else [whole]):
                if i:  # a stop between the pieces of one window: what was yielded is saved, the rest redone
                    check_stop(should_stop)
                yield piece
