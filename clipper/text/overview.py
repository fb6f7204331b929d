"""The offline overview: what is known about the recording, said plainly, then the key points as quotes.

No sentence is made up of pieces of the transcript: the facts (how long, who speaks and how much, the chapter
titles as topics) are stated in our own words, and whatever the recording says is quoted verbatim inside
“…” with the time it is said. A model-written overview (an LLM engine) is not touched here.
"""

from __future__ import annotations

from collections import Counter

from clipper.clock import clock
from clipper.job.outputs import Chapter, KeyPoint, SpeakerSet, Transcript
from clipper.text.lexicon import content_words

OVERVIEW_QUOTES = 3  # key points quoted in the overview (all of them are in the summary's list)
LISTED_SPEAKERS = 6  # speakers named with their share; the rest are counted together


def talk_shares(transcript: Transcript, speakers: SpeakerSet | None) -> list[tuple[str, float]]:
    """(who, share of the talk time), most first: from speakers.json when given (names where people gave
    them), else from the transcript's speaker labels; [] when no speaker is known."""
    if speakers is not None and speakers.speakers:
        total = sum(s.talk_time_s for s in speakers.speakers) or 1.0
        rows = [(f"{s.name} ({s.label})" if s.name else s.label, s.talk_time_s / total) for s in speakers.speakers]
    else:
        time: Counter[str] = Counter()
        for seg in transcript.segments:
            if seg.speaker and seg.text.strip():
                time[seg.speaker] += max(0.0, seg.end - seg.start)
        total = sum(time.values()) or 1.0
        rows = [(label, t / total) for label, t in time.items()]
    return sorted(rows, key=lambda r: -round(r[1], 3))  # stable: equal shares in order of first appearance


def _speakers_sentence(shares: list[tuple[str, float]]) -> str:
    if not shares:
        return " (speakers not labelled)"
    if len(shares) == 1:
        return f" with one speaker ({shares[0][0]})"
    shown = [f"{who} {share:.0%}" for who, share in shares[:LISTED_SPEAKERS]]
    if len(shares) > LISTED_SPEAKERS:
        rest = shares[LISTED_SPEAKERS:]
        shown.append(f"{len(rest)} others {sum(share for _, share in rest):.0%}")
    return f" with {len(shares)} speakers: " + ", ".join(shown)


def quoted(point: KeyPoint) -> str:
    return f"“{point.text.strip()}” ({clock(point.start)})"


def facts_overview(transcript: Transcript, chapters: list[Chapter], points: list[KeyPoint],
                   speakers: SpeakerSet | None = None) -> str:
    """'A 10:32 recording with 2 speakers: Diane (S1) 60%, S2 40%. Topics: …. Key points: “…” (01:02); …'"""
    duration = transcript.duration_s
    if duration is None:
        duration = max((s.end for s in transcript.segments), default=0.0)
    lines = [f"A {clock(duration)} recording{_speakers_sentence(talk_shares(transcript, speakers))}."]
    if len(chapters) == 1:
        lines.append(f"Topic: {chapters[0].title}.")
    elif chapters:
        lines.append("Topics: " + "; ".join(f"{c.title} ({clock(c.start)})" for c in chapters) + ".")
    best = sorted(points, key=lambda p: (-len(content_words(p.text)), p.start))[:OVERVIEW_QUOTES]
    if best:
        lines.append("Key points: " + "; ".join(quoted(p) for p in sorted(best, key=lambda p: p.start)) + ".")
    return " ".join(lines)
