"""Renderers of a job's results for people and programs: subtitles and Markdown (the report: `report.py`).

Pure functions, text in and text out: the caller stores the result as an artifact. Subtitles go through the
`srt` and `webvtt-py` libraries, so escaping and timestamp formats follow the specs rather than our guesses.
"""

from __future__ import annotations

import html
import io
from datetime import timedelta
from urllib.parse import quote as url_quote

import srt
import webvtt

from clipper.asr.render import voices
from clipper.clock import clock_range
from clipper.errors import InvalidMedia
from clipper.job.outputs import QuoteSet, Summary, Transcript

NO_SPEECH = "No speech was detected in this media."

Cue = tuple[float, float, str]


# --- subtitles ---


def _cues(t: Transcript, names: dict[str, str] | None = None) -> list[tuple[float, float, str, str | None]]:
    """One cue per segment with text, and who speaks it (`voices`: the name people gave, else S1, ...; None
    when unknown or a single voice); whitespace (and so any blank line, which ends a cue) folded to spaces."""
    shown = voices(t, names)
    cues = []
    for seg in t.segments:
        text = " ".join(seg.text.split())
        if text:
            who = shown.get(seg.speaker) if seg.speaker else None
            cues.append((max(0.0, seg.start), max(seg.start, seg.end, 0.0), text, who))
    return cues


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _td(seconds: float) -> timedelta:
    # Whole milliseconds: SRT has no finer unit, and `srt` truncates rather than rounds.
    return timedelta(milliseconds=_ms(seconds))


def transcript_srt(t: Transcript, names: dict[str, str] | None = None) -> str:
    """SRT has no voice tag of its own (players show a `<v>` literally), so the speaker leads the cue text:
    `Diane: Hello?` — the convention subtitlers use."""
    subs = [
        srt.Subtitle(index=i, start=_td(a), end=_td(b), content=f"{who}: {text}" if who else text)
        for i, (a, b, text, who) in enumerate(_cues(t, names), 1)
    ]
    return srt.compose(subs)


def _vtt_time(seconds: float) -> str:
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def transcript_vtt(t: Transcript, names: dict[str, str] | None = None) -> str:
    """WebVTT with a voice tag per cue once speakers are known (`<v Diane>Hello?`): players and screen readers
    show who speaks."""
    # `<`, `>` and `&` are markup in WebVTT cue text (and `-->` would end the timing line): escape them.
    def text_of(text: str, who: str | None) -> str:
        escaped = html.escape(text, quote=False)
        return f"<v {html.escape(who, quote=False)}>{escaped}" if who else escaped

    captions = [
        webvtt.Caption(start=_vtt_time(a), end=_vtt_time(b), text=text_of(text, who))
        for a, b, text, who in _cues(t, names)
    ]
    return webvtt.WebVTT(captions=captions).content


def parse_srt(text: str) -> list[Cue]:
    try:
        return [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in srt.parse(text)]
    except srt.SRTParseError as e:
        raise InvalidMedia(f"not valid SRT subtitles: {e}") from None


def _vtt_seconds(value: str) -> float:
    hms, _, ms = value.partition(".")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2] + int(ms.ljust(3, "0")[:3]) / 1000


def parse_vtt(text: str) -> list[Cue]:
    try:
        vtt = webvtt.from_buffer(io.StringIO(text))
    except webvtt.errors.MalformedFileError as e:
        raise InvalidMedia(f"not valid WebVTT subtitles: {e}") from None
    # `.text` drops cue tags (<v>, <i>, ...); unescaping then restores the `&lt;` we wrote for a literal `<`.
    return [(_vtt_seconds(c.start), _vtt_seconds(c.end), html.unescape(c.text)) for c in vtt.captions]


# --- Markdown ---


def _md(text: str) -> str:
    """Inline text safe in Markdown: one line, and the characters that would start markup escaped."""
    text = " ".join(str(text).split())
    for ch in "\\`*_[]<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def _link(name: str, label: str | None = None) -> str:
    # Artifact names are relative to the job folder, where the Markdown files live too.
    return f"[{_md(label or name)}]({url_quote(name)})"


def _url(url: str) -> str:
    # An autolink for web addresses; `|` encoded so it cannot split the table cell.
    if url.startswith(("http://", "https://")):
        return f"<{url.replace('|', '%7C').replace('>', '%3E')}>"
    return _md(url)


def _heading(kind: str, title: str | None) -> str:
    return f"# {kind} — {_md(title)}" if title else f"# {kind}"


def _quotes_body(qs: QuoteSet, names: dict[str, str] | None = None) -> list[str]:
    lines: list[str] = []
    names = names or {}
    if not qs.quotes:
        lines.append("_No quotes to show._")
    for n, q in enumerate(sorted(qs.quotes, key=lambda q: q.rank), start=1):
        who = f"{_md(names.get(q.speaker, q.speaker))}: " if q.speaker else ""
        line = f"{n}. **[{clock_range(q.start, q.end)}]** {who}“{_md(q.text)}”"
        if q.clip:
            line += f" — {_link(q.clip, 'clip')}"
        lines.append(line)
        if q.reason:
            lines.append(f"   _{_md(q.reason)}_")
    dropped = qs.ungrounded + qs.duplicates
    lines += [
        "",
        f"{qs.candidates} candidates proposed; {dropped} dropped: {qs.ungrounded} ungrounded "
        f"(not found in the transcript), {qs.duplicates} duplicates.",
    ]
    if qs.failed_chunks:
        lines.append(f"Chunks whose output could not be read: {', '.join(map(str, qs.failed_chunks))}.")
    return lines


def _summary_body(s: Summary, level: str = "##") -> list[str]:
    overview = _md(s.overview)
    lines = [overview or "_No overview._", ""]
    lines.append(f"{level} Key points")
    lines.append("")
    if not s.key_points:
        lines.append("_No key points to show._")
    lines += [f"- **[{clock_range(k.start, k.end)}]** {_md(k.text)}" for k in s.key_points]
    if s.chapters:
        from clipper.text.chapters import description_lines

        lines += ["", f"{level} Chapters", "", "For a video or post description:", "", "```",
                  *description_lines(s.chapters), "```", ""]
        for c in s.chapters:
            lines.append(f"- **[{clock_range(c.start, c.end)}] {_md(c.title)}**")
            lines += [f"  - {_md(p)}" for p in c.key_points]
    return lines


def quotes_markdown(qs: QuoteSet, title: str | None = None, names: dict[str, str] | None = None) -> str:
    return "\n".join([_heading("Quotes", title), "", *_quotes_body(qs, names)]) + "\n"


def summary_markdown(s: Summary, title: str | None = None) -> str:
    return "\n".join([_heading("Summary", title), "", *_summary_body(s)]) + "\n"
