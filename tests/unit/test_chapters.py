"""Chapters on real transcripts (offline segmentation and titles), their renderers, and LLM titles over the wire."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from clipper.clock import clock
from clipper.config import Settings
from clipper.job.outputs import Chapter, Summary, Transcript
from clipper.llm.client import LLMEngine
from clipper.text.chapters import (
    WORDS_ONLY,
    chapter_text,
    chapters_markdown,
    description_lines,
    make_chapters,
)
from clipper.text.grounding import normalise_text
from clipper.text.lexicon import stopwords
from clipper.text.offline import OfflineEngine
from clipper.text.summary import summarize
from clipper.text.titles import supported
from tests.helpers.llmserver import answer, excerpt_lines, serve_llm, task_prompt, user_prompt
from tests.helpers.text import sample_transcript
from tests.helpers.transcripts import labelled, shifted, unpunctuated

# A chapter mark and the line it starts at: told after the excerpt ("(from line #id)") or put before that line.
MARK = re.compile(r"^=== chapter (\d+)( \(continued\))? ===\n(?:\(from line #(\d+)\)|\[#(\d+))?", re.MULTILINE)
INVENTED = "Quantum gardening for penguins"


def assert_phrase_titles(chapters: list[Chapter], units) -> None:
    """Each title is 2-6 consecutive words the chapter says, neither starting nor ending on a stopword."""
    for c in chapters:
        words = normalise_text(c.title).split()
        assert 2 <= len(words) <= 6, c.title
        assert words[0] not in stopwords() and words[-1] not in stopwords(), c.title
        assert f" {' '.join(words)} " in f" {normalise_text(chapter_text(c, units))} ", c.title


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "real-transcripts"


@pytest.mark.slow
def test_a_short_call_is_one_chapter(work) -> None:
    t = labelled("call", work)
    s = summarize(t, OfflineEngine(Settings()), Settings())
    words = [w for seg in t.segments for w in seg.words]
    assert len(s.chapters) == 1
    c = s.chapters[0]
    assert (c.start, c.end) == (words[0].start, words[-1].end)
    assert c.title and len(c.title) <= 60 and 1 <= len(c.key_points) <= 3
    assert description_lines(s.chapters) == [f"00:00 {c.title}"]


@pytest.mark.parametrize("bare", [False, True], ids=["as-transcribed", "unpunctuated"])
@pytest.mark.slow
def test_topic_change_between_recordings_starts_a_chapter(work, bare) -> None:
    parts = [labelled("allison", work), labelled("concat", work), labelled("allison", work)]
    t, starts = shifted([unpunctuated(p) if bare else p for p in parts])
    chapters, units = make_chapters(t, Settings())
    assert 2 <= len(chapters) <= 15
    assert chapters[0].start == units[0].start and chapters[-1].end == units[-1].end
    for a, b in zip(chapters, chapters[1:]):
        assert a.end <= b.start and b.start - a.start >= WORDS_ONLY.min_chapter_s  # no audio: words-only settings
    assert any(abs(c.start - starts[1]) <= 30 for c in chapters[1:]), [c.start for c in chapters]
    assert len({c.title for c in chapters}) == len(chapters)  # every title its own
    assert_phrase_titles(chapters, units)
    for c in chapters:
        assert 1 <= len(c.key_points) <= 3
        assert all(len(p) <= 240 for p in c.key_points)


def test_description_lines_and_markdown() -> None:
    chapters = [Chapter(start=3.2, end=60, title="Intro", key_points=["a"]),
                Chapter(start=61.5, end=3599, title="Middle"), Chapter(start=3725, end=7300, title="Late")]
    assert description_lines(chapters) == ["00:00 Intro", "01:01 Middle", "1:02:05 Late"]
    assert clock(59.9) == "00:59" and clock(7300, hours=True) == "2:01:40"
    md = chapters_markdown(Summary(engine="offline", overview="o", chapters=chapters))
    assert "```\n00:00 Intro\n01:01 Middle\n1:02:05 Late\n```" in md and "- a" in md
    assert "No chapters" in chapters_markdown(Summary(engine="offline", overview=""))


def _spoken_title(req: dict, line: str | None) -> str:
    """Three of the longest words of the first line from the chapter's start on (the excerpt's first line when
    none is given) that has any word beyond stopwords."""
    lines = excerpt_lines(req)
    first = next((k for k, (sid, _) in enumerate(lines) if line and sid == int(line)), 0)
    for _, text in lines[first:]:
        words = sorted({w for w in normalise_text(text.split(": ", 1)[-1]).split() if w not in stopwords()},
                       key=lambda w: (-len(w), w))
        if words:
            return " ".join(words[:3])
    return INVENTED


@pytest.mark.slow
def test_llm_titles_the_offline_chapters_over_the_wire(work) -> None:
    """The model's titles stand where the chapter says their words; an invented one (chapter 2) does not."""
    parts = [labelled("allison", work), labelled("concat", work), labelled("allison", work)]
    t, _ = shifted(parts)
    offline, units = make_chapters(t, Settings())
    said: dict[int, str] = {}

    def handler(req: dict) -> dict:
        assert "quote" not in task_prompt(req).lower()
        notes = []
        for m in MARK.finditer(user_prompt(req)):
            n = int(m.group(1))
            title = INVENTED if n == 2 else said.setdefault(n, _spoken_title(req, m.group(3) or m.group(4)))
            notes.append({"id": n, "title": title, "key_points": [f"point {n}"]})
        return answer({"overview": "Phone prompts and a chat.", "key_points": [], "chapters": notes}).body

    with serve_llm(handler=handler) as server:
        settings = Settings(llm_base_url=server.base_url, llm_api_key=SecretStr("sk-x"), llm_model="test-model",
                            llm_context_chars=6000)
        s = summarize(t, LLMEngine(settings), settings)
        prompts = [user_prompt(r.json) for r in server.chat_requests]
    assert len(s.chapters) == len(offline) >= 2
    assert [(c.start, c.end) for c in s.chapters] == [(c.start, c.end) for c in offline]  # times: the transcript's
    want = [offline[1].title if n == 2 else said[n] for n in range(1, len(offline) + 1)]
    assert [c.title for c in s.chapters] == want and INVENTED not in want
    assert [c.key_points for c in s.chapters] == [[f"point {n}"] for n in range(1, len(offline) + 1)]
    assert any("(continued)" in p for p in prompts) or len(prompts) == 1
    assert "S1: " in "".join(prompts)  # speakers are shown to the model
    assert s.overview == "Phone prompts and a chat."  # a model's overview is its own, not the offline facts


def _spoken_by(t: Transcript, second_from: int, pause_s: float) -> Transcript:
    """`t` with segments from `second_from` on said by S2 (the rest by S1), shifted `pause_s` later."""
    segments = []
    for seg in t.segments:
        later = seg.id >= second_from
        shift, who = (pause_s, "S2") if later else (0.0, "S1")
        words = [w.model_copy(update={"start": w.start + shift, "end": w.end + shift, "speaker": who})
                 for w in seg.words]
        segments.append(seg.model_copy(update={"start": seg.start + shift, "end": seg.end + shift,
                                               "speaker": who, "words": words}))
    return t.model_copy(update={"segments": segments, "duration_s": (t.duration_s or 0.0) + pause_s})


@pytest.mark.slow  # 0.6-2.5 s on 2 shared cores: three segmentations of a 4-minute transcript
def test_speaker_turns_and_pauses_move_boundaries() -> None:
    """The same words over and over give no topic shift; a new speaker after a long pause starts a chapter
    right there, and the pause or the new speaker alone moves nothing within a monologue."""
    t = sample_transcript(repeat=4)
    settings = Settings()
    plain, _ = make_chapters(t, settings)
    assert len(plain) == 1  # no lexical evidence anywhere
    at = len(t.segments) // 2 + 1
    handover = _spoken_by(t, at, pause_s=5.0)
    chapters, _ = make_chapters(handover, settings)
    start = next(s.start for s in handover.segments if s.id == at)
    assert [c.start for c in chapters[1:]] == [start], [c.start for c in chapters]
    other = _spoken_by(t, at + 5, pause_s=5.0)
    moved, _ = make_chapters(other, settings)
    assert [c.start for c in moved[1:]] == [next(s.start for s in other.segments if s.id == at + 5)]


def test_titles_are_phrases_the_chapter_says() -> None:
    t = sample_transcript()
    chapters, units = make_chapters(t, Settings())
    assert_phrase_titles(chapters, units)
    assert " and " not in chapters[0].title.lower() or chapters[0].title.lower() in t.text.lower()
    text = chapter_text(chapters[0], units)
    assert supported("Durable systems are boring", text) and supported("Reliable tools for small teams", text)
    assert not supported(INVENTED, text) and not supported("the and of", text)
