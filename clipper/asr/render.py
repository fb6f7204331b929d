"""Plain-text rendering of a transcript."""

from __future__ import annotations

from clipper.models import Transcript


def format_timestamp(seconds: float) -> str:
    """`mm:ss.s` (minutes keep counting past 59, so the text sorts and reads simply)."""
    tenths = max(0, int(round(float(seconds) * 10)))
    minutes, rest = divmod(tenths, 600)
    return f"{minutes:02d}:{rest / 10:04.1f}"


def transcript_to_text(t: Transcript) -> str:
    """One line per segment: `[mm:ss.s] text`."""
    return "".join(f"[{format_timestamp(s.start)}] {s.text.strip()}\n" for s in t.segments)
