"""Subtitle-sized segments from word timestamps.

Whisper's batched decoding (used for chunks, see clipper/asr/local.py) returns one segment per decoding window,
up to 30 s long: too long for a subtitle line or a quote's context. Its word timestamps are precise, so the
segments are cut again between words: after a sentence's end, at a pause, or before the segment gets long.
"""

from __future__ import annotations

from clipper.job.outputs import Segment, Word

SENTENCE_END = (".", "?", "!")


def split_segment(segment: Segment, max_s: float = 10.0, pause_s: float = 0.6, min_s: float = 1.5) -> list[Segment]:
    """`segment` cut between words: after a word ending a sentence or followed by a pause of `pause_s`
    (once the piece is `min_s` long), and always before a piece would pass `max_s`. Text is the words
    joined; a segment without words is returned as it is."""
    words = segment.words
    if not words:
        return [segment]
    pieces: list[list[Word]] = [[]]
    for i, word in enumerate(words):
        current = pieces[-1]
        if current and word.end - current[0].start > max_s:
            pieces.append([])
            current = pieces[-1]
        current.append(word)
        following = words[i + 1] if i + 1 < len(words) else None
        long_enough = word.end - current[0].start >= min_s
        if following and long_enough and (word.word.endswith(SENTENCE_END) or following.start - word.end >= pause_s):
            pieces.append([])
    return [Segment(id=segment.id, start=p[0].start, end=p[-1].end, text=" ".join(w.word for w in p), words=p)
            for p in pieces if p]
