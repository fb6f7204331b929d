"""structlog set-up: JSON lines, job context, and secrets never reach the output."""

from __future__ import annotations

import io
import json

import structlog

from clipper.ops.log import configure_logging


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


def test_stdlib_logging_is_redacted_too():
    import logging

    configure_logging("info", "json", secrets=["sk-planted-stdlib-456"], stream=io.StringIO())
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("temporalio.activity")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("upstream said: bad key sk-planted-stdlib-456")
        except RuntimeError:
            logger.warning("Completing activity as failed (%s)", "key sk-planted-stdlib-456", exc_info=True)
    finally:
        logger.removeHandler(handler)
    assert "Completing activity as failed" in out.getvalue()
    assert "sk-planted-stdlib-456" not in out.getvalue()


def test_a_password_in_a_url_is_redacted_from_every_log_line():
    """No one configured it as a secret, so the redactor finds it by shape: user:password@ in a URL."""
    import logging

    out = io.StringIO()
    configure_logging("debug", "json", [], stream=out)
    structlog.get_logger().info("download.started", url="https://user:pw-9f2c@host.example/a.mp3",
                                error="fetching https://user:pw-9f2c@host.example/a.mp3 failed")
    handler, root = logging.StreamHandler(out), logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("yt_dlp").warning("GET %s", "https://user:pw-9f2c@host.example/a.mp3")
    finally:
        root.removeHandler(handler)
    logs = out.getvalue()
    assert "pw-9f2c" not in logs and logs.count("https://***@host.example/a.mp3") == 3
