"""A deterministic, extractive text engine: no network, no model, the same answer every time.

Everything is built of utterances (`utterances.py`: speaker turns, pauses, and punctuation only when there
is some), so unpunctuated ASR output works as well as punctuated text.

Quotes: an utterance, or two or three neighbouring utterances of one speaker's turn, scored for
quotability: length near the configured range, self-contained (no dangling opening like "And"/"It"),
salient (content words that recur in the text), no filler, and a bonus for contrast and aphorism markers.
At least one quote per `QUOTE_EVERY_S` of speech (and one for any input with speech) even when nothing
scores well: a 30-second call still gets its best line. Summary: the most central utterances within a word
budget (`overview_budget`) as the overview, the best diverse utterances as key points, in time order.
"""

from __future__ import annotations

import math

from clipper.config import Settings
from clipper.llm.schemas import CandidateQuote, CitedPoint, PartialSummary
from clipper.text.chunking import Chunk
from clipper.text.grounding import normalise
from clipper.text.lexicon import TermStats, content_words, cosine, key_phrases
from clipper.text.utterances import Utterance, speech_seconds, utterances

DANGLING = frozenset(
    ["and", "but", "so", "or", "because", "it", "this", "that", "they", "them", "these", "those", "he", "she",
     "his", "her", "its", "their", "which", "then", "also", "yeah", "well", "okay", "anyway", "plus"]
)
FILLER_WORDS = frozenset(["um", "uh", "er", "erm", "ah", "hmm", "mhm"])
FILLER_PHRASES = (
    "you know", "i mean", "thank you", "thanks for", "welcome to", "welcome back", "see you", "subscribe",
    "hello", "hi everyone", "good morning", "good evening", "let's get started", "sort of", "kind of",
)
SIGNPOSTS = (
    "we talk about", "we talked about", "we discussed", "we also discussed", "in this episode", "today we",
    "let's talk", "we will talk", "we'll talk", "our guest", "next week",
)
MARKERS = (
    "never", "always", "the key", "lesson", "is exactly", "worse than", "better than", "more than", "the secret",
    "the truth", "the point", "the problem", "the best", "the worst", "nothing", "everything", "every ",
    "only", "must", "rule", "because", "if you", "instead of", "matters", ": ",
)
QUOTE_EVERY_S = 120.0  # at least one quote per this much speech
MIN_QUOTE_SCORE = 0.3  # below this a candidate is only taken to meet the QUOTE_EVERY_S floor
FLOOR_MIN_WORDS = 5  # ... and then only if it has this many words and three content words
MAX_JOIN = 3  # utterances of one turn a quote may join
JOIN_GAP_S = 1.5  # ... when no pause between them is longer than this
OVERVIEW_SHARE = 0.15  # the overview is at most this share of the text's words
OVERVIEW_MAX_WORDS = 120
KEY_POINT_EVERY_WORDS = 50  # one key point per this many words, within 1..7
MAX_KEY_POINTS = 7


def overview_budget(words: int) -> int:
    """Words an extractive overview of a `words`-word text may use: 15 %, at most 120."""
    return min(OVERVIEW_MAX_WORDS, int(OVERVIEW_SHARE * words))


def quotability(text: str, settings: Settings, stats: TermStats | None = None) -> float:
    """0-1: how well `text` stands alone as a quote."""
    stats = stats or TermStats([text])
    low = " " + " ".join(text.lower().split()) + " "
    size, lo, hi = len(text), settings.quote_min_chars, settings.quote_max_chars
    length = 1.0 if lo <= size <= hi else (size / lo) ** 2 if size < lo else (hi / size) ** 2
    markers = min(1.0, 0.4 * sum(m in low for m in MARKERS))
    score = 0.35 * length + 0.35 * stats.salience(text) + 0.3 * markers
    words = [normalise(w) for w in text.split()]
    if words and words[0] in DANGLING:
        score *= 0.6
    fillers = sum(w in FILLER_WORDS for w in words) + sum(p in low for p in FILLER_PHRASES)
    score *= 0.5**fillers * 0.7 ** sum(p in low for p in SIGNPOSTS)
    if len(content_words(text)) < 3:
        score *= 0.5
    return round(score, 4)


def joined(units: list[Utterance]) -> Utterance:
    """Consecutive utterances as one unit (same turn: the first one's speaker)."""
    a, b = units[0], units[-1]
    return a.model_copy(update={"end": b.end, "text": " ".join(u.text for u in units), "last": b.last,
                                "last_segment": b.last_segment})


def as_sentence(text: str) -> str:
    """An utterance as a sentence of an overview: capital first letter, a full stop if it has no end mark
    (unpunctuated units would otherwise run into each other)."""
    text = text.strip().rstrip(",;:")
    if not text:
        return text
    return text[:1].upper() + text[1:] + ("" if text[-1] in ".!?…" else ".")


def about(texts: list[str], budget: int) -> str:
    """The overview when no utterance fits its budget (a very short input): its key phrases, within budget."""
    phrases: list[str] = []
    for p in key_phrases(" ".join(texts), 3):
        if not phrases or len(" ".join(["About", *phrases, p]).split()) <= budget:
            phrases.append(p)
    return f"About {', '.join(phrases)}." if phrases else ""


class OfflineEngine:
    name = "offline"
    model: str | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _units(self, chunk: Chunk) -> tuple[list[Utterance], TermStats]:
        units = utterances(chunk.as_transcript(), self.settings.quote_max_chars)
        return units, TermStats([u.text for u in units])

    def _candidates(self, units: list[Utterance]) -> list[Utterance]:
        """Every utterance, and runs of up to MAX_JOIN neighbours of one turn that still fit a quote."""
        hi = self.settings.quote_max_chars
        out = list(units)
        for i in range(len(units)):
            for n in range(2, MAX_JOIN + 1):
                run = units[i : i + n]
                if len(run) < n or run[-1].turn != run[0].turn or run[-1].start - run[-2].end > JOIN_GAP_S:
                    break
                cand = joined(run)
                if len(cand.text) > hi:
                    break
                out.append(cand)
        return out

    def propose_quotes(self, chunk: Chunk, max_quotes: int) -> list[CandidateQuote]:
        units, stats = self._units(chunk)
        lo, hi = self.settings.quote_min_chars, self.settings.quote_max_chars
        scored = sorted(((quotability(c.text, self.settings, stats), c) for c in self._candidates(units)
                         if len(c.text) <= hi), key=lambda p: (-p[0], p[1].first))
        floor = min(max_quotes, max(1, math.ceil(speech_seconds(units) / QUOTE_EVERY_S))) if units else 0
        picked: list[tuple[float, Utterance]] = []

        def take(q: float, cand: Utterance) -> None:
            if not any(cand.first <= p.last and p.first <= cand.last for _, p in picked):
                picked.append((q, cand))

        for q, cand in scored:  # the good ones
            if len(picked) >= max_quotes or q < MIN_QUOTE_SCORE:
                break
            if len(cand.text) >= 0.75 * lo:
                take(q, cand)
        for q, cand in scored:  # the floor: the best of what there is, even if short or plain
            if len(picked) >= floor:
                break
            if cand.words >= FLOOR_MIN_WORDS and len(content_words(cand.text)) >= 3:
                take(q, cand)
        if not picked and floor:  # plain or fragmented talk (short turns): still the one most substantial unit
            q, cand = max(scored, key=lambda p: (len(content_words(p[1].text)), p[1].words, p[0]), default=(0, None))
            if cand is not None and cand.words >= 3:
                take(q, cand)
        return [CandidateQuote(text=c.text, score=round(100 * q, 1), reason="offline: quotability") for q, c in picked]

    def _summary(self, items: list[CitedPoint], pool: list[CitedPoint], budget: int, words: int) -> PartialSummary:
        """Overview: the most central units of `pool` that fit `budget` words, in time order. Key points: the
        best diverse `items` (quotability and centrality), not already in the overview, in time order."""
        texts = [p.text for p in items]
        stats = TermStats(texts + [p.text for p in pool])
        whole = stats.vector(" ".join(texts))
        central = [cosine(stats.vector(p.text), whole) for p in pool]
        usable = [i for i, p in enumerate(pool) if len(content_words(p.text)) >= 3] or list(range(len(pool)))
        chosen, used = [], 0
        for i in sorted(usable, key=lambda i: (-central[i], i)):
            size = len(pool[i].text.split())
            vec = stats.vector(pool[i].text)
            if any(cosine(vec, stats.vector(pool[j].text)) > 0.5 for j in chosen):
                continue  # says what the overview already says
            if used + size <= budget:
                chosen.append(i)
                used += size
        overview = [pool[i] for i in sorted(chosen, key=lambda i: (pool[i].start or 0.0, i))]

        want = min(MAX_KEY_POINTS, max(1, math.ceil(words / KEY_POINT_EVERY_WORDS)))
        in_overview = {p.text for p in overview}
        score = [0.5 * quotability(t, self.settings, stats) + 0.5 * cosine(stats.vector(t), whole) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (-score[i], i))
        fresh = [i for i in order if texts[i] not in in_overview and len(content_words(texts[i])) >= 3]
        kept: list[int] = []
        for i in fresh + [i for i in order if i not in fresh]:
            if len(kept) >= want:
                break
            vec = stats.vector(texts[i])
            if i in kept or any(cosine(vec, stats.vector(texts[j])) > 0.5 for j in kept):
                continue
            kept.append(i)
        text = " ".join(as_sentence(p.text) for p in overview) or about(texts, budget)
        return PartialSummary(overview=text, overview_points=overview, words=words,
                              key_points=[items[i] for i in sorted(kept, key=lambda i: (items[i].start or 0.0, i))])

    def summarize_chunk(self, chunk: Chunk) -> PartialSummary:
        units, _ = self._units(chunk)
        items = [CitedPoint(text=u.text, segments=[u.first_segment, u.last_segment], start=u.start, end=u.end)
                 for u in units]
        words = sum(u.words for u in units)
        return self._summary(items, items, overview_budget(words), words)

    def reduce_summaries(self, parts: list[PartialSummary]) -> PartialSummary:
        """The parts' key points compete again; the overview is chosen among the parts' overview units, so it
        stays within the parts' budgets added up (each a share of its chunk's words)."""
        items = [p for part in parts for p in part.key_points]
        pool = [p for part in parts for p in part.overview_points]
        budget = min(OVERVIEW_MAX_WORDS, sum(len(p.text.split()) for p in pool))
        if not items:
            return PartialSummary(overview=" ".join(as_sentence(p.text) for p in pool), overview_points=pool)
        return self._summary(items, pool, budget, sum(p.words for p in parts))
