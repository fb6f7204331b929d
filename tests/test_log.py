"""structlog set-up: JSON lines, job context, and secrets never reach the output."""

from __future__ import annotations

import io
import json

import structlog

from clipper.log import configure_logging


def test_json_lines_with_context_and_redaction():
    out = io.StringIO()
    configure_logging("info", "json", secrets=["sk-planted-secret-123"], stream=out)
    log = structlog.get_logger().bind(job_id="clip-1", stage="download")
    log.info("stage.started", url="https://x/?key=sk-planted-secret-123", api_key="sk-other", nested={"token": "t"})
    log.debug("hidden at info level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    event = lines[0]
    assert event["event"] == "stage.started" and event["job_id"] == "clip-1" and event["stage"] == "download"
    assert "sk-planted-secret-123" not in out.getvalue() and "sk-other" not in out.getvalue()
    assert event["nested"]["token"] == "[REDACTED]"
