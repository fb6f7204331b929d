"""Renderers of a job's results for people and programs: subtitles, Markdown and the JSON report.

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
from pydantic import BaseModel

from clipper.asr.render import ts, ts_range
from clipper.errors import InvalidMedia
from clipper.models import MediaInfo, QuoteSet, Summary, Transcript

NO_SPEECH = "No speech was detected in this media."

Cue = tuple[float, float, str]


# --- subtitles ---


def _cues(t: Transcript) -> list[Cue]:
    """One cue per segment with text; whitespace (and so any blank line, which ends a cue) folded to spaces."""
    cues = []
    for seg in t.segments:
        text = " ".join(seg.text.split())
        if text:
            cues.append((max(0.0, seg.start), max(seg.start, seg.end, 0.0), text))
    return cues


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _td(seconds: float) -> timedelta:
    # Whole milliseconds: SRT has no finer unit, and `srt` truncates rather than rounds.
    return timedelta(milliseconds=_ms(seconds))


def transcript_srt(t: Transcript) -> str:
    subs = [
        srt.Subtitle(index=i, start=_td(a), end=_td(b), content=text) for i, (a, b, text) in enumerate(_cues(t), 1)
    ]
    return srt.compose(subs)


def _vtt_time(seconds: float) -> str:
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def transcript_vtt(t: Transcript) -> str:
    # `<`, `>` and `&` are markup in WebVTT cue text (and `-->` would end the timing line): escape them.
    captions = [
        webvtt.Caption(start=_vtt_time(a), end=_vtt_time(b), text=html.escape(text, quote=False))
        for a, b, text in _cues(t)
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


def _quotes_body(qs: QuoteSet) -> list[str]:
    lines: list[str] = []
    if not qs.quotes:
        lines.append("_No quotes to show._")
    for n, q in enumerate(sorted(qs.quotes, key=lambda q: q.rank), start=1):
        line = f"{n}. **[{ts_range(q.start, q.end)}]** “{_md(q.text)}”"
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
    lines += [f"- **[{ts_range(k.start, k.end)}]** {_md(k.text)}" for k in s.key_points]
    return lines


def quotes_markdown(qs: QuoteSet, title: str | None = None) -> str:
    return "\n".join([_heading("Quotes", title), "", *_quotes_body(qs)]) + "\n"


def summary_markdown(s: Summary, title: str | None = None) -> str:
    return "\n".join([_heading("Summary", title), "", *_summary_body(s)]) + "\n"


def _has_speech(t: Transcript) -> bool:
    return any(seg.text.strip() for seg in t.segments)


def _engine(name: str, model: str | None) -> str:
    return f"{name} ({model})" if model else name


def report_markdown(
    info: MediaInfo, transcript: Transcript, quotes: QuoteSet, summary: Summary, artifacts: dict[str, str]
) -> str:
    """One page that ties a job together: source, summary, quotes with clips, artifacts and the transcript."""
    speech = _has_speech(transcript)
    duration = info.duration_s if info.duration_s is not None else transcript.duration_s
    source = info.webpage_url or info.source_url
    asr = _engine(transcript.engine, transcript.model)
    if transcript.language:
        asr += f", language {transcript.language}"
    rows = [
        ("Source", _url(source)),
        ("Uploader", _md(info.uploader) if info.uploader else "—"),
        ("Duration", ts(duration) if duration is not None else "unknown"),
        ("Speech to text", _md(asr)),
        ("Quotes", _md(_engine(quotes.engine, quotes.model))),
        ("Summary", _md(_engine(summary.engine, summary.model))),
    ]
    if info.source_url != source:
        rows.insert(1, ("Media URL", _url(info.source_url)))
    lines = [f"# {_md(info.title) if info.title else 'Untitled media'}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines.append("")
    if not speech:
        lines += [f"> **{NO_SPEECH}**", ""]

    lines += ["## Summary", ""]
    # Without speech an engine's output can only be invented, so it is not shown.
    lines += _summary_body(summary, "###") if speech else ["_Nothing to summarise: no speech was detected._"]
    lines += ["", "## Quotes", ""]
    lines += _quotes_body(quotes) if speech else ["_No quotes to show: no speech was detected._"]

    lines += ["", "## Artifacts", ""]
    if artifacts:
        lines += ["| Artifact | sha256 |", "|---|---|"]
        lines += [f"| {_link(name)} | `{digest}` |" for name, digest in sorted(artifacts.items())]
    else:
        lines.append("_No artifacts._")

    lines += ["", "## Transcript", ""]
    if speech:
        # A blank line between segments: Markdown would otherwise run them together into one paragraph.
        for seg in transcript.segments:
            if seg.text.strip():
                lines += [f"[{ts(seg.start)}] {_md(seg.text)}", ""]
    else:
        lines += [f"_{NO_SPEECH}_", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- JSON ---


class TranscriptStats(BaseModel):
    engine: str
    model: str | None = None
    language: str | None = None
    segments: int
    words: int  # words of the text, so engines without word timings count too
    duration_s: float | None = None
    speech_detected: bool


class Report(BaseModel):
    """`report.json`: the report's content for programs; the artifacts map name → sha256."""

    info: MediaInfo
    transcript: TranscriptStats
    summary: Summary
    quotes: QuoteSet
    artifacts: dict[str, str]


def report_json(
    info: MediaInfo, transcript: Transcript, quotes: QuoteSet, summary: Summary, artifacts: dict[str, str]
) -> Report:
    stats = TranscriptStats(
        engine=transcript.engine,
        model=transcript.model,
        language=transcript.language,
        segments=len(transcript.segments),
        words=sum(len(seg.text.split()) for seg in transcript.segments),
        duration_s=transcript.duration_s if transcript.duration_s is not None else info.duration_s,
        speech_detected=_has_speech(transcript),
    )
    return Report(info=info, transcript=stats, summary=summary, quotes=quotes, artifacts=dict(artifacts))
