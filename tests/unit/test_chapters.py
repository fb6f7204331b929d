"""Chapters on real transcripts (offline segmentation and titles), their renderers, and LLM titles over the wire."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from clipper.clock import clock
from clipper.config import Settings
from clipper.job.outputs import Chapter, Summary
from clipper.llm.client import LLMEngine
from clipper.text.chapters import (
    MIN_CHAPTER_S,
    chapters_markdown,
    description_lines,
    make_chapters,
)
from clipper.text.offline import OfflineEngine
from clipper.text.summary import summarize
from tests.helpers.llmserver import answer, serve_llm, system_prompt, user_prompt
from tests.helpers.transcripts import labelled, shifted, unpunctuated

MARK = re.compile(r"^=== chapter (\d+)( \(continued\))? ===$", re.MULTILINE)


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


@pytest.mark.parametrize("bare", [False, pytest.param(True, marks=pytest.mark.xfail(
    strict=True, reason="known gap (chapters on unpunctuated speech): on a fresh install (ctranslate2 4.8.5, numpy 2.4) lexical cohesion "
    "alone ranks three in-recording gaps above the join of the unpunctuated transcripts (0/236/469/709 s, join at "
    "317 s); it failed before the neural speaker stage too"))], ids=["as-transcribed", "unpunctuated"])
@pytest.mark.slow
def test_topic_change_between_recordings_starts_a_chapter(work, bare) -> None:
    parts = [labelled("allison", work), labelled("concat", work), labelled("allison", work)]
    t, starts = shifted([unpunctuated(p) if bare else p for p in parts])
    chapters, units = make_chapters(t, Settings())
    assert 2 <= len(chapters) <= 15
    assert chapters[0].start == units[0].start and chapters[-1].end == units[-1].end
    for a, b in zip(chapters, chapters[1:]):
        assert a.end <= b.start and b.start - a.start >= MIN_CHAPTER_S
    assert any(abs(c.start - starts[1]) <= 30 for c in chapters[1:]), [c.start for c in chapters]
    assert len({c.title for c in chapters}) == len(chapters)  # every title its own
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


@pytest.mark.slow
def test_llm_titles_the_offline_chapters_over_the_wire(work) -> None:
    parts = [labelled("allison", work), labelled("concat", work), labelled("allison", work)]
    t, _ = shifted(parts)
    offline, _ = make_chapters(t, Settings())

    def handler(req: dict) -> dict:
        assert "quote" not in system_prompt(req).lower()
        marks = [int(m.group(1)) for m in MARK.finditer(user_prompt(req))]
        return answer({"overview": "Phone prompts and a chat.", "key_points": [],
                       "chapters": [{"id": n, "title": f"Topic number {n}", "key_points": [f"point {n}"]}
                                    for n in marks]}).body

    with serve_llm(handler=handler) as server:
        settings = Settings(llm_base_url=server.base_url, llm_api_key=SecretStr("sk-x"), llm_model="test-model",
                            llm_context_chars=6000)
        s = summarize(t, LLMEngine(settings), settings)
        prompts = [user_prompt(r.json) for r in server.chat_requests]
    assert len(s.chapters) == len(offline) >= 2
    assert [(c.start, c.end) for c in s.chapters] == [(c.start, c.end) for c in offline]  # times: the transcript's
    assert [c.title for c in s.chapters] == [f"Topic number {n}" for n in range(1, len(offline) + 1)]
    assert [c.key_points for c in s.chapters] == [[f"point {n}"] for n in range(1, len(offline) + 1)]
    assert any("(continued)" in p for p in prompts) or len(prompts) == 1
    assert "S1: " in "".join(prompts)  # speakers are shown to the model
