"""Chapters: topic segments over the utterances, with times from the transcript, a title and 1-3 key points.

A boundary is placed where the evidence that holds for speech agrees (no punctuation needed):
  * lexical cohesion (TextTiling, Hearst 1997): at every gap, the content-word stems (Snowball stemmer, YAKE's
    stopword list: `lexicon.py`) of ~`window` words before it against ~`window` words after it (cosine); a
    topic shift is a valley of that similarity, and its *depth* (how far it climbs again on both sides) says
    how sharp the shift is;
  * who speaks: the talk handed over to voices not heard before (speaker labels from the `speakers` stage;
    none known = no evidence);
  * where the recording's sound changes (`clipper/speakers/changes.py`: voices, microphone, line and noise
    compared over `sound_window_s` either side), so a join of recordings is found where the transcript has no
    words at all (speech the model does not know): in a long wordless gap a chapter starts where the sound
    changes most, not where the words resume, and another at each further strong change (a wordless stretch
    may hold several recordings: such a chapter has no words, and is "Untitled");
  * whether the voices heard after the gap were heard before it (`clipper/speakers/voices.py`: the speakers
    stage's embeddings, so it holds where clustering gave two recordings' voices one label);
  * a long pause before the gap.
Their weighted sum (`Tuning`) must reach `min_score`; the strongest gaps win while every chapter stays at
least `limits()`'s shortest (scaled to the recording) — or `short_chapter_s` between two starts with strong
evidence, as a 30 s call between two longer recordings — and there are at most one per `seconds_per_chapter`.
Candidates are the gaps between utterances; inside an ASR segment only its longest pause between words, and
only a clear one (`in_segment_pause_s`), so an ASR segment run across a join does not hide it, and no boundary
ever falls inside a sentence. Without the audio (`sound` None) the `WORDS_ONLY` settings apply (no voices either).
Titles are key phrases as spoken (`titles.py`); key points the chapter's most central, quotable utterances.
With an LLM the segmentation stays (times must come from the transcript and a model only ever sees one chunk
of a long recording) and the model's titles are kept only when the chapter's words support them.

Renderers: `chapters_markdown(summary)` and `description_lines(chapters)` ("00:00 Title", the YouTube/X
description format).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from pydantic import BaseModel, Field

from clipper.clock import HOUR, clock
from clipper.config import Settings
from clipper.job.outputs import Chapter, Summary, Transcript
from clipper.speakers.changes import SoundProfile
from clipper.speakers.voices import VoiceProfile
from clipper.text.lexicon import TermStats, content_words, cosine
from clipper.text.offline import quotability
from clipper.text.titles import phrase_title
from clipper.text.utterances import Utterance, utterances


@dataclass(frozen=True)
class Tuning:
    """Every threshold of the segmentation (chosen on bench/chapters.py's tuning joins only: docs/quality.md)."""

    min_chapter_s: float = 60.0  # a chapter is at least this long (YouTube wants 10 s; readers want more) ...
    shortest_share: float = 1 / 45  # ... and at least this share of the recording
    seconds_per_chapter: float = 90.0  # at most one chapter per this much audio ...
    max_chapters: int = 15  # ... and never more than this
    window_words: tuple[int, int, int] = (60, 250, 8)  # words compared each side of a gap: total/8, in 60..250
    lexical: float = 1.0  # how much each kind of evidence counts
    speakers: float = 1.5
    pause: float = 0.0
    sound: float = 1.0
    min_score: float = 0.4  # a gap whose weighted evidence is below this never starts a chapter
    pause_s: tuple[float, float] = (1.0, 4.0)  # a pause counts from the first figure and fully from the second
    sound_window_s: float = 40.0  # audio compared each side of a gap
    sound_change: tuple[float, float] = (0.7, 1.7)  # a sound change counts from the first and fully from the second
    wordless_s: float = 5.0  # in a gap longer than this a chapter starts where the sound changes, not at the words
    in_segment_pause_s: float = 1.0  # a pause inside an ASR segment this long may start a chapter (its longest)
    several_per_gap: bool = True  # a wordless gap may start a chapter at each strong sound change, not one only
    voices: float = 0.25  # how much a change of the voices heard counts (clipper/speakers/voices.py) ...
    voice_change: tuple[float, float] = (0.25, 0.45)  # ... from the first figure and fully from the second
    voice_window_s: float = 40.0  # voices compared each side of a gap
    short_chapter_s: float = 30.0  # a chapter may be this short between two starts whose evidence both reach ...
    strong_score: float = 0.9  # ... this (math.inf: every chapter is at least the shortest of `limits()`)


# With the recording's sound (the product: the summary stage reads the job's audio) ...
TUNING = Tuning()
# ... and without it (a transcript alone): the words, who speaks and the pauses, as tuned before the sound was
# known (on the first two tuning joins, reference speaker turns).
WORDS_ONLY = Tuning(min_chapter_s=45.0, speakers=0.3, pause=0.3, sound=0.0, voices=0.0, min_score=0.3,
                    in_segment_pause_s=math.inf, strong_score=math.inf)


def limits(duration_s: float, tuning: Tuning = TUNING) -> tuple[int, float]:
    """(most chapters, shortest chapter in seconds) for a recording of `duration_s`."""
    most = min(tuning.max_chapters, max(1, math.ceil(duration_s / tuning.seconds_per_chapter)))
    return most, max(tuning.min_chapter_s, duration_s * tuning.shortest_share)


def _window_words(total_words: int, tuning: Tuning = TUNING) -> int:
    lo, hi, share = tuning.window_words
    return max(lo, min(hi, total_words // share))


def _sides(units: list[Utterance], i: int, window: int) -> tuple[range, range]:
    """Units of about `window` words before gap i (which lies before unit i) and after it."""
    j, n = i - 1, 0
    while j >= 0 and n < window:
        n, j = n + units[j].words, j - 1
    k, n = i, 0
    while k < len(units) and n < window:
        n, k = n + units[k].words, k + 1
    return range(j + 1, i), range(i, k)


def cohesion(units: list[Utterance], window: int) -> list[float]:
    """Similarity across each gap (gap i lies before unit i, i = 1..n-1): cosine of the content-word counts
    of about `window` words on either side."""
    bags = [Counter(content_words(u.text)) for u in units]
    out = []
    for i in range(1, len(units)):
        left, right = Counter(), Counter()
        for side, span in zip((left, right), _sides(units, i, window)):
            for j in span:
                side.update(bags[j])
        out.append(cosine(left, right))
    return out


def handover(units: list[Utterance], window: int) -> list[float]:
    """0-1 at each gap: how completely the talk passes to other people — the share of the ~`window` words after
    it said by voices not heard before it, times the share of the words just before it said by voices not
    heard after it. A guest arriving as the host leaves scores 1; a meeting's people taking turns, ~0; no
    speaker known, 0."""
    if all(u.speaker is None for u in units):
        return [0.0] * (len(units) - 1)
    out = []
    heard: set[str | None] = set()  # None: a voice the speakers stage left unlabelled, one like any other
    for i in range(1, len(units)):
        heard.add(units[i - 1].speaker)
        left, right = _sides(units, i, window)
        after = {units[j].speaker for j in right}
        new = sum(units[j].words for j in right if units[j].speaker not in heard)
        gone = sum(units[j].words for j in left if units[j].speaker not in after)
        out.append((new / max(1, sum(units[j].words for j in right)))
                   * (gone / max(1, sum(units[j].words for j in left))))
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


def _ramp(x: float, span: tuple[float, float]) -> float:
    lo, hi = span
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def audio_changes(units: list[Utterance], sound: SoundProfile | None, voices: VoiceProfile | None,
                  tuning: Tuning = TUNING) -> list[list[tuple[float, float, float]]]:
    """At each gap, the peaks of the recording's own evidence — how far apart the sound is before and after,
    and how new the voices are — as (weighted evidence (`Tuning.sound`, `Tuning.voices`), the raw changes
    summed, where), strongest first, looked for from a second before the gap to a second after it, every half
    second: in a long wordless stretch a change is found where it is, not where the words resume, and a stretch
    holding several recordings has a peak at each seam. Neither known: [(0, 0, the next words' start)]."""
    out = []
    for a, b in pairwise(units):
        if sound is None and voices is None:
            out.append([(0.0, 0.0, b.start)])
            continue
        lo, hi = a.end - 1.0, max(a.end, b.start) + 1.0
        steps = max(1, int((hi - lo) / 0.5))
        curve = []
        for k in range(steps + 1):
            t = lo + k * (hi - lo) / steps
            heard = sound.change(t, tuning.sound_window_s) if sound is not None else 0.0
            who = voices.change(t, tuning.voice_window_s) if voices is not None and tuning.voices else 0.0
            weighted = (tuning.sound * _ramp(heard, tuning.sound_change)
                        + tuning.voices * _ramp(who, tuning.voice_change))
            curve.append(((weighted, heard + who), t))  # the raw changes break ties where the ramps are flat
        peaks = [curve[k] for k in range(len(curve))
                 if (k == 0 or curve[k][0] >= curve[k - 1][0]) and (k == len(curve) - 1 or curve[k][0] > curve[k + 1][0])]
        ranked = sorted(peaks or [max(curve)], key=lambda p: (-p[0][0], -p[0][1], p[1]))
        out.append([(weighted, raw, t) for (weighted, raw), t in ranked])
    return out


def _in_segment(units: list[Utterance], i: int) -> bool:
    return units[i].first_segment == units[i - 1].last_segment


def _in_gap(units: list[Utterance], i: int, t: float) -> float:
    """`t` kept within the gap before utterance `i`: a chapter found by the sound starts between the words."""
    return min(max(t, units[i - 1].end), units[i].start)


def evidence(units: list[Utterance], sound: SoundProfile | None = None, tuning: Tuning = TUNING,
             voices: VoiceProfile | None = None) -> list[tuple[float, int, float]]:
    """Candidate chapter starts: (weighted evidence, index of the utterance the words resume at, when the chapter
    would start). Inside an ASR segment only a clear pause, the segment's longest, may start one: never inside a
    sentence. In a wordless gap each further peak of the sound and voice change is a candidate of its own, on that
    alone (the words either side belong to the gap's edges), when that is strong enough (`min_score`)."""
    if len(units) < 2:
        return []
    window = _window_words(sum(u.words for u in units), tuning)
    scores = cohesion(units, window)
    smooth = [statistics.fmean(scores[max(0, i - 1) : i + 2]) for i in range(len(scores))]
    lexical = depths(smooth)
    speakers = handover(units, window)
    changes = audio_changes(units, sound, voices, tuning)
    pauses = [units[i].start - units[i - 1].end for i in range(1, len(units))]
    longest: dict[int, float] = {}
    for i in range(1, len(units)):
        if _in_segment(units, i):
            seg = units[i].first_segment
            longest[seg] = max(longest.get(seg, 0.0), pauses[i - 1])
    out = []
    for i in range(1, len(units)):
        gap = pauses[i - 1]
        if _in_segment(units, i) and (gap < tuning.in_segment_pause_s or gap < longest[units[i].first_segment]):
            continue  # never inside a segment but at its one clear pause
        (heard, raw, at), *others = changes[i - 1]
        score = (tuning.lexical * lexical[i - 1] + tuning.speakers * speakers[i - 1]
                 + tuning.pause * _ramp(gap, tuning.pause_s) + heard)
        wordless = gap > tuning.wordless_s and raw > 0
        start = _in_gap(units, i, at) if wordless else units[i].start
        out.append((score, i, start))
        if wordless and tuning.several_per_gap:
            out += [(alone, i, _in_gap(units, i, at)) for alone, _, at in others if alone >= tuning.min_score]
    return out


def boundaries(units: list[Utterance], duration_s: float, sound: SoundProfile | None = None,
               tuning: Tuning = TUNING, voices: VoiceProfile | None = None) -> list[tuple[int, float]]:
    """(index of the utterance that starts a chapter, when the chapter starts), the first always (0, its start),
    in time order. Several chapters may start in one wordless gap (the same index): the words after the gap
    belong to the last of them."""
    most, shortest = limits(duration_s, tuning)
    if most <= 1 or len(units) < 4:
        return [(0, units[0].start)]
    start, end = units[0].start, units[-1].end
    chosen: list[tuple[int, float, float]] = []

    def room(at: float, score: float) -> bool:
        """At least the shortest chapter from the ends and from every start chosen; down to `short_chapter_s`
        between two starts whose evidence is both `strong_score` (a short recording between two others)."""
        if min(at - start, end - at) < shortest:
            return False
        return all(abs(at - e) >= shortest or (abs(at - e) >= tuning.short_chapter_s
                                               and min(score, s) >= tuning.strong_score) for _, e, s in chosen)

    for score, i, at in sorted(evidence(units, sound, tuning, voices), key=lambda c: (-c[0], c[1], c[2])):
        if len(chosen) >= most - 1 or score < tuning.min_score:
            break
        if room(at, score):
            chosen.append((i, at, score))
    return [(0, units[0].start), *sorted(((i, at) for i, at, _ in chosen), key=lambda c: (c[1], c[0]))]


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


def make_chapters(transcript: Transcript, settings: Settings, sound: SoundProfile | None = None,
                  tuning: Tuning | None = None,
                  voices: VoiceProfile | None = None) -> tuple[list[Chapter], list[Utterance]]:
    """The transcript's chapters (offline titles and points) and the utterances they were cut from; with the
    recording's `sound`, where it changes counts as evidence too (`TUNING`, else `WORDS_ONLY`)."""
    tuning = tuning or (WORDS_ONLY if sound is None else TUNING)
    units = utterances(transcript, settings.quote_max_chars)
    if not units:
        return [], units
    duration = transcript.duration_s or units[-1].end
    cuts = boundaries(units, duration, sound, tuning, voices)
    starts = [i for i, _ in cuts]
    parts = [units[a:b] for a, b in zip(starts, starts[1:] + [len(units)])]  # empty: a chapter without words
    others = [[u.text for u in p] for p in parts]
    chapters, taken = [], set()
    for k, (part, (_, at)) in enumerate(zip(parts, cuts)):
        title = phrase_title([u.text for u in part], others, taken)
        end = part[-1].end if part else cuts[k + 1][1]
        chapters.append(Chapter(start=at, end=end, title=title,
                                key_points=chapter_points(part, settings) if part else []))
    return chapters, units


def chapter_text(chapter: Chapter, units: list[Utterance]) -> str:
    """The words spoken in `chapter` (its utterances)."""
    return " ".join(u.text for u in units if chapter.start <= u.start and u.end <= chapter.end)


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
