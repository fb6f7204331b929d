"""A planted API key never leaves the worker's memory; transcript text never reaches info-level logs.

The worker is a subprocess logging JSON at debug level, with CLIPPER_LLM_API_KEY set to a planted key. The LLM
endpoint (tests/helpers/llmserver.py) echoes the key back in every error it can: a 500, a 429, a 401 (the job then
waits for a manual retry), malformed answers and a 400 (whose detail ends up in the stage's error message),
and then answers properly. After the job is done, the key must be nowhere: not in the worker's output (JSON
lines or anything else), not in the workflow history, not in any file under storage, not in the output of
`clipper status --json` / `history --json` (also while the job waits with an error), not in the Temporal
server's log. And no info-level (or louder) line carries words of the transcript.

The S3 artifact store's secret key (AWS_SECRET_ACCESS_KEY) gets the same treatment in a smaller test: redacted
from every log line, absent from the store's errors.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import traceback
from collections import deque
from pathlib import Path

import pytest
import structlog

from clipper.config import Settings
from clipper.errors import StorageUnavailable
from clipper.job.request import JobResult
from clipper.job.stages import StagePolicy
from clipper.job.status import JobState
from clipper.ops.log import configure_logging
from clipper.store.configured import open_store
from clipper_app.client import ClipperClient, connect
from tests.helpers import FAST_POLICIES, run
from tests.helpers.jobs import history_json, wait_for_state
from tests.helpers.llmserver import Reply, answer, completion, error, excerpt_lines, serve_llm, task_prompt

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-planted-3f9c2a7d41e84b06a5d1c8e2f7b9d0aa"
S3_SECRET = "s3-planted-9d2e4c7a1b6f48e3a05c2d8b7e1f9a64"  # the S3 store's: from the AWS chain, not from settings
# Words of the sample's transcript that are not also in its title or file name.
TRANSCRIPT_PHRASES = ("boring on purpose", "worst possible moment", "clear pipeline", "false confidence")


class EchoingLLM:
    """Per stage, a queue of hostile answers that all echo the key; then proper answers."""

    def __init__(self) -> None:
        self.script = {
            "quotes": deque([
                error(500, f"internal error while serving key {KEY}", "server_error"),
                error(429, f"Rate limit reached for {KEY}", "rate_limit_error", headers={"Retry-After": "1"}),
                error(401, f"Incorrect API key provided: {KEY}. You can find your API key at ...",
                      "invalid_request_error", code="invalid_api_key"),  # non-retryable: the job waits
            ]),
            "summary": deque([
                *[Reply(body=completion(f"Sure! Your key is {KEY}, here is no JSON"))] * 3,  # LLMBadOutput, retried
                error(400, f"Invalid request from {KEY}: context window exceeded", "invalid_request_error"),  # waits
            ]),
        }

    def __call__(self, request: dict) -> Reply:
        stage = "quotes" if "quote" in task_prompt(request).lower() else "summary"
        if self.script[stage]:
            return self.script[stage].popleft()
        lines = excerpt_lines(request)
        if stage == "quotes":
            return answer({"quotes": [{"text": text, "reason": "memorable"} for _, text in lines[3:6]]})
        points = [{"text": text, "segments": [sid, sid]} for sid, text in lines[:3]]
        return answer({"overview": "A talk about durable software.", "key_points": points})


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_LLM_API_KEY=KEY, CLIPPER_LLM_MODEL="test-model")
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_planted_key_appears_nowhere_and_transcript_stays_out_of_info_logs(settings, media_server, temporal_server,
                                                                           tmp_path):
    policies = {**FAST_POLICIES, **{s: StagePolicy(initial_interval_s=0.2, max_interval_s=1, max_attempts=4,
                                                   heartbeat_timeout_s=10, timeout_base_s=60)
                                    for s in ("quotes", "summary")}}
    settings = settings.model_copy(update={"policies": policies})
    log_path = tmp_path / "worker.log"
    outputs: list[str] = []  # everything the CLI printed

    with serve_llm(handler=EchoingLLM()) as llm:
        env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
                   CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true",
                   CLIPPER_LOG_FORMAT="json", CLIPPER_LOG_LEVEL="debug", HF_HUB_OFFLINE="1",
                   CLIPPER_LLM_BASE_URL=llm.base_url, CLIPPER_LLM_API_KEY=KEY, CLIPPER_LLM_MODEL="test-model",
                   CLIPPER_LLM_TIMEOUT_S="20", CLIPPER_GRACEFUL_SHUTDOWN_S="2")
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                                  stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
        try:
            async def submit() -> str:
                return (await ClipperClient(await connect(settings), settings).submit(media_server.url("/episode.mp3"))).job_id

            job_id = run(submit())
            for stage, error_type in (("quotes", "LLMAuthError"), ("summary", "EngineNotConfigured")):
                async def wait_failed():
                    clipper = ClipperClient(await connect(settings), settings)
                    return await wait_for_state(clipper, job_id, JobState.failed, timeout=120)

                status = run(wait_failed())
                assert status.waiting_since is not None and status.error.type == error_type, status.error
                assert status.current_stage == stage
                shown = cli(settings, "status", job_id, "--json")
                assert shown.returncode == 0, shown.stderr
                assert json.loads(shown.stdout)["error"]["type"] == error_type
                outputs += [shown.stdout, shown.stderr]

                async def retry():
                    await ClipperClient(await connect(settings), settings).retry(job_id)

                run(retry())

            async def result() -> JobResult:
                return await ClipperClient(await connect(settings), settings).result(job_id)

            outcome = run(result())
            for args in (("status", job_id, "--json"), ("history", job_id, "--json"), ("status", job_id)):
                shown = cli(settings, *args)
                assert shown.returncode == 0, (args, shown.stderr)
                outputs += [shown.stdout, shown.stderr]
            authorizations = {r.authorization for r in llm.chat_requests}
        finally:
            worker.terminate()
            worker.wait(30)

    assert outcome.state == JobState.done
    assert authorizations == {f"Bearer {KEY}"}  # the key really was in use on the wire

    # Not in the worker's output, at debug level, JSON lines or not.
    logs = log_path.read_text(errors="replace")
    assert "stage.failed" in logs and "LLMAuthError" in logs  # the errors that echoed the key were logged
    assert KEY not in logs
    # Not in the workflow history (errors, inputs, heartbeats, search attributes).
    history = run(history_json(settings, job_id))
    assert "LLMAuthError" in history and "EngineNotConfigured" in history
    assert KEY not in history
    # Not in any file the job left behind (artifacts, manifest, receipts, scratch, rate book).
    files = [p for p in Path(settings.storage_dir).rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [p for p in files if KEY.encode() in p.read_bytes()] == []
    # Not in what the CLI showed, nor in the server's log.
    assert all(KEY not in out for out in outputs)
    assert KEY not in Path(temporal_server.log_file).read_text(errors="replace")

    # Transcript text stays out of info-level (and louder) log lines; anything that is not a JSON line
    # (a traceback, a library's own print) counts as loud.
    loud = []
    for line in logs.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            loud.append(line)
            continue
        if event.get("level") != "debug":
            loud.append(line)
    assert any('"stage.completed"' in line for line in loud)
    leaked = [line for line in loud for phrase in TRANSCRIPT_PHRASES if phrase in line.lower()]
    assert leaked == []


def test_s3_secret_key_stays_out_of_errors_and_logs(tmp_path, monkeypatch):
    """The S3 store's secret key comes from the AWS environment, not from clipper's settings: it is redacted from
    logs all the same (clipper's, the SDK's, botocore's own debug lines) and no storage error carries it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPLANTEDKEYID0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with socket.socket() as sock:  # a port where nothing listens: the store is unreachable
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(storage_dir=tmp_path, storage_url="s3://clipper/jobs", s3_endpoint_url=endpoint)
    out = io.StringIO()
    configure_logging("debug", "json", settings.secrets(), stream=out)
    handler, root = logging.StreamHandler(out), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with pytest.raises(StorageUnavailable) as raised:
            open_store(settings).put_text("clip-secret", "notes.txt", "hello", "quotes")
        structlog.get_logger().warning("stage.failed", error_type=raised.value.type_name, error=raised.value.message)
        logging.getLogger("temporalio.activity").warning("Completing activity as failed", exc_info=raised.value)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    logs = out.getvalue()
    assert "stage.failed" in logs and endpoint in logs and "Completing activity as failed" in logs
    assert "Found credentials in environment variables" in logs  # botocore's own debug lines are in there
    assert S3_SECRET not in logs
    assert S3_SECRET not in "".join(traceback.format_exception(raised.value))
