"""The resumable driver: run an engine so that a crash (even kill -9) loses at most one segment of work.

Every finished segment is appended (flushed and fsynced) to a `JsonlLog` the moment the engine yields it.
A later attempt reads that log, resumes the engine at the end of the last saved segment, and returns the
whole transcript, old and new segments numbered 0..n-1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from clipper.asr.base import AsrEngine, check_stop, wav_duration
from clipper.asr.render import transcript_to_text
from clipper.errors import ClipperError
from clipper.job.outputs import Segment, Transcript, Word
from clipper.store.files import JsonlLog

log = logging.getLogger(__name__)

# Below this much remaining audio the engine is not run at all: Whisper tends to hallucinate ("Thank you.")
# on a very short tail left after the last saved segment.
MIN_TAIL_S = 0.3

__all__ = ["MIN_TAIL_S", "load_partial", "transcribe_resumable", "transcript_to_text"]


def load_partial(partial: JsonlLog) -> list[Segment]:
    """The segments saved by earlier attempts, renumbered, in order.

    Reading stops at the first record that is torn or invalid or goes back in time; if anything was dropped
    the log is rewritten with what was kept, so that new appends do not land after (or glued to) a torn line.
    """
    records = partial.read()
    kept: list[Segment] = []
    for record in records:
        try:
            seg = Segment.model_validate(record)
        except ValidationError:
            break
        if kept and (seg.start < kept[-1].start or seg.end < kept[-1].end):
            break
        kept.append(seg.model_copy(update={"id": len(kept)}))
    raw = partial.path.read_bytes() if partial.path.exists() else b""
    torn = raw.count(b"\n") != len(records) or (raw and not raw.endswith(b"\n"))
    if torn or len(kept) != len(records):
        log.warning("partial transcript %s has unusable records; keeping the first %d", partial.path, len(kept))
        partial.rewrite([s.model_dump() for s in kept])
    return kept


def _fit_after(seg: Segment, last_end: float) -> Segment | None:
    """Make a new segment start no earlier than the saved transcript ends; drop it if it lies entirely before."""
    if seg.end <= last_end:
        return None
    if seg.start >= last_end:
        return seg
    words = [
        w if w.start >= last_end else Word(start=last_end, end=w.end, word=w.word, probability=w.probability)
        for w in seg.words
        if w.end > last_end
    ]
    return seg.model_copy(update={"start": last_end, "words": words})


def transcribe_resumable(
    engine: AsrEngine,
    audio: Path,
    partial: JsonlLog,
    *,
    duration_s: float | None,
    language: str | None = None,
    on_progress: Callable[[float, float | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> tuple[Transcript, float]:
    """Transcribe `audio`, resuming after the segments already in `partial`. Returns (transcript, resumed_from_s).

    Only [`start_s`, `end_s`) is transcribed (default: the whole file); times stay absolute in the file.
    `resumed_from_s` is the end of the last saved segment (0.0 if none): audio before it is not transcribed
    again. Each new segment is appended to `partial` as soon as the engine yields it, then `on_progress(done_s,
    duration_s)` is called. `should_stop` is passed to the engine, which raises `StopRequested`; what was
    produced until then stays in `partial`. The caller removes `partial` once the transcript is stored.
    """
    audio = Path(audio)
    segments = load_partial(partial)
    resumed_from = segments[-1].end if segments else 0.0

    try:
        file_duration: float | None = wav_duration(audio)
    except ClipperError:
        file_duration = None
    total = duration_s if duration_s is not None else file_duration
    end_of_audio = file_duration if file_duration is not None else duration_s
    if end_s is not None:
        end_of_audio = end_s if end_of_audio is None else min(end_s, end_of_audio)
    begin = max(float(start_s), resumed_from)

    if on_progress is not None and resumed_from > 0:
        on_progress(resumed_from, total)

    check_stop(should_stop)
    if end_of_audio is None or end_of_audio - begin >= MIN_TAIL_S:
        last_end = begin
        for seg in engine.transcribe(audio, start_s=begin, end_s=end_s, language=language, should_stop=should_stop):
            fitted = _fit_after(seg, last_end)
            if fitted is None:
                continue
            fitted = fitted.model_copy(update={"id": len(segments)})
            partial.append(fitted.model_dump())
            segments.append(fitted)
            last_end = fitted.end
            if on_progress is not None:
                on_progress(last_end, total)

    transcript = Transcript(
        engine=engine.name,
        model=engine.model,
        language=language or getattr(engine, "detected_language", None),
        duration_s=total,
        segments=segments,
    )
    return transcript, resumed_from
