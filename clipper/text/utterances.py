"""Utterances: the units quotes, summaries and chapters are built from, found without trusting punctuation.

Whisper tiny.en writes no punctuation at all on much conversational speech, so a sentence splitter alone
leaves one run-on "sentence" per recording. An utterance ends where the evidence is, strongest first:
  1. the speaker changes (a word's `speaker`, set by the `speakers` stage; None = one unknown speaker),
  2. a pause between words of at least `PAUSE_S`,
  3. sentence-final punctuation, when the engine wrote some (not after an abbreviation such as "Dr."),
and an utterance still longer than `max_chars` is cut at its longest internal pause (an ASR segment boundary
counts as a little extra pause), again and again, so no unit is ever longer than a quote may be.
A *turn* is a run of utterances by the same speaker: quotes may join neighbouring utterances of one turn.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from clipper.job.outputs import Transcript
from clipper.text.grounding import Token, tokens

PAUSE_S = 0.8  # silence between two words that ends an utterance (conversational turns-within-turns)
SEGMENT_BONUS_S = 0.3  # an ASR segment boundary is worth this much extra pause when a long unit is cut
MAX_CHARS = 240  # default longest utterance (the default longest quote)
MIN_PART_WORDS = 3  # a cut never leaves a part shorter than this
_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_ABBREV = frozenset(["mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "eg", "ie", "jr", "sr", "inc", "no"])


class Utterance(BaseModel):
    index: int
    speaker: str | None = None
    turn: int  # index of the speaker turn (a run of utterances by one speaker) it belongs to
    start: float
    end: float
    text: str  # the transcript's own words, space-joined
    first: int  # token index range [first, last] in `tokens(transcript)`
    last: int
    first_segment: int
    last_segment: int

    @property
    def words(self) -> int:
        return len(self.text.split())


def _ends_sentence(tok: Token) -> bool:
    return bool(_END.search(tok.text)) and tok.norm not in _ABBREV


def _gap(toks: list[Token], i: int) -> float:
    """Pause after token i (segment-level times give 0 inside a segment)."""
    return max(0.0, toks[i + 1].start - toks[i].end)


def _cut(toks: list[Token], a: int, b: int, max_chars: int) -> list[tuple[int, int]]:
    """[a, b] as pieces of at most `max_chars`, cut at the longest pauses (segment boundaries weigh extra)."""
    size = sum(len(t.text) + 1 for t in toks[a : b + 1]) - 1
    if size <= max_chars or b - a + 1 < 2 * MIN_PART_WORDS:
        return [(a, b)]
    lo, hi = a + MIN_PART_WORDS - 1, b - MIN_PART_WORDS
    middle = (a + b) / 2

    def strength(i: int) -> tuple[float, float]:
        bonus = SEGMENT_BONUS_S if toks[i + 1].segment != toks[i].segment else 0.0
        clause = 0.1 if toks[i].text.endswith((",", ";", ":")) else 0.0
        return (_gap(toks, i) + bonus + clause, -abs(i - middle))  # ties: nearest the middle

    cut = max(range(lo, hi + 1), key=strength)
    return _cut(toks, a, cut, max_chars) + _cut(toks, cut + 1, b, max_chars)


def split_utterances(toks: list[Token], max_chars: int = MAX_CHARS, pause_s: float = PAUSE_S) -> list[Utterance]:
    """The utterances of `toks` (as `tokens(transcript)` returns them), in order, covering every token."""
    spans: list[tuple[int, int]] = []
    first = 0
    for i, tok in enumerate(toks):
        last = i == len(toks) - 1
        if last or toks[i + 1].speaker != tok.speaker or _gap(toks, i) >= pause_s or _ends_sentence(tok):
            spans += _cut(toks, first, i, max_chars)
            first = i + 1
    out: list[Utterance] = []
    turn = 0
    for a, b in spans:
        if not any(t.norm for t in toks[a : b + 1]):
            continue  # punctuation only
        if out and toks[a].speaker != out[-1].speaker:
            turn += 1
        part = toks[a : b + 1]
        out.append(Utterance(
            index=len(out), speaker=part[0].speaker, turn=turn, start=part[0].start,
            end=max(part[-1].end, part[0].start),
            text=" ".join(t.text for t in part), first=a, last=b, first_segment=part[0].segment,
            last_segment=part[-1].segment,
        ))
    return out


def utterances(transcript: Transcript, max_chars: int = MAX_CHARS, pause_s: float = PAUSE_S) -> list[Utterance]:
    return split_utterances(tokens(transcript), max_chars, pause_s)


def speech_seconds(units: list[Utterance]) -> float:
    """Seconds of speech: the utterances' spans added up (pauses between them do not count)."""
    return sum(u.end - u.start for u in units)
