"""Subtitle, Markdown and JSON renderers: round trips through the real `srt`/`webvtt-py` parsers, and content."""

from __future__ import annotations

import json

import pytest

from clipper.clock import clock, clock_range
from clipper.job.outputs import KeyPoint, Quote, QuoteSet, Segment, Summary, Transcript, Word
from clipper.job.request import MediaInfo
from clipper.text.formats import (
    NO_SPEECH, parse_srt, parse_vtt, quotes_markdown, summary_markdown, transcript_srt, transcript_vtt,
)
from clipper.text.report import Report, report_json, report_markdown

SEGMENTS = [
    (0.0, 4.32, "Welcome to the clipper podcast."),
    (4.32, 9.999, " Today we talk about building software that never loses work."),
    (10.5, 15.9, "Durable systems are boring on purpose & <boring> is what users pay for."),
    (61.25, 65.001, "A line --> with an arrow, and 'quotes'."),
    (3725.4, 3730.0, "Past the hour mark."),
]


def transcript(segments=SEGMENTS) -> Transcript:
    return Transcript(
        engine="local",
        model="tiny.en",
        language="en",
        duration_s=3731.0,
        segments=[
            Segment(id=i, start=a, end=b, text=text, words=[Word(start=a, end=b, word=w) for w in text.split()])
            for i, (a, b, text) in enumerate(segments)
        ],
    )


def quote_set() -> QuoteSet:
    return QuoteSet(
        engine="offline",
        quotes=[
            Quote(rank=2, text="Welcome to the clipper podcast.", start=0.0, end=4.32),
            Quote(
                rank=1,
                text="Durable systems are boring on purpose",
                start=10.5,
                end=15.9,
                reason="memorable",
                clip="clips/01-durable-systems-are-boring-on-purpose.mp3",
            ),
        ],
        candidates=7,
        ungrounded=3,
        duplicates=2,
    )


def summary() -> Summary:
    return Summary(
        engine="offline",
        overview="An episode about software that never loses work.",
        key_points=[
            KeyPoint(text="Write results to disk before saying a step is done.", start=4.32, end=9.999),
            KeyPoint(text="Boring is a feature.", start=3725.4, end=3730.0),
        ],
    )


INFO = MediaInfo(
    title="Building software that never loses work",
    uploader="Clipper Podcast",
    duration_s=3731.0,
    source_url="https://media.example.com/ep1.mp3",
    webpage_url="https://example.com/ep1",
)
ARTIFACTS = {"audio.wav": "a" * 64, "clips/01-durable-systems-are-boring-on-purpose.mp3": "b" * 64}


def test_the_report_clock() -> None:
    assert clock(0) == "00:00"
    assert clock(None) == "00:00"
    assert clock(65.9) == "01:05"  # truncated: a jump to it lands before the words, not after
    assert clock(3599.99) == "59:59"
    assert clock(3725.4) == "1:02:05"
    assert clock(-3) == "00:00"
    assert clock_range(10.5, 15.9) == "00:10–00:15"


@pytest.mark.parametrize(("render", "parse"), [(transcript_srt, parse_srt), (transcript_vtt, parse_vtt)])
def test_subtitles_round_trip(render, parse) -> None:
    t = transcript()
    cues = parse(render(t))
    assert len(cues) == len(t.segments)
    for (start, end, text), seg in zip(cues, t.segments, strict=True):
        assert start == pytest.approx(seg.start, abs=0.001)
        assert end == pytest.approx(seg.end, abs=0.001)
        assert text == seg.text.strip()


def test_subtitle_text_details() -> None:
    t = transcript()
    vtt = transcript_vtt(t)
    assert vtt.startswith("WEBVTT")
    assert "01:02:05.400 --> 01:02:10.000" in vtt
    assert "&amp; &lt;boring&gt;" in vtt  # markup characters escaped, so the parser does not eat them
    assert vtt.count("-->") == len(t.segments)  # the arrow in the text cannot pass for a timing line
    srt_text = transcript_srt(t)
    assert srt_text.startswith("1\n00:00:00,000 --> 00:00:04,320\n")
    assert "01:02:05,400 --> 01:02:10,000" in srt_text


def test_subtitles_skip_empty_segments_and_fold_lines() -> None:
    t = transcript([(0.0, 1.0, "   "), (1.0, 2.0, "two\n\nlines")])
    for cues in (parse_srt(transcript_srt(t)), parse_vtt(transcript_vtt(t))):
        assert cues == [(1.0, 2.0, "two lines")]


def test_quotes_markdown() -> None:
    md = quotes_markdown(quote_set(), "Episode 1")
    assert md.startswith("# Quotes — Episode 1\n")
    lines = md.splitlines()
    first = next(line for line in lines if line.startswith("1. "))
    second = next(line for line in lines if line.startswith("2. "))
    # Ordered by rank, with its time range and its clip as a link relative to the job folder.
    assert "[00:10–00:15]" in first and "Durable systems are boring on purpose" in first
    assert "[clip](clips/01-durable-systems-are-boring-on-purpose.mp3)" in first
    assert "[00:00–00:04]" in second and "](" not in second  # no clip, no link
    assert "7 candidates proposed; 5 dropped: 3 ungrounded" in md and "2 duplicates" in md


def test_quotes_markdown_without_quotes() -> None:
    md = quotes_markdown(QuoteSet(engine="offline"), None)
    assert md.startswith("# Quotes\n") and "No quotes to show" in md


def test_summary_markdown() -> None:
    md = summary_markdown(summary(), "Episode 1")
    assert md.startswith("# Summary — Episode 1\n")
    overview_at = md.index("An episode about software")
    points_at = md.index("## Key points")
    assert overview_at < points_at
    assert "[00:04–00:09]** Write results to disk" in md
    assert "[1:02:05–1:02:10]** Boring is a feature." in md


def test_report_markdown() -> None:
    md = report_markdown(INFO, transcript(), quote_set(), summary(), ARTIFACTS)
    assert md.startswith("# Building software that never loses work\n")
    for expected in (
        "<https://example.com/ep1>",
        "<https://media.example.com/ep1.mp3>",
        "Clipper Podcast",
        "| Duration | 1:02:11 |",
        "local (tiny.en), language en",
        "[clip](clips/01-durable-systems-are-boring-on-purpose.mp3)",
        "[1:02:05–1:02:10]",
        f"| `{'a' * 64}` |",
        "[00:00] Welcome to the clipper podcast.",
        "[1:02:05] Past the hour mark.",
    ):
        assert expected in md, expected
    sections = [md.index(h) for h in ("## Summary", "## Quotes", "## Artifacts", "## Transcript")]
    assert sections == sorted(sections)  # the full transcript comes last
    assert NO_SPEECH not in md
    # Cue-like characters in the transcript are escaped for Markdown, not dropped.
    assert "\\<boring\\>" in md


def test_report_markdown_without_speech() -> None:
    silent = Transcript(engine="local", duration_s=12.0, segments=[])
    empty_summary = Summary(engine="offline", overview="(invented)", key_points=[])
    md = report_markdown(
        MediaInfo(source_url="https://example.com/silence.wav", duration_s=12.0),
        silent,
        QuoteSet(engine="offline"),
        empty_summary,
        {"audio.wav": "c" * 64},
    )
    assert md.startswith("# Untitled media\n")
    assert NO_SPEECH == "No speech was detected in this media."
    assert NO_SPEECH in md
    assert "Nothing to summarise: no speech was detected." in md
    assert "No quotes to show: no speech was detected." in md
    assert "(invented)" not in md
    assert "## Artifacts" in md and "c" * 64 in md


def test_report_json_validates() -> None:
    report = report_json(INFO, transcript(), quote_set(), summary(), ARTIFACTS)
    data = json.loads(report.model_dump_json())
    again = Report.model_validate(data)
    assert again == report
    assert again.transcript.segments == 5
    assert again.transcript.words == sum(len(text.split()) for _, _, text in SEGMENTS)
    assert again.transcript.duration_s == 3731.0 and again.transcript.speech_detected
    assert again.artifacts == ARTIFACTS
    assert again.quotes.quotes[1].clip == "clips/01-durable-systems-are-boring-on-purpose.mp3"

    nothing = (QuoteSet(engine="x"), Summary(engine="x", overview=""))
    silent = report_json(INFO, Transcript(engine="noop"), *nothing, {})
    assert silent.transcript.segments == 0 and silent.transcript.words == 0
    assert not silent.transcript.speech_detected


def test_report_links_each_quotes_audiograms() -> None:
    from clipper.job.outputs import AudiogramIndex, AudiogramInfo

    index = AudiogramIndex(padding_s=0.5, audiograms=[
        AudiogramInfo(rank=r, aspect=a, name=f"audiograms/{r:02d}-{a.replace(':', 'x')}.mp4", width=720,
                      height=720 if a == "1:1" else 1280, start=0.0, end=5.0, duration_s=6.0)
        for r in (2, 1) for a in ("9:16", "1:1")])
    md = report_markdown(INFO, transcript(), quote_set(), summary(), ARTIFACTS, None, index)
    section = md.split("## Audiograms", 1)[1].split("##", 1)[0].strip().splitlines()
    assert section == ["- Quote 1: [1:1](audiograms/01-1x1.mp4) · [9:16](audiograms/01-9x16.mp4)",
                       "- Quote 2: [1:1](audiograms/02-1x1.mp4) · [9:16](audiograms/02-9x16.mp4)"]
    assert "## Audiograms" not in report_markdown(INFO, transcript(), quote_set(), summary(), ARTIFACTS)
