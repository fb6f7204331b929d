"""Chapters: topic segments over the utterances, with times from the transcript, a title and 1-3 key points.

Segmentation is TextTiling-like lexical cohesion (Hearst 1997), on utterances rather than sentences so it
works without punctuation: at every gap between two utterances, compare the content words of the ~`window`
words before it with the ~`window` words after it (cosine); a topic shift is a valley of that similarity, and
its *depth* (how far the similarity climbs again on both sides) says how sharp the shift is. The deepest
valleys become chapter boundaries, as long as every chapter stays at least `min_chapter_s` long and there
are at most `max_chapters` (about one per 4 minutes, 15 at most): a 30-second call is one chapter, a 1-3 h
Space 5-15. Titles are the chapter's key phrases (YAKE, unsupervised and offline); key points its most
central, quotable utterances. With an LLM the segmentation stays (times must come from the transcript and
a model only ever sees one chunk of a long recording) and the model only titles the chapters.

Renderers: `chapters_markdown(summary)` and `description_lines(chapters)` ("00:00 Title", the YouTube/X
description format).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from pydantic import BaseModel, Field

from clipper.clock import HOUR, clock
from clipper.config import Settings
from clipper.job.outputs import Chapter, Summary, Transcript
from clipper.text.lexicon import TermStats, content_words, cosine, key_phrases
from clipper.text.offline import quotability
from clipper.text.utterances import Utterance, utterances

MIN_CHAPTER_S = 60.0  # a chapter is at least this long (YouTube wants 10 s; readers want more)
SECONDS_PER_CHAPTER = 240.0  # at most one chapter per this much audio ...
MAX_CHAPTERS = 15  # ... and never more than this
TITLE_MAX_CHARS = 60


def limits(duration_s: float) -> tuple[int, float]:
    """(most chapters, shortest chapter in seconds) for a recording of `duration_s`."""
    most = min(MAX_CHAPTERS, max(1, math.ceil(duration_s / SECONDS_PER_CHAPTER)))
    return most, max(MIN_CHAPTER_S, duration_s / (3 * MAX_CHAPTERS))


def _window_words(total_words: int) -> int:
    return max(60, min(300, total_words // 8))


def cohesion(units: list[Utterance], window: int) -> list[float]:
    """Similarity across each gap (gap i lies before unit i, i = 1..n-1): cosine of the content-word counts
    of about `window` words on either side."""
    bags = [Counter(content_words(u.text)) for u in units]
    sizes = [u.words for u in units]
    out = []
    for i in range(1, len(units)):
        left, right = Counter(), Counter()
        j, n = i - 1, 0
        while j >= 0 and n < window:
            left.update(bags[j])
            n, j = n + sizes[j], j - 1
        j, n = i, 0
        while j < len(units) and n < window:
            right.update(bags[j])
            n, j = n + sizes[j], j + 1
        out.append(cosine(left, right))
    return out


def depths(scores: list[float]) -> list[float]:
    """TextTiling depth of each gap: climb to the highest score on the left and on the right."""
    out = []
    for i, s in enumerate(scores):
        left = right = s
        for v in reversed(scores[:i]):
            if v < left:
                break
            left = v
        for v in scores[i + 1 :]:
            if v < right:
                break
            right = v
        out.append((left - s) + (right - s))
    return out


def boundaries(units: list[Utterance], duration_s: float) -> list[int]:
    """Indices of the utterances that start a chapter (always 0 first)."""
    most, shortest = limits(duration_s)
    if most <= 1 or len(units) < 4:
        return [0]
    scores = cohesion(units, _window_words(sum(u.words for u in units)))
    smooth = [statistics.fmean(scores[max(0, i - 1) : i + 2]) for i in range(len(scores))]
    depth = depths(smooth)
    cutoff = statistics.fmean(depth) - statistics.pstdev(depth) / 2
    start, end = units[0].start, units[-1].end
    chosen: list[int] = []
    for g in sorted(range(len(depth)), key=lambda g: (-depth[g], g)):
        if len(chosen) >= most - 1 or depth[g] <= max(cutoff, 0.0):
            break
        at = units[g + 1].start
        edges = [start, end] + [units[c].start for c in chosen]
        if all(abs(at - e) >= shortest for e in edges):
            chosen.append(g + 1)
    return [0, *sorted(chosen)]


def title_of(text: str, taken: set[str]) -> str:
    """A short title from the best one or two key phrases not already used by an earlier chapter."""
    phrases = [p for p in key_phrases(text, 6) if p.lower() not in taken] or key_phrases(text, 1) or ["Untitled"]
    title, second = phrases[0], (phrases[1] if len(phrases) > 1 else None)
    if second and len(title) + len(second) + 5 <= TITLE_MAX_CHARS:
        title = f"{title} and {second}"
    taken.update(p.lower() for p in (phrases[0], second) if p)
    return title[:1].upper() + title[1:TITLE_MAX_CHARS]


def chapter_points(units: list[Utterance], settings: Settings) -> list[str]:
    """1-3 of the chapter's utterances: central to it, quotable, not saying the same thing twice."""
    texts = [u.text for u in units]
    stats = TermStats(texts)
    whole = stats.vector(" ".join(texts))
    words = sum(u.words for u in units)
    want = 1 + (words > 300) + (words > 800)
    score = {i: 0.5 * quotability(t, settings, stats) + 0.5 * cosine(stats.vector(t), whole)
             for i, t in enumerate(texts)}
    rich = [i for i in score if len(content_words(texts[i])) >= 3] or list(score)
    kept: list[int] = []
    for i in sorted(rich, key=lambda i: (-score[i], i)):
        if len(kept) >= want:
            break
        if not any(cosine(stats.vector(texts[i]), stats.vector(texts[j])) > 0.5 for j in kept):
            kept.append(i)
    return [texts[i] for i in sorted(kept)]


def make_chapters(transcript: Transcript, settings: Settings) -> tuple[list[Chapter], list[Utterance]]:
    """The transcript's chapters (offline titles and points) and the utterances they were cut from."""
    units = utterances(transcript, settings.quote_max_chars)
    if not units:
        return [], units
    duration = transcript.duration_s or units[-1].end
    starts = boundaries(units, duration)
    chapters, taken = [], set()
    for a, b in zip(starts, starts[1:] + [len(units)]):
        part = units[a:b]
        title = title_of(" ".join(u.text for u in part), taken)
        chapters.append(Chapter(start=part[0].start, end=part[-1].end, title=title,
                                key_points=chapter_points(part, settings)))
    return chapters, units


# --- renderers ---


class ChapterList(BaseModel):
    """chapters.json: the chapters and their description lines, ready to paste."""

    chapters: list[Chapter] = Field(default_factory=list)
    description: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, chapters: list[Chapter]) -> ChapterList:
        return cls(chapters=chapters, description=description_lines(chapters))


def description_lines(chapters: list[Chapter]) -> list[str]:
    """"00:00 Title" lines for a YouTube/X description: the first always at 00:00, h:mm:ss from an hour on."""
    return [f"{clock(0.0 if i == 0 else c.start)} {c.title}" for i, c in enumerate(chapters)]


def chapters_markdown(summary: Summary) -> str:
    """chapters.md: the description lines, then each chapter with its span and key points."""
    lines = ["# Chapters", ""]
    if not summary.chapters:
        return "\n".join(lines + ["_No chapters: no speech was detected._"]) + "\n"
    hours = True if summary.chapters[-1].end >= HOUR else None  # h:mm:ss throughout, so the spans line up
    lines += ["```", *description_lines(summary.chapters), "```", ""]
    for c in summary.chapters:
        lines += [f"## {clock(c.start, hours)}–{clock(c.end, hours)} {c.title}", ""]
        lines += [f"- {p}" for p in c.key_points] + [""]
    return "\n".join(lines).rstrip() + "\n"
