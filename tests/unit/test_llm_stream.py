"""The LLM engine against servers that behave like real ones: prefix caches, token counts, slow streams, JSON
outside `response_format`, cancellation. The real `openai` client talks to the local stand-in over HTTP."""

from __future__ import annotations

import json
import threading
import time

import pytest
from pydantic import SecretStr

from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.llm.budget import fit
from clipper.llm.client import LLMEngine
from clipper.text.chunking import chunk_transcript, render_chunk
from clipper.text.quotes import extract_quotes
from clipper.text.summary import summarize
from tests.helpers.llmserver import (
    Reply, answer, completion, excerpt_lines, model_answers, serve_llm, system_prompt, task_prompt, user_prompt,
)
from tests.helpers.text import TEST_QUOTE, assert_verbatim, sample_transcript


def settings_for(server, **overrides) -> Settings:
    values = dict(llm_base_url=server.base_url, llm_api_key=SecretStr("sk-test-stream"), llm_model="test-model",
                  llm_timeout_s=10)
    values.update(overrides)
    return Settings(**values)


def shared_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@pytest.mark.slow
def test_a_chunks_quotes_and_summary_requests_share_its_transcript_as_prefix() -> None:
    t = sample_transcript(repeat=3)
    with serve_llm(handler=model_answers) as server:
        settings = settings_for(server, llm_context_chars=700)
        chunks = chunk_transcript(t, 700)
        extract_quotes(t, LLMEngine(settings), settings)
        summarize(t, LLMEngine(settings), settings)
        requests = [r.json for r in server.chat_requests]
    assert len(chunks) >= 3
    by_kind: dict[str, dict[int, dict]] = {"quotes": {}, "summary": {}}
    for req in requests:
        task = task_prompt(req)
        if not task.startswith("Task: "):
            continue  # a reduce
        by_kind["quotes" if "quote" in task.lower() else "summary"][excerpt_lines(req)[0][0]] = req
    assert len(by_kind["quotes"]) == len(by_kind["summary"]) == len(chunks)
    for chunk in chunks:
        quotes, summary = by_kind["quotes"][chunk.segments[0].id], by_kind["summary"][chunk.segments[0].id]
        assert system_prompt(quotes) == system_prompt(summary)  # byte-identical system prompt
        q, s = user_prompt(quotes), user_prompt(summary)
        excerpt = render_chunk(chunk, marks=False)
        common = q[: shared_prefix(q, s)]
        assert excerpt in common and common.index(excerpt) < 40  # the whole excerpt comes first, in both
        assert q[len(common):].startswith("Task: ") or common.endswith("Task: ")  # the task only after it
        assert "=== chapter" not in common  # chapter marks are told after the excerpt, in the summary's task


@pytest.mark.slow
def test_a_server_counting_tokens_sizes_the_chunks_in_tokens() -> None:
    t = sample_transcript(repeat=8)  # ~7400 characters
    with serve_llm(handler=model_answers, chars_per_token=2.0) as server:
        settings = settings_for(server, llm_context_tokens=2200, llm_max_tokens=300)
        engine = LLMEngine(settings)
        fitted = fit(settings, engine, t)
        probe = server.chat_requests[0].json
        extract_quotes(t, engine, fitted)
        first_chunk = next(r.json for r in server.chat_requests[1:] if "(part 1)" in user_prompt(r.json))
    assert engine.chars_per_token is not None and 1.9 <= engine.chars_per_token <= 2.0
    budget = fitted.llm_context_chars
    assert 1500 < budget < 2500 < settings.llm_context_chars  # room: 2200 - 300 - the prompt, at ~2 chars a token
    chunks = chunk_transcript(t, budget)
    assert len(chunks) >= 3 and all(len(render_chunk(c)) <= budget for c in chunks)
    # Every request about a chunk stays within the model's window (the stand-in counts like the probe).
    for req in (r for r in server.chat_requests[1:]):
        prompt_chars = sum(len(m["content"]) for m in req.json["messages"])
        assert prompt_chars / 2.0 + settings.llm_max_tokens <= settings.llm_context_tokens
    # The probe asks for one token, and is the start of the first chunk's request (a prefix cache reuses it).
    assert probe["max_tokens"] == 1 and "stream" not in probe and "response_format" not in probe
    assert probe["messages"][0] == first_chunk["messages"][0]
    assert user_prompt(first_chunk).startswith(user_prompt(probe))

    with serve_llm(handler=model_answers) as server:  # counts nothing believable (always 1 token): chars budget
        settings = settings_for(server, llm_context_tokens=1500, llm_context_chars=5000)
        assert fit(settings, LLMEngine(settings), t).llm_context_chars == 5000


@pytest.mark.slow
def test_json_in_code_fences_from_a_server_ignoring_response_format() -> None:
    fenced = "Here is the JSON you asked for:\n```json\n" + json.dumps({"quotes": [{"text": TEST_QUOTE}]}) + "\n```"
    t = sample_transcript()
    with serve_llm(handler=lambda req: fenced) as server:
        settings = settings_for(server)
        qs = extract_quotes(t, LLMEngine(settings), settings)
        sent = server.chat_requests[0].json
        assert len(server.chat_requests) == 1  # parsed at once: no repair needed
    assert sent["response_format"] == {"type": "json_object"} and sent["stream"] is True
    assert [q.text for q in qs.quotes] == [TEST_QUOTE + "."]
    for q in qs.quotes:
        assert_verbatim(q, t)


def map_reduce_answers(req: dict) -> Reply:
    """Like a model: quotes and points from the excerpt's own lines; a reduce keeps the parts' cited points."""
    if "merge the partial" in system_prompt(req):
        parts = json.loads(user_prompt(req).split("\n", 1)[1])
        return answer({"overview": "The whole talk.", "key_points": [p for part in parts for p in part["key_points"]][:7]})
    return model_answers(req)


def long_answer(words: int) -> str:
    return json.dumps({"quotes": [{"text": TEST_QUOTE, "reason": " ".join(["because"] * words)}]})


@pytest.mark.slow
def test_a_slow_server_is_not_timed_out_while_tokens_arrive() -> None:
    # ~25 words at 5 words/s: about 5 s in all, far over the 1 s allowed between tokens.
    with serve_llm(handler=lambda req: long_answer(20), tokens_per_s=5) as server:
        settings = settings_for(server, llm_timeout_s=1.0)
        engine = LLMEngine(settings)
        progress: list[int] = []
        engine.watch(None, progress.append)
        started = time.monotonic()
        quotes = engine.propose_quotes(chunk_transcript(sample_transcript(), 10_000)[0], 5)
        elapsed = time.monotonic() - started
    assert [q.text for q in quotes] == [TEST_QUOTE] and elapsed > 3.5
    assert len(progress) >= 20  # every token counted as progress

    # Silence longer than the idle timeout is still a timeout.
    with serve_llm([Reply(body=completion("{}"), delay_s=2.5)]) as server:
        settings = settings_for(server, llm_timeout_s=1.0)
        with pytest.raises(Exception) as info:
            LLMEngine(settings).propose_quotes(chunk_transcript(sample_transcript(), 10_000)[0], 5)
    assert type(info.value).__name__ == "LLMUnavailable" and "CLIPPER_LLM_TIMEOUT_S" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["between tokens", "before the first token"])
def test_a_stop_closes_the_stream_promptly(phase) -> None:
    reply = (Reply(body=completion(long_answer(60)), tokens_per_s=3) if phase == "between tokens"
             else Reply(body=completion(long_answer(5)), delay_s=6))
    stop = threading.Event()
    with serve_llm([reply]) as server:
        engine = LLMEngine(settings_for(server))
        engine.watch(stop.is_set)
        threading.Timer(1.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(StopRequested):
            engine.propose_quotes(chunk_transcript(sample_transcript(), 10_000)[0], 5)
        returned = time.monotonic() - started
        if phase == "between tokens":
            deadline = time.monotonic() + 3
            while not server.stream_ended and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.aborted == 1 and server.stream_ended[0] - started < 3.0  # the server saw the hang-up
    assert 1.4 < returned < 2.5


@pytest.mark.slow
def test_chunked_map_reduce_over_three_chunks_from_a_slow_server() -> None:
    t = sample_transcript(repeat=3)
    with serve_llm(handler=map_reduce_answers, tokens_per_s=40) as server:
        settings = settings_for(server, llm_context_chars=700, llm_timeout_s=2.0, llm_concurrency=2)
        n_chunks = len(chunk_transcript(t, 700))
        qs = extract_quotes(t, LLMEngine(settings), settings)
        s = summarize(t, LLMEngine(settings), settings)
        reduces = [r for r in server.chat_requests if "merge the partial" in system_prompt(r.json)]
        assert server.aborted == 0
    assert n_chunks >= 3 and len(reduces) >= 1
    assert qs.quotes and qs.failed_chunks == [] and qs.ungrounded == 0
    for q in qs.quotes:
        assert_verbatim(q, t)
    assert s.overview and s.key_points and s.failed_chunks == []


def test_a_server_refusing_stream_is_asked_without_it() -> None:
    refused = Reply(status=400, body={"error": {"message": "stream is not supported", "type": "invalid_request_error"}})
    with serve_llm([refused, answer({"quotes": [TEST_QUOTE]})]) as server:
        engine = LLMEngine(settings_for(server))
        quotes = engine.propose_quotes(chunk_transcript(sample_transcript(), 10_000)[0], 5)
        first, second = (r.json for r in server.chat_requests)
    assert [q.text for q in quotes] == [TEST_QUOTE]
    assert first["stream"] is True and "stream" not in second and "stream_options" not in second
