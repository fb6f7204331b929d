"""Chapter titles that read as a phrase: words the chapter actually says, in the order it says them.

Offline, a title is a key phrase of the chapter as spoken: 2-6 consecutive words of one utterance, never
across a sentence end, trimmed of leading and trailing stopwords (`lexicon.stopwords`), scored by how much
its content words belong to this chapter rather than to the others (log tf in the chapter × idf over the
chapters), a little more for a phrase the chapter says more than once. Never a bag of stems glued with "and".

With an LLM, the model's title stands only if the chapter's words support it (`supported`): most of its
content words (stemmed) occur in the chapter; otherwise the phrase title stays.
"""

from __future__ import annotations

import math
from collections import Counter

from clipper.text.grounding import normalise
from clipper.text.lexicon import content_words, stem, stopwords

MIN_WORDS, MAX_WORDS = 2, 6
TITLE_MAX_CHARS = 60
UNTITLED = "Untitled"
SUPPORTED_SHARE = 0.6  # share of an LLM title's content words the chapter must say
_BREAK = (".", "!", "?", "…", ",", ";", ":")


def _clean(word: str) -> str:
    """A word as shown in a title: the transcript's spelling without surrounding punctuation."""
    return word.strip("\"'“”‘’()[]{}.,;:!?…-—")


def candidates(text: str) -> list[tuple[str, ...]]:
    """Runs of 2-6 consecutive words of `text` that start and end on a content word and cross no sentence
    or clause mark (a comma, a full stop)."""
    stop = stopwords()
    words = text.split()
    out = []
    for i in range(len(words)):
        for n in range(MIN_WORDS, MAX_WORDS + 1):
            run = words[i : i + n]
            if len(run) < n:
                break
            if any(w.endswith(_BREAK) for w in run[:-1]):
                break  # a phrase never crosses a sentence or clause end
            first, last = normalise(run[0]), normalise(run[-1])
            if not first or not last or first in stop or last in stop or len(first) < 3 or len(last) < 3:
                continue
            if first.isdigit() or last.isdigit():
                continue
            out.append(tuple(_clean(w) for w in run))
    return out


def phrase_title(texts: list[str], chapters: list[list[str]], taken: set[str]) -> str:
    """The best key phrase of the chapter whose utterances are `texts` (others: every chapter's utterances,
    for how specific a word is), not one an earlier chapter took (`taken`, updated)."""
    tf = Counter(w for t in texts for w in content_words(t))
    df = Counter(w for ch in chapters for w in {w for t in ch for w in content_words(t)})
    n = max(1, len(chapters))

    def weight(w: str) -> float:
        return math.log1p(tf[w]) * math.log(1 + n / max(1, df[w]))

    said: Counter[str] = Counter()
    found: dict[str, tuple[str, ...]] = {}
    for t in texts:
        for run in candidates(t):
            key = " ".join(normalise(w) for w in run)
            said[key] += 1
            found.setdefault(key, run)
    best, best_score = None, 0.0
    for key, run in found.items():
        stems = [stem(normalise(w)) for w in run if normalise(w) not in stopwords() and len(normalise(w)) > 2]
        if key in taken or len(set(stems)) < min(2, len(stems)):
            continue  # "morning morning": not a phrase
        score = sum(weight(s) for s in set(stems)) / math.sqrt(len(run)) * (1 + 0.5 * math.log(said[key]))
        if score > best_score or (score == best_score and best is not None and key < best):
            best, best_score = key, score
    if best is None:  # nothing two words long worth naming (a chapter of a few stray words): no made-up title
        return UNTITLED
    taken.add(best)
    return _cap(" ".join(found[best]))


def _cap(title: str) -> str:
    title = title[:TITLE_MAX_CHARS].strip()
    return title[:1].upper() + title[1:]


def supported(title: str, text: str) -> bool:
    """Whether the chapter's words (`text`) support a model's `title`: at least SUPPORTED_SHARE of the
    title's content words occur in it (stemmed), and at least one does."""
    words = set(content_words(title))
    if not words:
        return False
    said = set(content_words(text))
    return len(words & said) >= max(1, SUPPORTED_SHARE * len(words))
