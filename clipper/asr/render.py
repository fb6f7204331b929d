"""Plain-text rendering of a transcript, and the timestamp formats people read."""

from __future__ import annotations

from clipper.models import Transcript


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


def transcript_to_text(t: Transcript) -> str:
    """One line per segment: `[mm:ss.s] text`."""
    return "".join(f"[{format_timestamp(s.start)}] {s.text.strip()}\n" for s in t.segments)
