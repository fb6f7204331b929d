"""Put speaker turns on a transcript: every word gets the speaker who talks most during it, and a segment is
split where its speaker changes, so each segment (a subtitle cue, a transcript line) has one speaker.

Pure functions of a transcript and turns: the `speakers` stage runs them on its diarization, tests and the
quality benchmark on reference turns.
"""

from __future__ import annotations

import bisect

from clipper.job.outputs import Segment, Speaker, SpeakerSet, SpeakerTurn, Transcript, Word


def relabel(turns: list[SpeakerTurn]) -> list[SpeakerTurn]:
    """Labels S1, S2, ... in order of first appearance (what a reader expects: S1 speaks first)."""
    names: dict[str, str] = {}
    out = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        label = names.setdefault(t.speaker, f"S{len(names) + 1}")
        out.append(SpeakerTurn(start=t.start, end=t.end, speaker=label))
    return out


class _Turns:
    def __init__(self, turns: list[SpeakerTurn]) -> None:
        self.turns = sorted(turns, key=lambda t: t.start)
        self.starts = [t.start for t in self.turns]

    def speaker(self, start: float, end: float) -> str | None:
        """The speaker who overlaps [start, end] most; in a gap, the nearest turn's speaker."""
        if not self.turns:
            return None
        i = bisect.bisect_right(self.starts, end)
        overlap: dict[str, float] = {}
        for t in self.turns[max(0, i - 50):i]:  # turns are short: the last few before `end` can overlap
            o = min(end, t.end) - max(start, t.start)
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        if overlap:
            return max(overlap, key=lambda k: (overlap[k], k))
        mid = (start + end) / 2
        near = min(self.turns[max(0, i - 2):i + 2], key=lambda t: max(t.start - mid, mid - t.end, 0.0))
        return near.speaker


def assign_speakers(transcript: Transcript, turns: list[SpeakerTurn]) -> Transcript:
    """A copy of `transcript` whose words and segments carry speakers; segments split at speaker changes
    (ids renumbered in order). A segment without word times takes the speaker of its whole span."""
    index = _Turns(turns)
    segments: list[Segment] = []

    def add(seg: Segment, words: list[Word], speaker: str | None) -> None:
        text = " ".join(w.word.strip() for w in words if w.word.strip()) if words else seg.text
        start, end = (words[0].start, words[-1].end) if words else (seg.start, seg.end)
        if len(words) == len(seg.words):
            start, end = seg.start, seg.end
        segments.append(Segment(id=len(segments), start=start, end=end, text=text, words=words, speaker=speaker))

    for seg in transcript.segments:
        if not seg.words:
            add(seg, [], index.speaker(seg.start, seg.end))
            continue
        words = [w.model_copy(update={"speaker": index.speaker(w.start, max(w.end, w.start))}) for w in seg.words]
        run: list[Word] = []
        for w in words:
            if run and w.speaker != run[-1].speaker:
                add(seg, run, run[-1].speaker)
                run = []
            run.append(w)
        add(seg, run, run[-1].speaker)
    return transcript.model_copy(update={"segments": segments})


def speaker_set(transcript: Transcript, turns: list[SpeakerTurn], engine: str, model: str | None = None,
                names: dict[str, str] | None = None) -> SpeakerSet:
    """speakers.json from a labelled transcript: talk time is the time of each speaker's words (what was
    said, not the diarizer's raw turns), a turn is a run of segments with the same speaker."""
    talk: dict[str, float] = {}
    runs: dict[str, int] = {}
    previous = None
    for seg in transcript.segments:
        if seg.speaker is None:
            continue
        spoken = sum(max(0.0, w.end - w.start) for w in seg.words) if seg.words else seg.end - seg.start
        talk[seg.speaker] = talk.get(seg.speaker, 0.0) + spoken
        if seg.speaker != previous:
            runs[seg.speaker] = runs.get(seg.speaker, 0) + 1
        previous = seg.speaker
    names = names or {}
    order = sorted(talk, key=lambda k: int(k[1:]) if k[1:].isdigit() else 10**6)
    speakers = [Speaker(label=k, name=names.get(k), talk_time_s=round(talk[k], 2), turns=runs.get(k, 0)) for k in order]
    return SpeakerSet(engine=engine, model=model, speakers=speakers, turns=turns)
