"""Chunked transcription: cut long audio in silences, transcribe the pieces side by side, stitch them.

No Temporal here. `plan_chunks` finds the cut points (the quietest 0.3 s near every boundary between equal spans),
`transcribe_span` transcribes one piece resumably (its own partial log, times absolute in the file) and
`merge_chunks` puts the pieces back together in time order without losing or repeating a word at a seam.

One decode of Whisper barely uses a second core (see clipper/asr/local.py: the model runs `asr_parallel`
decodes at once), so on a small machine the speed-up of a long file comes from decoding chunks in parallel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from clipper.asr.base import AsrEngine, decode_wav16k, floor_ms, r3, wav_duration
from clipper.asr.quiet import QUIET_S, quiet_profile, quietest_point
from clipper.asr.resume import load_partial, transcribe_resumable
from clipper.job.messages import ChunkSpan
from clipper.job.outputs import Segment, Transcript, Word
from clipper.store.files import JsonlLog

# Two words are "the same word" at a seam when their text matches and they start this close (or overlap by
# half of the shorter one): the same stretch of audio transcribed twice.
SAME_WORD_S = 0.3

__all__ = ["QUIET_S", "ChunkSpan", "merge_chunks", "plan_chunks", "quiet_profile", "span_resumed_s", "transcribe_span"]


# --- planning ---


def _quietest_point(wav: Path, lo: float, hi: float, nominal: float) -> float:
    """The middle of the quietest 0.3 s stretch of [lo, hi] of `wav` (see `quietest_point`)."""
    return quietest_point(decode_wav16k(wav, lo, hi), lo, nominal)


def plan_chunks(
    wav: Path, target_s: float, window_s: float | None = None, min_chunk_s: float | None = None,
) -> list[ChunkSpan]:
    """Split a 16 kHz mono WAV into spans of about `target_s` seconds, cut in silences.

    The file is split into n = ⌈duration / target_s⌉ spans of equal length (at most `target_s`), so spans
    decoded side by side finish together (10 min at 180 s: four spans of 150 s, not 180+180+180+60). For
    each boundary k × duration / n, the quietest 0.3 s within ±`window_s` is found and the cut goes in its
    middle. No span is shorter than `min_chunk_s` (a short tail stays with the span before it). A file shorter
    than `target_s` (or `target_s` <= 0) is one span. Spans cover [0, duration) without gaps, where duration
    is the file's length rounded down to the millisecond (`floor_ms`): no span ends after the last sample.
    The search window and the shortest span default to 20 s and 30 s, less for targets under 60 s.
    """
    window_s = min(20.0, target_s / 3) if window_s is None else window_s
    min_chunk_s = min(30.0, target_s / 2) if min_chunk_s is None else min_chunk_s
    wav = Path(wav)
    duration = floor_ms(wav_duration(wav))
    if target_s <= 0 or duration < target_s:
        return [ChunkSpan(index=0, start=0.0, end=duration)]
    cuts: list[float] = []
    previous = 0.0
    pieces = math.ceil(duration / target_s)
    for k in range(1, pieces):
        nominal = k * duration / pieces
        lo = max(previous + min_chunk_s, nominal - window_s)
        hi = min(duration - min_chunk_s, nominal + window_s)
        if hi - lo >= QUIET_S:
            cut = _quietest_point(wav, lo, hi, nominal)
            cuts.append(cut)
            previous = cut
    bounds = [0.0, *cuts, duration]
    return [ChunkSpan(index=i, start=bounds[i], end=bounds[i + 1]) for i in range(len(bounds) - 1)]


# --- one span ---


def span_resumed_s(partial: JsonlLog, span: ChunkSpan) -> float:
    """Seconds of `span` already saved in `partial` by an earlier attempt (0.0 if none)."""
    saved = load_partial(partial)
    if not saved:
        return 0.0
    return r3(min(span.duration_s, max(0.0, saved[-1].end - span.start)))


def transcribe_span(
    engine: AsrEngine,
    wav: Path,
    span: ChunkSpan,
    partial: JsonlLog,
    *,
    language: str | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Segment]:
    """Transcribe [span.start, span.end) of `wav`, resuming after the segments already in `partial`.

    Like `transcribe_resumable` (each segment is appended to `partial` as it comes; `should_stop` raises
    `StopRequested`), bounded to the span. Segment and word times are absolute in the file; ids are 0..n-1
    within the span. `on_progress(seconds_done_in_span, span_length)`.
    """
    length = span.duration_s

    def progress(done: float, _total: float | None) -> None:
        if on_progress is not None:
            on_progress(r3(min(length, max(0.0, done - span.start))), length)

    transcript, _ = transcribe_resumable(
        engine, Path(wav), partial, duration_s=None, language=language, on_progress=progress,
        should_stop=should_stop, start_s=span.start, end_s=span.end,
    )
    return transcript.segments


# --- stitching ---


def _norm(word: str) -> str:
    return re.sub(r"[^\w]+", "", word.lower()) or word.strip().lower()


def _same_span(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    if abs(a_start - b_start) <= SAME_WORD_S:
        return True
    overlap = min(a_end, b_end) - max(a_start, b_start)
    shorter = min(a_end - a_start, b_end - b_start)
    return overlap > 0 and overlap >= 0.5 * shorter


def _without_duplicates(seg: Segment, earlier_words: list[Word], used: set[int],
                        earlier_segments: Iterable[Segment]) -> Segment | None:
    """`seg` minus the words that repeat a word of an earlier chunk over the same time span (None if
    nothing is left). Each earlier word cancels at most one later word."""
    if not seg.words:
        text = _norm(seg.text)
        for other in earlier_segments:
            if _norm(other.text) == text and _same_span(seg.start, seg.end, other.start, other.end):
                return None
        return seg
    kept: list[Word] = []
    for word in seg.words:
        key = _norm(word.word)
        match = next((i for i, e in enumerate(earlier_words) if i not in used and _norm(e.word) == key
                      and _same_span(word.start, word.end, e.start, e.end)), None)
        if match is None:
            kept.append(word)
        else:
            used.add(match)
    if len(kept) == len(seg.words):
        return seg
    if not kept:
        return None
    # Leading words dropped: the segment now starts with its first kept word.
    start = seg.start if kept[0] is seg.words[0] else max(seg.start, kept[0].start)
    return seg.model_copy(update={"words": kept, "text": " ".join(w.word for w in kept), "start": start})


def _fit(seg: Segment, out: list[Segment]) -> Segment:
    """Keep times monotonic: clip the previous segment's end back to where `seg` starts (never before its
    own last word), then start `seg` (and its words) no earlier than that."""
    if out and seg.start < out[-1].end:
        prev = out[-1]
        floor = max(prev.start, prev.words[-1].end if prev.words else prev.start)
        new_end = max(floor, seg.start)
        if new_end < prev.end:
            out[-1] = prev = prev.model_copy(update={"end": new_end})
        start = max(seg.start, prev.end)
        words = [w if w.start >= start else w.model_copy(update={"start": start, "end": max(w.end, start)})
                 for w in seg.words]
        seg = seg.model_copy(update={"start": start, "words": words})
    last_word_end = seg.words[-1].end if seg.words else seg.start
    if seg.end < max(seg.start, last_word_end):
        seg = seg.model_copy(update={"end": max(seg.start, last_word_end)})
    return seg


def merge_chunks(
    parts: list[list[Segment]],
    *,
    engine: str = "merged",
    model: str | None = None,
    language: str | None = None,
    duration_s: float | None = None,
) -> Transcript:
    """One transcript from the chunks' segments: in time order, ids 0..n-1, nothing lost or said twice.

    At a seam, a word of a later chunk with the same text over the same time span as a word of an earlier
    chunk is a duplicate and dropped (a segment left without words goes); every other word is kept. A segment
    that ends after the next one starts is clipped back to it (never before its own last word), and the next
    one starts no earlier than that, so times never go back.
    """
    ordered = sorted((p for p in parts if p), key=lambda p: min(s.start for s in p))  # stable: chunk order
    out: list[Segment] = []
    for part in ordered:
        first_start = min(s.start for s in part)
        # Only the earlier chunks' tail can overlap this one: compare against it.
        tail_segments = [s for s in out if s.end >= first_start - SAME_WORD_S]
        tail_words = [w for s in tail_segments for w in s.words if w.end >= first_start - SAME_WORD_S]
        used: set[int] = set()
        for seg in sorted(part, key=lambda s: (s.start, s.end)):
            if tail_segments:
                deduped = _without_duplicates(seg, tail_words, used, tail_segments)
                if deduped is None:
                    continue
                seg = deduped
            out.append(_fit(seg, out))
    segments = [s.model_copy(update={"id": i}) for i, s in enumerate(out)]
    return Transcript(engine=engine, model=model, language=language, duration_s=duration_s, segments=segments)
