"""Plain-text rendering of a transcript, and the timestamp formats people read."""

from __future__ import annotations

from clipper.job.outputs import Transcript


def format_timestamp(seconds: float) -> str:
    """`mm:ss.s` (minutes keep counting past 59, so the text sorts and reads simply)."""
    tenths = max(0, int(round(float(seconds) * 10)))
    minutes, rest = divmod(tenths, 600)
    return f"{minutes:02d}:{rest / 10:04.1f}"


def ts(seconds: float | None) -> str:
    """`mm:ss`, or `h:mm:ss` from an hour on: the timestamps of reports, quotes and summaries.

    Truncated, not rounded: a reader who jumps to the shown time lands at or just before the words, never
    after their start.
    """
    total = max(0, int(float(seconds or 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def ts_range(start: float, end: float) -> str:
    """`mm:ss–mm:ss` (en dash), the span of a quote or key point."""
    return f"{ts(start)}–{ts(end)}"


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
            lines.append(f"[{ts(s.start)}] {shown[s.speaker]}: {s.text.strip()}\n")
        else:
            lines.append(f"[{format_timestamp(s.start)}] {s.text.strip()}\n")
    return "".join(lines)
