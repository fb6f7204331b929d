"""A deterministic, extractive text engine: no network, no model, the same answer every time.

Quotes: sentences (and short neighbours merged, and the aphorism after a colon) scored for quotability:
length near the configured range, self-contained (no dangling opening like "And"/"It"), salient (content
words that recur in the text, TF-IDF-ish over sentences), no filler, and a bonus for contrast and aphorism
markers. Summary: the most central sentences (cosine to the whole text) as the overview, and the best
diverse sentences as key points, in time order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from clipper.config import Settings
from clipper.llm.schemas import CandidateQuote, CitedPoint, PartialSummary
from clipper.text.chunking import Chunk
from clipper.text.grounding import Token, normalise, tokens

STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between
    both but by can could did do does doing done down during each few for from further get got had has have
    having he her here hers him his how i if in into is it its itself just let like me more most my myself no
    nor not now of off on once only or other our ours out over own really same say said she should so some
    such than that the their theirs them then there these they this those through to too under until up us
    very was we were what when where which while who whom why will with would yes yet you your yours
    yourself going gonna thing things lot one two well okay ok yeah also today""".split()
)
DANGLING = frozenset(
    "and but so or because it this that they them these those he she his her its their which then also yeah "
    "well okay anyway plus".split()
)
FILLER_WORDS = frozenset("um uh er erm ah hmm mhm".split())
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
_END = re.compile(r"[.!?][\"'”’)\]]*$")
_CLAUSE = re.compile(r"[:;][\"'”’)\]]*$")
_ABBREV = frozenset("mr mrs ms dr prof st vs etc eg ie jr sr inc".split())


def stem(word: str) -> str:
    for suffix, keep in (("ing", 5), ("ed", 4), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep - 1:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    words = (normalise(w) for w in text.split())
    return [stem(w) for w in words if len(w) > 2 and w not in STOPWORDS and not w.isdigit()]


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float
    end: float
    first_segment: int
    last_segment: int
    first: int  # token index range [first, last] in the chunk's tokens
    last: int


def _sentence(toks: list[Token], a: int, b: int) -> Sentence:
    part = toks[a : b + 1]
    return Sentence(" ".join(t.text for t in part), part[0].start, part[-1].end, part[0].segment,
                    part[-1].segment, a, b)


def split_sentences(toks: list[Token], max_chars: int = 240) -> list[Sentence]:
    """Sentences on . ! ? (not after a known abbreviation); a run-on longer than `max_chars` also ends at a
    segment boundary, so unpunctuated ASR output still yields sentence-sized units."""
    out: list[Sentence] = []
    first, size = 0, 0
    for i, tok in enumerate(toks):
        size += len(tok.text) + 1
        ends = bool(_END.search(tok.text)) and tok.norm not in _ABBREV
        seg_break = i + 1 < len(toks) and toks[i + 1].segment != tok.segment and size > max_chars
        if ends or seg_break or i == len(toks) - 1:
            if any(t.norm for t in toks[first : i + 1]):
                out.append(_sentence(toks, first, i))
            first, size = i + 1, 0
    return out


class TermStats:
    """Content-word statistics of a text: weight = log(1 + tf) * idf over its sentences."""

    def __init__(self, sentences: list[str]) -> None:
        self.n = max(1, len(sentences))
        bags = [content_words(s) for s in sentences]
        self.tf: Counter[str] = Counter(w for bag in bags for w in bag)
        self.df: Counter[str] = Counter(w for bag in bags for w in set(bag))
        self.top = max((self.weight(w) for w in self.tf), default=1.0) or 1.0

    def weight(self, word: str) -> float:
        if word not in self.tf:
            return 0.0
        return math.log1p(self.tf[word]) * math.log(1 + self.n / self.df[word])

    def salience(self, text: str) -> float:
        """0-1: how densely the text is made of the words this transcript keeps coming back to."""
        words = content_words(text)
        if not words:
            return 0.0
        recurring = sum(self.weight(w) for w in words if self.tf[w] > 1)
        return min(1.0, 2.0 * recurring / (len(words) * self.top))

    def vector(self, text: str) -> Counter[str]:
        return Counter({w: c * self.weight(w) for w, c in Counter(content_words(text)).items()})


def cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(v * b.get(k, 0.0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


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


class OfflineEngine:
    name = "offline"
    model: str | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _sentences(self, chunk: Chunk) -> tuple[list[Token], list[Sentence], TermStats]:
        toks = tokens(chunk.as_transcript())
        sentences = split_sentences(toks, self.settings.quote_max_chars)
        return toks, sentences, TermStats([s.text for s in sentences])

    def _candidates(self, toks: list[Token], sentences: list[Sentence]) -> list[tuple[Sentence, float]]:
        """(candidate, bonus): sentences, two short neighbours merged, and the clause after a colon or
        semicolon (the aphorism after "... said something:"), which gets a small bonus over its frame."""
        lo, hi = self.settings.quote_min_chars, self.settings.quote_max_chars
        out = [(s, 0.0) for s in sentences]
        for a, b in zip(sentences, sentences[1:]):
            if len(a.text) < lo and len(b.text) < lo and len(a.text) + len(b.text) + 1 <= hi:
                out.append((_sentence(toks, a.first, b.last), 0.0))
        for s in sentences:
            for i in range(s.first, s.last):
                if _CLAUSE.search(toks[i].text) and len(_sentence(toks, i + 1, s.last).text) >= 0.5 * lo:
                    out.append((_sentence(toks, i + 1, s.last), 0.15))
        return out

    def propose_quotes(self, chunk: Chunk, max_quotes: int) -> list[CandidateQuote]:
        toks, sentences, stats = self._sentences(chunk)
        lo, hi = self.settings.quote_min_chars, self.settings.quote_max_chars
        scored = sorted(
            ((min(1.0, quotability(c.text, self.settings, stats) + bonus), c)
             for c, bonus in self._candidates(toks, sentences) if 0.75 * lo <= len(c.text) <= hi),
            key=lambda p: (-p[0], p[1].first),
        )
        picked: list[Sentence] = []
        out: list[CandidateQuote] = []
        for q, cand in scored:
            if len(out) >= max_quotes or q < 0.3:
                break
            if any(cand.first <= p.last and p.first <= cand.last for p in picked):
                continue
            picked.append(cand)
            out.append(CandidateQuote(text=cand.text, score=round(100 * q, 1), reason="offline: quotability"))
        return out

    def _central(self, texts: list[str], stats: TermStats) -> list[float]:
        whole = stats.vector(" ".join(texts))
        return [cosine(stats.vector(t), whole) for t in texts]

    def _summary(self, items: list[tuple[str, list[int]]], overviews: list[str] | None = None) -> PartialSummary:
        """Overview from the most central of `overviews` (default: the items), key points from the items."""
        texts = [t for t, _ in items]
        stats = TermStats(texts + (overviews or []))
        pool = overviews if overviews is not None else texts
        central = self._central(pool, stats)
        usable = [i for i in range(len(pool)) if len(content_words(pool[i])) >= 3] or list(range(len(pool)))
        n_over = 3 if len(pool) >= 8 else 2
        chosen = sorted(sorted(usable, key=lambda i: -central[i])[:n_over])
        overview = " ".join(pool[i] for i in chosen)

        item_central = self._central(texts, stats)
        score = [0.5 * quotability(t, self.settings, stats) + 0.5 * c for t, c in zip(texts, item_central)]
        want = min(7, max(3, math.ceil(len(texts) / 3)))
        kept: list[int] = []
        for i in sorted(range(len(texts)), key=lambda i: -score[i]):
            if len(kept) >= want:
                break
            vec = stats.vector(texts[i])
            if any(cosine(vec, stats.vector(texts[j])) > 0.5 for j in kept):
                continue
            kept.append(i)
        points = [CitedPoint(text=texts[i], segments=items[i][1]) for i in sorted(kept)]
        return PartialSummary(overview=overview, key_points=points)

    def summarize_chunk(self, chunk: Chunk) -> PartialSummary:
        _, sentences, _ = self._sentences(chunk)
        return self._summary([(s.text, [s.first_segment, s.last_segment]) for s in sentences])

    def reduce_summaries(self, parts: list[PartialSummary]) -> PartialSummary:
        items = [(p.text, list(p.segments)) for part in parts for p in part.key_points]
        overview_sentences = [s for part in parts for s in re.split(r"(?<=[.!?])\s+", part.overview) if s]
        if not items:
            return PartialSummary(overview=" ".join(overview_sentences[:3]))
        return self._summary(items, overview_sentences)
