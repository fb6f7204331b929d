"""Seconds as the clock text people read, in one place: the report, the chapters, the transcript, the LLM's
numbered lines, the CLI, the pages and the download limits' messages all write a time the same way, and a change
to the format is made here once.

Two kinds of time, two rules:

- `clock`: a point in the media (a quote's start, a chapter, a transcript line). Truncated, never rounded: a
  reader who jumps to the shown time lands at or just before the words, never after their start.
- `duration`: a length (an ETA, the media's length, a speaker's talk time, a limit). Rounded to the nearest
  second (half to even, Python's `round`), minutes unpadded: `2:05`, `1:02:03`.

The pages' script has the one JavaScript copy of `duration` (`clipper.duration` in
clipper_app/web/static/common.js; tests/unit/test_page_script.py runs both on the same values).

Subtitle timestamps are not clock text: SRT and VTT (clipper/text/formats.py) and ASS captions
(clipper/media/audiogram.py) follow their formats' specs and keep their own writers.
"""

from __future__ import annotations

HOUR, MINUTE = 3600, 60


def _text(total: int, hours: bool | None, pad_minutes: bool) -> str:
    """`total` whole seconds: `h:mm:ss` with hours (None: from an hour on), else minutes that keep counting."""
    if hours or (hours is None and total >= HOUR):
        h, rest = divmod(total, HOUR)
        return f"{h}:{rest // MINUTE:02d}:{rest % MINUTE:02d}"
    m, s = divmod(total, MINUTE)
    return f"{m:02d}:{s:02d}" if pad_minutes else f"{m}:{s:02d}"


def clock(seconds: float | None, hours: bool | None = None) -> str:
    """A point in the media: `mm:ss`, or `h:mm:ss` from an hour on (None and negative read as 00:00).

    `hours=True`: always `h:mm:ss`, so the chapters of a recording of an hour or more line up. `hours=False`:
    never; minutes keep counting (`119:59`), so numbered lines sort and read simply.
    """
    return _text(max(0, int(float(seconds or 0.0))), hours, pad_minutes=True)


def clock_range(start: float | None, end: float | None) -> str:
    """`mm:ss–mm:ss` (en dash): the span of a quote, key point or chapter."""
    return f"{clock(start)}–{clock(end)}"


def clock_tenths(seconds: float | None) -> str:
    """`mm:ss.s`, minutes counting past 59 (transcript.txt's lines without speakers): rounded to a tenth."""
    tenths = max(0, int(round(float(seconds or 0.0) * 10)))
    minutes, rest = divmod(tenths, MINUTE * 10)
    return f"{minutes:02d}:{rest / 10:04.1f}"


def duration(seconds: float | None, hours: bool | None = None, missing: str = "") -> str:
    """A length: `m:ss`, or `h:mm:ss` from an hour on (`hours=True`: always, as in `4:00:00`); `missing`
    for None (the pages show nothing, the CLI a dash)."""
    if seconds is None:
        return missing
    return _text(max(0, int(round(float(seconds)))), hours, pad_minutes=False)
