"""The LLM engine over the wire: the real `openai` client against a local OpenAI-compatible server."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest
from pydantic import SecretStr

from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.errors import EngineNotConfigured, LLMAuthError, LLMBadOutput, LLMUnavailable
from clipper.llm import get_text_engine
from clipper.llm.client import LLMEngine, parse_retry_after
from clipper.text.chunking import chunk_transcript
from clipper.text.quotes import extract_quotes
from clipper.text.summary import summarize
from tests.helpers.llmserver import Reply, answer, completion, error, excerpt_lines, serve_llm, system_prompt
from tests.helpers.text import BORING, TEST_QUOTE, assert_verbatim, sample_transcript

KEY = "sk-test-0123456789abcdef-secret"
PARAPHRASE = "durable systems are dull by design, and dull is what users pay for"
INVENTED = "Kubernetes operators should always be written in Rust for maximum safety and speed"


def llm_settings(base_url: str, **overrides) -> Settings:
    values = dict(llm_base_url=base_url, llm_api_key=SecretStr(KEY), llm_model="test-model", llm_timeout_s=10)
    values.update(overrides)
    return Settings(**values)


def one_chunk_engine(server, **overrides) -> tuple[LLMEngine, object]:
    engine = LLMEngine(llm_settings(server.base_url, **overrides))
    return engine, chunk_transcript(sample_transcript(), 10_000)[0]


def quotes_from_prompt(request: dict) -> dict:
    """Answer like a model: one exact quote from the excerpt, a paraphrase and an invented one."""
    lines = dict(excerpt_lines(request))
    exact = next(text for text in lines.values() if text.startswith("Testing matters"))
    return {"quotes": [
        {"text": exact.split(". ", 1)[1], "reason": "aphorism"},
        {"text": PARAPHRASE, "reason": "memorable"},
        {"text": INVENTED, "reason": "made up"},
    ]}


def test_quotes_are_grounded_verbatim_spans() -> None:
    t = sample_transcript()
    with serve_llm(handler=lambda req: answer(quotes_from_prompt(req))) as server:
        settings = llm_settings(server.base_url, quotes_min_match=60)
        qs = extract_quotes(t, get_text_engine(settings), settings)
        req = server.chat_requests[0]
    assert qs.engine == "llm" and qs.model == "test-model"
    assert qs.candidates == 3 and qs.ungrounded == 1 and qs.ungrounded_examples == [INVENTED]
    texts = [q.text for q in qs.quotes]
    assert TEST_QUOTE + "." in texts
    assert BORING + "." in texts  # the paraphrase snapped to the words actually spoken
    for q in qs.quotes:
        assert_verbatim(q, t)
    assert [q.rank for q in qs.quotes] == [1, 2]
    # What went over the wire: the model, JSON mode, the key in the header, the excerpt with segment ids.
    assert req.json["model"] == "test-model" and req.json["response_format"] == {"type": "json_object"}
    assert req.authorization == f"Bearer {KEY}"
    assert "[#5 " in req.json["messages"][1]["content"]


def test_default_threshold_snaps_paraphrases_and_drops_inventions() -> None:
    t = sample_transcript()
    with serve_llm(handler=lambda req: answer(quotes_from_prompt(req))) as server:
        settings = llm_settings(server.base_url)  # default quotes_min_match
        qs = extract_quotes(t, LLMEngine(settings), settings)
    assert sorted(q.text for q in qs.quotes) == sorted([TEST_QUOTE + ".", BORING + "."])
    assert qs.ungrounded == 1 and qs.ungrounded_examples == [INVENTED]

    with serve_llm(handler=lambda req: answer(quotes_from_prompt(req))) as server:
        strict = llm_settings(server.base_url, quotes_min_match=85)
        qs = extract_quotes(t, LLMEngine(strict), strict)
    assert [q.text for q in qs.quotes] == [TEST_QUOTE + "."] and qs.ungrounded == 2


def test_rate_limit_carries_retry_after() -> None:
    with serve_llm([error(429, "slow down", "rate_limit_error", headers={"Retry-After": "2"})]) as server:
        engine, chunk = one_chunk_engine(server)
        with pytest.raises(LLMUnavailable) as info:
            engine.propose_quotes(chunk, 5)
        assert len(server.chat_requests) == 1  # no SDK retries: the caller's retry policy decides
    assert info.value.retry_after_s == 2 and info.value.non_retryable is False
    assert parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)}) == pytest.approx(30, abs=2)
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5 and parse_retry_after({}) is None


def test_server_error_is_retryable() -> None:
    with serve_llm([error(500, "boom", "server_error")]) as server:
        engine, chunk = one_chunk_engine(server)
        with pytest.raises(LLMUnavailable) as info:
            engine.summarize_chunk(chunk)
    assert not info.value.non_retryable and info.value.retry_after_s is None


def test_unreachable_server_is_retryable() -> None:
    with serve_llm() as server:
        url = server.base_url
    with pytest.raises(LLMUnavailable):
        LLMEngine(llm_settings(url)).summarize_chunk(chunk_transcript(sample_transcript(), 10_000)[0])


def test_malformed_json_is_repaired_with_the_validation_error() -> None:
    good = answer({"quotes": [{"text": TEST_QUOTE, "reason": "x"}]})
    with serve_llm([Reply(body=completion('{"quotez": []}')), good]) as server:
        engine, chunk = one_chunk_engine(server)
        quotes = engine.propose_quotes(chunk, 5)
        first, second = (r.json["messages"] for r in server.chat_requests)
    assert [q.text for q in quotes] == [TEST_QUOTE]
    # The repair is the same request, then the bad answer and what was wrong with it.
    assert second[: len(first)] == first and second[len(first)] == {"role": "assistant", "content": '{"quotez": []}'}
    assert "quotes: Field required" in second[-1]["content"] and engine.usage["bad_answers"] == 1


def test_invalid_json_twice_is_a_typed_error() -> None:
    with serve_llm([Reply(body=completion("Sure! Here are the quotes: {not json")),
                    Reply(body=completion("```json\n{still not json\n```"))]) as server:
        engine, chunk = one_chunk_engine(server)  # the default: one repair
        with pytest.raises(LLMBadOutput) as info:
            engine.propose_quotes(chunk, 5)
        assert len(server.chat_requests) == 2
        assert "not valid JSON" in server.chat_requests[1].json["messages"][-1]["content"]
    assert "after 2 attempts" in str(info.value) and not info.value.non_retryable


def test_malformed_json_forever_is_bad_output() -> None:
    with serve_llm(handler=lambda req: "definitely not json") as server:
        engine, chunk = one_chunk_engine(server, llm_max_bad_output_retries=2)
        with pytest.raises(LLMBadOutput) as info:
            engine.propose_quotes(chunk, 5)
        assert len(server.chat_requests) == 3
    assert info.value.non_retryable is False


def test_auth_error_never_shows_the_key() -> None:
    with serve_llm([error(401, f"Incorrect API key provided: {KEY}", "invalid_request_error", "invalid_api_key")]) as s:
        engine, chunk = one_chunk_engine(s)
        with pytest.raises(LLMAuthError) as info:
            engine.propose_quotes(chunk, 5)
        assert s.chat_requests[0].authorization == f"Bearer {KEY}"  # sent, but never leaked
    assert info.value.non_retryable
    assert "CLIPPER_LLM_API_KEY" in str(info.value) and KEY not in str(info.value)
    assert KEY not in repr(info.value) and info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_model_is_not_configured() -> None:
    with serve_llm([error(404, "The model `nope` does not exist", "invalid_request_error", "model_not_found")]) as s:
        engine, chunk = one_chunk_engine(s, llm_model="nope")
        with pytest.raises(EngineNotConfigured) as info:
            engine.summarize_chunk(chunk)
    assert "nope" in str(info.value) and "CLIPPER_LLM_MODEL" in str(info.value) and info.value.non_retryable


def test_server_without_json_mode_is_asked_without_it() -> None:
    refused = error(400, "response_format is not supported by this model")
    with serve_llm([refused, answer({"overview": "o", "key_points": []})]) as server:
        engine, chunk = one_chunk_engine(server)
        assert engine.summarize_chunk(chunk).overview == "o"
        first, second = (r.json for r in server.chat_requests)
    assert "response_format" in first and "response_format" not in second


@pytest.mark.slow
def test_concurrency_is_bounded_and_bad_chunks_are_skipped() -> None:
    t = sample_transcript(repeat=4)
    settings_kw = dict(llm_context_chars=400, llm_concurrency=2, llm_max_bad_output_retries=0)
    n_chunks = len(chunk_transcript(t, 400))
    assert n_chunks >= 6

    def handler(req: dict) -> Reply:
        lines = excerpt_lines(req)
        if lines[0][0] == 0:  # the first chunk always answers garbage
            return Reply(body=completion("garbage"), delay_s=0.1)
        return Reply(body=completion(json.dumps({"quotes": [lines[0][1]]})), delay_s=0.1)

    done: list[tuple[int, int]] = []
    with serve_llm(handler=handler) as server:
        settings = llm_settings(server.base_url, **settings_kw)
        qs = extract_quotes(t, LLMEngine(settings), settings, on_chunk_done=lambda d, n: done.append((d, n)))
        assert server.max_in_flight == 2
    assert qs.failed_chunks == [0] and qs.candidates == n_chunks - 1
    assert done[-1] == (n_chunks, n_chunks)
    for q in qs.quotes:
        assert_verbatim(q, t)

    with serve_llm(handler=lambda req: "garbage") as server, pytest.raises(LLMBadOutput):
        settings = llm_settings(server.base_url, **settings_kw)
        extract_quotes(t, LLMEngine(settings), settings)

    slow = Reply(body=completion('{"quotes": []}'), delay_s=0.3)
    with serve_llm(handler=lambda req: slow) as server, pytest.raises(StopRequested):
        settings = llm_settings(server.base_url, **settings_kw)
        extract_quotes(t, LLMEngine(settings), settings, should_stop=lambda: True)
    assert len(server.chat_requests) <= 2  # work not yet started was cancelled


def summary_handler(req: dict) -> dict:
    """Map: one point per excerpt line pair, citing real ids. Reduce: keep the parts' points and ids."""
    if "merge the partial summaries" in system_prompt(req):
        parts = json.loads(req["messages"][1]["content"].split("\n", 1)[1])
        points = [p for part in parts for p in part["key_points"]][:7]
        return answer({"overview": "The whole talk.", "key_points": points}).body
    lines = excerpt_lines(req)
    points = [{"text": text, "segments": [sid, sid]} for sid, text in lines[:2]]
    points.append({"text": "an invented point", "segments": [9999, "#10000"]})  # unknown ids: fallback span
    return answer({"overview": f"Part from #{lines[0][0]}.", "key_points": points}).body


def test_summary_maps_reduces_and_carries_times() -> None:
    t = sample_transcript(repeat=3)
    end = t.segments[-1].end
    with serve_llm(handler=summary_handler) as server:
        settings = llm_settings(server.base_url, llm_context_chars=700)
        n_chunks = len(chunk_transcript(t, 700))
        s = summarize(t, LLMEngine(settings), settings)
        systems = [system_prompt(r.json) for r in server.chat_requests]
    assert n_chunks > 2
    assert sum("merge the partial" in p for p in systems) >= 1 and len(systems) > n_chunks
    assert s.overview == "The whole talk." and 3 <= len(s.key_points) <= 7
    assert [k.start for k in s.key_points] == sorted(k.start for k in s.key_points)
    for k in s.key_points:
        assert 0 <= k.start <= k.end <= end
    seg0 = t.segments[0]  # cited as [0, 0] by the first part and kept by the reduce
    assert any((k.text, k.start, k.end) == (seg0.text, seg0.start, seg0.end) for k in s.key_points)


def test_summary_of_one_chunk_makes_no_reduce_call() -> None:
    t = sample_transcript()
    with serve_llm(handler=summary_handler) as server:
        settings = llm_settings(server.base_url)
        s = summarize(t, LLMEngine(settings), settings)
        assert len(server.chat_requests) == 1
    assert s.overview == "Part from #0." and len(s.key_points) == 3
    seg0 = t.segments[0]
    assert (s.key_points[0].start, s.key_points[0].end) == (seg0.start, seg0.end)
    invented = next(k for k in s.key_points if k.text == "an invented point")
    assert (invented.start, invented.end) == (t.segments[0].start, t.segments[-1].end)  # the chunk's span
