"""MediaJob with an OpenAI-compatible LLM over the wire: retries through Temporal, typed auth failures, no leaks."""

from __future__ import annotations

from clipper_app.client import JobFailed

from clipper.job.outputs import QuoteSet, Transcript
from clipper.job.request import JobResult
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from tests.helpers import run
from tests.helpers.jobs import history_json, run_job, wait_for_state
from tests.helpers.llmserver import KEY, error, llm_settings, model_answers, serve_llm
from tests.helpers.text import assert_verbatim

def test_llm_job_survives_429_and_500_then_grounds_quotes(settings, media_server):
    flaky = [error(429, "slow down", "rate_limit_error", headers={"Retry-After": "1"}), error(500, "oops", "server_error")]
    with serve_llm(flaky, handler=model_answers) as server:
        settings = llm_settings(settings, server)
        _, job_id, result = run(run_job(settings, media_server.url("/episode.mp3")))
    assert isinstance(result, JobResult), result
    quotes_stage = result.status.stage("quotes")
    assert quotes_stage.attempt == 3  # 429, 500, then success: retried by the stage's Temporal retry policy
    store = ArtifactStore(settings.storage_dir)
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    quotes = QuoteSet.model_validate_json(store.path(job_id, "quotes.json").read_bytes())
    assert quotes.engine == "llm" and len(quotes.quotes) == 2
    for quote in quotes.quotes:
        assert_verbatim(quote, transcript)
    history = run(history_json(settings, job_id))
    assert KEY not in history


def test_llm_401_fails_the_job_with_a_typed_error_and_no_key(settings, media_server):
    async def abandon_when_waiting(clipper, job_id):
        status = await wait_for_state(clipper, job_id, JobState.failed)
        assert status.waiting_since is not None and status.error.type == "LLMAuthError"
        await clipper.abandon(job_id)

    with serve_llm(handler=lambda req: error(401, f"Incorrect API key provided: {KEY}", "invalid_request_error")) as server:
        settings = llm_settings(settings, server)
        _, job_id, result = run(run_job(settings, media_server.url("/episode.mp3"), during=abandon_when_waiting))
        calls = len(server.chat_requests)
    assert isinstance(result, JobFailed)
    assert result.error_type == "LLMAuthError"
    assert "CLIPPER_LLM_API_KEY" in result.error_message and KEY not in result.error_message
    assert calls == 1  # non-retryable: not after the whole retry budget
    assert KEY not in run(history_json(settings, job_id))
