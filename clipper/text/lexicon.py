"""Words that carry content, and how much: stemming, stopwords, term weights and cosine similarity.

Libraries, not hand-written lists: the Snowball English stemmer (`snowballstemmer`, which uses PyStemmer's
C implementation when installed) and YAKE's English stopword list (the SMART list, shipped inside the `yake`
wheel, whose key phrases also name what a very short partial summary is about), extended with the fillers of
spoken conversation that no written-text list has ("yeah", "gonna", "mhm"). Everything here runs offline: no corpus is downloaded (nltk would).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

import snowballstemmer

from clipper.text.grounding import normalise

# Spoken-language fillers and discourse words a written stopword list does not know about.
SPOKEN = frozenset(
    ["yeah", "yes", "yep", "nope", "okay", "ok", "oh", "ah", "uh", "um", "er", "erm", "hmm", "mhm", "mm", "huh",
     "gonna", "wanna", "gotta", "kinda", "sorta", "lot", "thing", "things", "stuff", "really", "just", "like",
     "well", "actually", "basically", "literally", "guess", "mean", "know", "right", "sure", "today"]
)


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """YAKE's English list (normalised like transcript words: "don't" -> "dont") plus the spoken fillers."""
    import yake

    listed = yake.KeywordExtractor(lan="en").stopword_set
    return frozenset({normalise(w) for w in listed} | {normalise(w) for w in SPOKEN}) - {""}


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def content_words(text: str) -> list[str]:
    """Stems of the words that carry content: not stopwords, not numbers, longer than two letters."""
    stop = stopwords()
    words = (normalise(w) for w in text.split())
    return [stem(w) for w in words if len(w) > 2 and w not in stop and not w.isdigit()]


class TermStats:
    """Content-word statistics of a text: weight = log(1 + tf) * idf over its units (utterances)."""

    def __init__(self, units: list[str]) -> None:
        self.n = max(1, len(units))
        bags = [content_words(s) for s in units]
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


KEEP = frozenset({"new"})  # SMART stopwords that name things in titles ("New Jersey")


@lru_cache(maxsize=1)
def _extractor():
    import yake

    base = yake.KeywordExtractor(lan="en").stopword_set - KEEP
    return yake.KeywordExtractor(lan="en", n=3, top=8, dedup_lim=0.7, stopwords=set(base) | set(SPOKEN))


def key_phrases(text: str, top: int = 3) -> list[str]:
    """The text's key phrases, best first (YAKE: lower score = more relevant), none sharing a word with a
    better one ("meetings", "meetings is talking" -> "meetings")."""
    if not text.strip():
        return []
    out: list[str] = []
    seen: set[str] = set()
    for phrase, _ in sorted(_extractor().extract_keywords(text), key=lambda p: p[1]):
        words = set(phrase.lower().split())
        if not words & seen:
            out.append(phrase)
            seen |= words
    return out[:top]
