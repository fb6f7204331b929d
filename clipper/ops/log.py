"""structlog set-up: JSON lines in production, pretty console on a TTY, secrets redacted everywhere.

Built, like structlog itself, from small processors: the redactor runs last before rendering, so no
event, whatever code emitted it, can carry a configured secret to the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog

from clipper.media.urls import redact_credentials

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.I)
_secrets: list[str] = []


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return redact_credentials(value)  # a password in a URL (user:pass@host) is a secret nobody configured
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: dict) -> dict:
    """Drop values of secret-looking keys and replace any configured secret found inside any value."""
    return _scrub(event_dict)


_base_record_factory = logging.getLogRecordFactory()


def _redacting_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Standard-library logging gets the same redaction (the Temporal SDK logs activity failures there):
    applied when a record is made, so it holds for every logger and handler."""
    record = _base_record_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the handler's to report, not the factory's
        return record
    if _secrets or "@" in message:
        record.msg, record.args = _scrub(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        if _secrets or "@" in text:
            record.exc_text = _scrub(text)
    return record


def configure_logging(
    level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None
) -> None:
    stream = stream or sys.stderr
    _secrets[:] = [s for s in secrets if s]
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    logging.setLogRecordFactory(_redacting_record_factory)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger().bind(**context)
