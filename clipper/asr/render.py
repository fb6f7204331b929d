"""Plain-text rendering of a transcript (its times are clipper/clock.py's clock text)."""

from __future__ import annotations

from clipper.clock import clock, clock_tenths
from clipper.job.outputs import Transcript


def voices(t: Transcript, names: dict[str, str] | None = None) -> dict[str, str]:
    """How each speaker label is shown (the name people gave, else S1, ...) — or nothing at all when one
    unnamed voice speaks throughout: "S1:" on every line of a monologue tells a reader nothing. The one rule
    for transcript.txt, subtitles and the report."""
    names = names or {}
    labels = {s.speaker for s in t.segments if s.speaker}
    if len(labels) < 2 and not labels & set(names):
        return {}
    return {label: names.get(label, label) for label in labels}


def transcript_to_text(t: Transcript, names: dict[str, str] | None = None) -> str:
    """One line per segment: `[mm:ss.s] text`; with speakers to tell apart, `[mm:ss] S1: text` (or the name
    people gave S1), the form a reader scans for who said what."""
    shown = voices(t, names)
    lines = []
    for s in t.segments:
        if s.speaker in shown:
            lines.append(f"[{clock(s.start)}] {shown[s.speaker]}: {s.text.strip()}\n")
        else:
            lines.append(f"[{clock_tenths(s.start)}] {s.text.strip()}\n")
    return "".join(lines)
