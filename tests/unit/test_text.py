"""Text algorithms without any server: chunking, grounding, dedupe, and the offline engine on the sample."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from clipper.config import Settings
from clipper.errors import EngineNotConfigured
from clipper.clock import clock
from clipper.job.outputs import Quote, Speaker, SpeakerSet, Transcript
from clipper.llm import get_text_engine
from clipper.llm.client import LLMEngine
from clipper.text.chunking import chunk_transcript, render_chunk
from clipper.text.grounding import WordIndex, align, dedupe, ground_quote
from clipper.text.grounding import normalise_text, same_words, tokens
from clipper.text.offline import OfflineEngine
from clipper.text.quotes import extract_quotes
from clipper.text.summary import summarize
from clipper.text.utterances import speech_seconds, utterances
from tests.helpers.llmserver import answer, excerpt_lines, serve_llm
from tests.helpers.text import (
    BORING,
    TEST_QUOTE,
    assert_verbatim,
    longest_shared_run,
    quoted_parts,
    sample_transcript,
)
from tests.helpers.transcripts import labelled, unpunctuated

REFERENCE = Path(__file__).parent.parent / "data" / "sample.txt"






# --- chunking ---


def test_chunking_respects_max_chars_and_segment_boundaries() -> None:
    t = sample_transcript(repeat=5)
    for max_chars in (200, 500, 1300):
        chunks = chunk_transcript(t, max_chars)
        assert [s.id for c in chunks for s in c.segments] == [s.id for s in t.segments]  # all, in order
        for i, c in enumerate(chunks):
            assert c.index == i
            assert c.start == c.segments[0].start and c.end == c.segments[-1].end
            assert len(render_chunk(c)) <= max_chars or len(c.segments) == 1
    line = render_chunk(chunk_transcript(t, 10_000)[0]).splitlines()[3]
    assert line.startswith("[#3 00:") and "durable systems are boring" in line


def test_overlong_segment_is_its_own_chunk() -> None:
    t = sample_transcript()
    chunks = chunk_transcript(t, 100)  # the longest line is ~150 characters
    long = [c for c in chunks if len(render_chunk(c)) > 100]
    assert long and all(len(c.segments) == 1 for c in long)
    assert chunk_transcript(Transcript(engine="x"), 100) == []


# --- grounding ---


def test_exact_quote_keeps_transcript_words_and_times() -> None:
    t = sample_transcript()
    q = ground_quote("a test that cannot FAIL is worse than no test at all", t, 85)
    assert q is not None and q.match == 100
    assert q.text == "A test that cannot fail is worse than no test at all,"  # the transcript's casing/punctuation
    assert_verbatim(q, t)


def test_paraphrase_snaps_to_the_real_words() -> None:
    t = sample_transcript()
    para = "durable systems are dull by design, and dull is what users pay for"
    q = ground_quote(para, t, 60)
    assert q is not None and q.text == BORING + "."
    assert 60 <= q.match < 85
    assert ground_quote(para, t, 85) is None  # the default threshold wants (nearly) verbatim quotes


def test_invented_quote_is_not_grounded() -> None:
    t = sample_transcript()
    assert ground_quote("Kubernetes operators should always be written in Rust for maximum safety", t, 60) is None
    assert align("", t) is None and align("anything", Transcript(engine="x")) is None


def test_segments_without_words_fall_back_to_segment_times() -> None:
    t = sample_transcript(words=False)
    q = ground_quote(BORING, t, 85)
    seg = t.segments[3]
    assert q is not None and q.text == BORING + "."
    assert (q.start, q.end) == (seg.start, seg.end)


def test_alignment_is_fast_on_a_two_hour_transcript() -> None:
    t = sample_transcript(repeat=140)  # ~21k words, ~2 h at 0.35 s a word
    t0 = time.perf_counter()
    index = WordIndex(t)  # built once per transcript (or chunk), reused for every candidate
    assert len(index.tokens) > 20_000
    for _ in range(10):
        assert ground_quote(TEST_QUOTE, index, 85) is not None
        assert ground_quote("durable systems are dull by design, and dull is what users pay for", index, 60)
    assert time.perf_counter() - t0 < 2.0


def test_dedupe_keeps_the_best_of_overlapping_quotes() -> None:
    # No two quotes may overlap at all (it was: by more than half), and the same words twice count
    # as one quote wherever they are.
    a = Quote(rank=0, text="the first thing said here", start=0, end=10, score=90)
    b = Quote(rank=0, text="another thing entirely", start=4, end=12, score=80)  # 6 of its 8 s overlap a
    c = Quote(rank=0, text="a third remark of note", start=9, end=20, score=70)  # 1 s overlap
    d = Quote(rank=0, text="fourth words apart", start=20, end=25, score=60)  # touches c: no overlap
    e = Quote(rank=0, text="The first thing said, here!", start=100, end=110, score=50)  # a's words again
    kept, dups = dedupe([e, d, c, b, a])
    assert [q.text for q in kept] == [a.text, d.text] and dups == 3


# --- offline engine ---


def test_offline_quotes_on_the_sample() -> None:
    t, settings = sample_transcript(), Settings()
    qs = extract_quotes(t, OfflineEngine(settings), settings)
    assert qs.engine == "offline" and 3 <= len(qs.quotes) <= 10
    assert [q.rank for q in qs.quotes] == list(range(1, len(qs.quotes) + 1))
    assert qs.ungrounded == 0 and qs.failed_chunks == []
    for q in qs.quotes:
        assert_verbatim(q, t)
        assert 60 <= len(q.text) <= 260 and q.match >= 85
    top5 = [q.text for q in qs.quotes[:5]]
    assert any(BORING in q for q in top5), top5
    assert any(TEST_QUOTE in q for q in top5), top5
    assert not any("Thank you for listening" in q or "Welcome to" in q for q in top5)
    assert extract_quotes(t, OfflineEngine(settings), settings) == qs  # deterministic


def test_offline_summary_on_the_sample() -> None:
    t, settings = sample_transcript(), Settings()
    s = summarize(t, OfflineEngine(settings), settings)
    assert s.engine == "offline" and len(s.overview) > 80
    assert 3 <= len(s.key_points) <= 7
    starts = [k.start for k in s.key_points]
    assert starts == sorted(starts)
    for k in s.key_points:
        assert 0 <= k.start <= k.end <= t.segments[-1].end
        assert k.text in t.text


def test_offline_overview_states_facts_and_quotes() -> None:
    """Length, who speaks and how much (names from speakers.json), the chapter titles, then quoted key points
    with their times; no sentence glued from the transcript's pieces."""
    t = sample_transcript()
    half = len(t.segments) // 2
    t = t.model_copy(update={"segments": [s.model_copy(update={"speaker": "S1" if s.id < half else "S2"})
                                          for s in t.segments]})
    speakers = SpeakerSet(engine="test", speakers=[Speaker(label="S1", name="Diane", talk_time_s=30.0),
                                                   Speaker(label="S2", talk_time_s=10.0)])
    settings = Settings()
    s = summarize(t, OfflineEngine(settings), settings, speakers=speakers)
    assert s.overview.startswith(f"A {clock(t.duration_s)} recording with 2 speakers: Diane (S1) 75%, S2 25%.")
    assert_facts_overview(s, t)
    assert re.search(r"“[^”]+” \(\d\d:\d\d\)", s.overview)  # a quote, with the time it is said
    unnamed = summarize(t, OfflineEngine(settings), settings)  # no speakers.json: the transcript's labels
    assert " with 2 speakers: S1 " in unnamed.overview


def test_offline_engine_maps_and_reduces_long_transcripts() -> None:
    t = sample_transcript(repeat=6)
    settings = Settings(llm_context_chars=1500, quotes_max=8)
    assert len(chunk_transcript(t, 1500)) > 2
    qs = extract_quotes(t, OfflineEngine(settings), settings)
    assert 3 <= len(qs.quotes) <= 8 and qs.ungrounded == 0
    for q in qs.quotes:
        assert_verbatim(q, t)
    s = summarize(t, OfflineEngine(settings), settings)
    assert s.overview and 3 <= len(s.key_points) <= 7
    assert all(0 <= k.start <= k.end <= t.segments[-1].end for k in s.key_points)


def test_engine_choice() -> None:
    assert get_text_engine(Settings()).name == "offline"  # auto without a key
    llm = Settings(llm_api_key=SecretStr("sk-test"), llm_model="m", llm_base_url="http://127.0.0.1:9/v1")
    assert get_text_engine(llm).name == "llm"
    assert get_text_engine(llm, "offline").name == "offline"
    assert "sk-test" in llm.secrets()
    with pytest.raises(EngineNotConfigured):
        get_text_engine(Settings(), "gpt")
    with pytest.raises(EngineNotConfigured):
        get_text_engine(Settings(), "llm")  # no key, no model


# --- real recordings: quotes and summaries that don't depend on punctuation ---



@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "real-transcripts"


def assert_quote_rules(qs, t: Transcript) -> None:
    """Verbatim and timed, one speaker each, no overlaps in time, no two with the same words."""
    toks = tokens(t)
    for q in qs.quotes:
        assert_verbatim(q, t)
        inside = {tok.speaker for tok in toks if q.start <= tok.start and tok.end <= q.end}
        assert inside == {q.speaker}, (q.text, inside)
    spans = sorted((q.start, q.end) for q in qs.quotes)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    texts = [q.text for q in qs.quotes]
    assert not any(same_words(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["call", "concat", "allison"])
@pytest.mark.parametrize("bare", [False, True], ids=["as-transcribed", "unpunctuated"])
def test_offline_quotes_on_real_recordings(work, name, bare) -> None:
    t = labelled(name, work)
    t = unpunctuated(t) if bare else t
    settings = Settings()
    qs = extract_quotes(t, OfflineEngine(settings), settings)
    speech = speech_seconds(utterances(t))
    assert len(qs.quotes) >= min(settings.quotes_max, max(1, math.ceil(speech / 120))), (speech, qs)
    assert_quote_rules(qs, t)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["call", "concat", "allison"])
@pytest.mark.parametrize("bare", [False, True], ids=["as-transcribed", "unpunctuated"])
def test_offline_summary_is_short_and_made_of_utterances(work, name, bare) -> None:
    t = labelled(name, work)
    t = unpunctuated(t) if bare else t
    settings = Settings()
    s = summarize(t, OfflineEngine(settings), settings)
    units = {normalise_text(u.text) for u in utterances(t)}
    for k in s.key_points:
        assert normalise_text(k.text) in units  # one utterance each, never a longer slice
    assert 1 <= len(s.key_points) <= 7 and len(s.chapters) >= 1
    assert_facts_overview(s, t)


def assert_facts_overview(s, t: Transcript) -> None:
    """The offline overview states facts and quotes: what is inside “…” is a key point word for word; outside
    them no run of the transcript's words is longer than a title (6 words) or as long as any key point."""
    assert s.overview.startswith("A ") and " recording" in s.overview
    quotes, outside = quoted_parts(s.overview)
    assert quotes and set(quotes) <= {k.text for k in s.key_points}
    shortest = min(len(k.text.split()) for k in s.key_points)
    assert longest_shared_run(outside, t) <= min(6, shortest - 1), outside
    for c in s.chapters:
        assert c.title in outside  # the chapters are the topics


@pytest.mark.slow
def test_llm_quotes_across_speakers_and_overlapping_are_cut_and_merged(work) -> None:
    t = labelled("call", work)
    toks = tokens(t)

    def handler(req: dict):
        lines = [text for _, text in excerpt_lines(req)]
        # A span over a turn change, the same span again, and a slightly shifted copy of it.
        two = " ".join(text.split(": ", 1)[-1] for text in lines[8:12])
        return answer({"quotes": [{"text": two}, {"text": two}, {"text": two.split(" ", 2)[-1]}]})

    with serve_llm(handler=handler) as server:
        settings = Settings(llm_base_url=server.base_url, llm_api_key=SecretStr("sk-x"), llm_model="test-model",
                            quotes_min_match=60)
        qs = extract_quotes(t, LLMEngine(settings), settings)
    assert len({tok.speaker for tok in toks}) == 2
    assert qs.candidates == 3 and len(qs.quotes) == 1 and qs.duplicates == 2
    assert qs.quotes[0].speaker in {"S1", "S2"}
    assert_quote_rules(qs, t)


def test_fragmented_turns_still_give_a_quote():
    """A diarizer that chops a short meeting into 1-5 word turns (measured on a real AMI excerpt) leaves no
    utterance long enough for a quote by the usual rules: the most substantial one is still quoted, inside
    one speaker's turn."""
    from clipper.job.outputs import Segment, Word
    from tests.helpers import conversations

    words, t = [], 0.0
    for line in conversations.lines():
        for w in line.text.split():
            words.append(Word(start=t, end=t + 0.3, word=w.strip(".,?!").lower(), speaker=f"S{len(words) // 4 % 3 + 1}"))
            t += 0.35
    segments = [Segment(id=i, start=words[i].start, end=words[min(i + 3, len(words) - 1)].end, speaker=words[i].speaker,
                        text=" ".join(w.word for w in words[i:i + 4]), words=words[i:i + 4])
                for i in range(0, len(words), 4)]
    transcript = Transcript(engine="test", duration_s=t, segments=segments)
    settings = Settings(text_engine="offline")
    quotes = extract_quotes(transcript, OfflineEngine(settings), settings).quotes
    assert len(quotes) >= 1
    for q in quotes:
        inside = [w for s in segments for w in s.words if q.start <= w.start and w.end <= q.end]
        assert {w.speaker for w in inside} == {q.speaker}
