"""The report that ties a job together: Markdown for people (`report.md`), JSON for programs (`report.json`).

Pure functions of the job's outputs; names people gave speakers (`speakers.json`) are shown wherever a speaker is.
"""

from __future__ import annotations

from pydantic import BaseModel

from clipper.asr.render import voices
from clipper.clock import clock
from clipper.job.outputs import AudiogramIndex, QuoteSet, SpeakerSet, Summary, Transcript
from clipper.job.request import MediaInfo
from clipper.text.formats import NO_SPEECH, _link, _md, _quotes_body, _summary_body, _url


def _has_speech(t: Transcript) -> bool:
    return any(seg.text.strip() for seg in t.segments)


def _engine(name: str, model: str | None, fallback: str | None = None) -> str:
    return (f"{name} ({model})" if model else name) + (f"; {fallback}" if fallback else "")


def _speakers_body(speakers: SpeakerSet) -> list[str]:
    if not speakers.speakers:
        return [f"_Speakers not labelled: {_md(speakers.note or 'none found')}._"]
    total = sum(s.talk_time_s for s in speakers.speakers) or 1.0
    lines = ["| Speaker | Talk time | Share | Turns |", "|---|---|---|---|"]
    for s in speakers.speakers:
        who = f"{_md(s.name)} ({s.label})" if s.name else s.label
        lines.append(f"| {who} | {clock(s.talk_time_s)} | {s.talk_time_s / total:.0%} | {s.turns} |")
    if speakers.overlap_share:  # words in overlapped speech went to the dominant speaker
        lines += ["", f"Two or more people talk at once in {speakers.overlap_share:.0%} of the speech; "
                      "each word there is given to the one who dominates."]
    unnamed = [s.label for s in speakers.speakers if not s.name]
    if unnamed:  # once every speaker has a name, there is nothing left to ask
        lines += ["", "_Name them: `clipper speakers JOB " + " ".join(f"{label}=Name" for label in unnamed) + "`._"]
    return lines


def _audiograms_body(index: AudiogramIndex) -> list[str]:
    """Per quote, its videos (waveform, captions timed word by word), ready to post."""
    by_rank: dict[int, list[str]] = {}
    for a in sorted(index.audiograms, key=lambda a: (a.rank, a.aspect)):
        by_rank.setdefault(a.rank, []).append(_link(a.name, a.aspect))
    return [f"- Quote {rank}: " + " · ".join(links) for rank, links in sorted(by_rank.items())]


def report_markdown(
    info: MediaInfo, transcript: Transcript, quotes: QuoteSet, summary: Summary, artifacts: dict[str, str],
    speakers: SpeakerSet | None = None, audiograms: AudiogramIndex | None = None,
) -> str:
    """One page that ties a job together: source, speakers, summary and chapters, quotes with clips, artifacts
    and the transcript."""
    speech = _has_speech(transcript)
    names = speakers.names() if speakers else {}
    shown = voices(transcript, names)
    duration = info.duration_s if info.duration_s is not None else transcript.duration_s
    source = info.webpage_url or info.source_url
    asr = _engine(transcript.engine, transcript.model)
    if transcript.language:
        asr += f", language {transcript.language}"
        if transcript.meta.get("language_detected"):
            asr += " (detected)"
    rows = [
        ("Source", _url(source)),
        ("Uploader", _md(info.uploader) if info.uploader else "—"),
        ("Duration", clock(duration) if duration is not None else "unknown"),
        ("Speech to text", _md(asr)),
        ("Quotes", _md(_engine(quotes.engine, quotes.model, quotes.fallback))),
        ("Summary", _md(_engine(summary.engine, summary.model, summary.fallback))),
    ]
    if speakers is not None and speakers.speakers:
        rows.append(("Speakers", str(len(speakers.speakers))))
    if info.source_url != source:
        rows.insert(1, ("Media URL", _url(info.source_url)))
    lines = [f"# {_md(info.title) if info.title else 'Untitled media'}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines.append("")
    if not speech:
        lines += [f"> **{NO_SPEECH}**", ""]

    if speakers is not None and speech:
        lines += ["## Speakers", "", *_speakers_body(speakers), ""]
    lines += ["## Summary", ""]
    # Without speech an engine's output can only be invented, so it is not shown.
    lines += _summary_body(summary, "###") if speech else ["_Nothing to summarise: no speech was detected._"]
    lines += ["", "## Quotes", ""]
    lines += _quotes_body(quotes, names) if speech else ["_No quotes to show: no speech was detected._"]

    if audiograms is not None and audiograms.audiograms:
        lines += ["", "## Audiograms", "", *_audiograms_body(audiograms)]

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
                who = f"**{_md(shown[seg.speaker])}:** " if seg.speaker in shown else ""
                lines += [f"[{clock(seg.start)}] {who}{_md(seg.text)}", ""]
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
    speakers: SpeakerSet | None = None  # None: the job ran before speaker labelling
    artifacts: dict[str, str]


def report_json(
    info: MediaInfo, transcript: Transcript, quotes: QuoteSet, summary: Summary, artifacts: dict[str, str],
    speakers: SpeakerSet | None = None,
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
    return Report(info=info, transcript=stats, summary=summary, quotes=quotes, speakers=speakers,
                  artifacts=dict(artifacts))
