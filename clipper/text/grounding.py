"""Ground an engine's quote in the transcript: find the span of transcript words it came from.

The engine's text is never trusted: a grounded quote's `text` is the transcript's own words for the span
(its casing and punctuation), its times are those words' times, and `match` says how close the candidate
was (rapidfuzz ratio, 0-100). Candidates below the caller's threshold are ungrounded and dropped.

Alignment runs on a normalised string of all words (lowercase, no punctuation): rapidfuzz's
`partial_ratio_alignment` finds the best region in characters (milliseconds for a 2-hour transcript), which
is snapped to word boundaries and then refined by trying nearby word boundaries for the best full ratio.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from clipper.job.outputs import Quote, Transcript

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
MIN_WORDS = 4  # a quote cut back to one speaker keeps at least this many words (or the candidate's own count)
DUPLICATE_RATIO = 90.0  # rapidfuzz ratio from which two quotes say the same words


def normalise(word: str) -> str:
    """Lowercase, punctuation removed (`Don't,` -> `dont`)."""
    return _NON_WORD.sub("", word.lower())


def normalise_text(text: str) -> str:
    return " ".join(n for n in (normalise(w) for w in text.split()) if n)


@dataclass(frozen=True)
class Token:
    text: str  # as the transcript has it
    norm: str  # normalised; empty for punctuation-only tokens
    start: float
    end: float
    segment: int  # segment id
    speaker: str | None = None  # the word's speaker (else its segment's); None = one unknown speaker


def tokens(transcript: Transcript) -> list[Token]:
    """All words of the transcript in order. A segment without word times contributes its text split on
    whitespace, each token carrying the segment's start and end (segment-level times)."""
    out: list[Token] = []
    for seg in transcript.segments:
        if seg.words:
            for w in seg.words:
                text = w.word.strip()
                if text:
                    out.append(Token(text, normalise(text), w.start, w.end, seg.id, w.speaker or seg.speaker))
        else:
            for text in seg.text.split():
                out.append(Token(text, normalise(text), seg.start, seg.end, seg.id, seg.speaker))
    return out


class WordIndex:
    """The transcript's words and their normalised, space-joined string; build once, align many times."""

    def __init__(self, transcript: Transcript) -> None:
        self.tokens = tokens(transcript)
        self.keys = [i for i, t in enumerate(self.tokens) if t.norm]  # token indices of real words
        self.offsets: list[int] = []
        pos = 0
        for i in self.keys:
            self.offsets.append(pos)
            pos += len(self.tokens[i].norm) + 1
        self.text = " ".join(self.tokens[i].norm for i in self.keys)

    def _span(self, a: int, b: int) -> str:
        """Normalised text of key positions a..b inclusive."""
        return self.text[self.offsets[a] : self.offsets[b] + len(self.tokens[self.keys[b]].norm)]

    def span_text(self, first: int, last: int) -> str:
        """Exact transcript words of token indices first..last inclusive."""
        return " ".join(t.text for t in self.tokens[first : last + 1])


def _index(source: Transcript | WordIndex) -> WordIndex:
    return source if isinstance(source, WordIndex) else WordIndex(source)


def align(candidate: str, transcript: Transcript | WordIndex) -> tuple[int, int, float] | None:
    """(first word index, last word index, score 0-100) of the best matching span, or None if nothing to match.

    Word indices refer to `tokens(transcript)` (equivalently `WordIndex(transcript).tokens`).
    """
    idx = _index(transcript)
    cand = normalise_text(candidate)
    if not cand or not idx.keys:
        return None
    n = len(idx.keys)
    if len(cand) >= len(idx.text):
        a, b = 0, n - 1
    else:
        hit = fuzz.partial_ratio_alignment(cand, idx.text)
        if hit is None:
            return None
        a = max(0, bisect.bisect_right(idx.offsets, hit.dest_start) - 1)
        if hit.dest_start >= idx.offsets[a] + len(idx.tokens[idx.keys[a]].norm) and a + 1 < n:
            a += 1  # the region starts in the space after word a
        b = max(a, bisect.bisect_right(idx.offsets, max(hit.dest_end - 1, 0)) - 1)
    # Refine: nearby word boundaries, scored by the full ratio (the region may cut words or miss a few).
    k = max(2, min(15, round(0.3 * len(cand.split()))))
    best = (-1.0, a, b)
    for s in range(max(0, a - k), min(n - 1, a + k) + 1):
        for e in range(max(s, b - k), min(n - 1, b + k) + 1):
            score = fuzz.ratio(cand, idx._span(s, e))
            if score > best[0]:
                best = (score, s, e)
    score, s, e = best
    return idx.keys[s], idx.keys[e], float(score)


def one_speaker(toks: list[Token], first: int, last: int) -> tuple[int, int]:
    """The longest run of one speaker's words inside first..last (ties: the earlier run). A quote is what one
    person said: a span that crosses a turn change is cut back to its main speaker's part."""
    best, run_start = (first, first), first
    for i in range(first, last + 1):
        if i > first and toks[i].speaker != toks[i - 1].speaker:
            run_start = i
        if i - run_start > best[1] - best[0]:
            best = (run_start, i)
    return best


def ground_quote(
    candidate: str, transcript: Transcript | WordIndex, min_score: float, reason: str | None = None
) -> Quote | None:
    """The transcript's own span for `candidate` as a Quote (rank 0: the caller ranks), or None if ungrounded.

    The span is cut back to one speaker's words (`one_speaker`); if that leaves fewer than `MIN_WORDS` words
    the candidate is not a quote of anyone and is dropped like an ungrounded one."""
    idx = _index(transcript)
    hit = align(candidate, idx)
    if hit is None or hit[2] < min_score:
        return None
    first, last, score = hit
    first, last = one_speaker(idx.tokens, first, last)
    if sum(1 for t in idx.tokens[first : last + 1] if t.norm) < min(MIN_WORDS, len(normalise_text(candidate).split())):
        return None
    return Quote(
        rank=0,
        text=idx.span_text(first, last),
        start=idx.tokens[first].start,
        end=max(idx.tokens[last].end, idx.tokens[first].start),
        match=round(score, 1),
        reason=reason,
        speaker=idx.tokens[first].speaker,
    )


def _overlaps(a: Quote, b: Quote) -> bool:
    return min(a.end, b.end) > max(a.start, b.start)


def same_words(a: str, b: str) -> bool:
    """Near-duplicate texts: the same words give or take a few (rapidfuzz ratio on normalised text)."""
    return fuzz.ratio(normalise_text(a), normalise_text(b)) >= DUPLICATE_RATIO


def dedupe(quotes: list[Quote]) -> tuple[list[Quote], int]:
    """Quotes in score order with no two overlapping in time and no two saying the same words: of each such
    group only the best-scored one is kept (it stands for the others). Returns (kept, how many dropped)."""
    kept: list[Quote] = []
    dups = 0
    for q in sorted(quotes, key=lambda q: (q.score, q.match, -q.start), reverse=True):
        if any(_overlaps(q, k) or same_words(q.text, k.text) for k in kept):
            dups += 1
        else:
            kept.append(q)
    return kept, dups
