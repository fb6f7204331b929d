"""The JSON Schemas in docs/schemas/ are generated from the models and must match them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipper.errors import InvalidRequest
from clipper.job.request import JobRequest, JobResult, PauseRequest, RetryRequest
from clipper.job.status import JobStatus
from scripts.gen_schemas import SCHEMA_DIR, write
from workflows.control import JobControl

STALE = "docs/schemas/ is out of date with clipper/job/request.py: run python -m scripts.gen_schemas"


def test_committed_schemas_are_up_to_date(tmp_path: Path):
    fresh = {p.name: p.read_text(encoding="utf-8") for p in write(tmp_path / "schemas")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert set(committed) == set(fresh), f"{STALE} (files differ: {sorted(set(committed) ^ set(fresh))})"
    for name, text in fresh.items():
        assert committed[name] == text, f"{STALE} ({name} differs)"


def test_generation_is_deterministic(tmp_path: Path):
    first = {p.name: p.read_bytes() for p in write(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in write(tmp_path / "b")}
    assert first == second
    assert all(text.endswith(b"}\n") for text in first.values())


@pytest.mark.parametrize(("name", "model"), [
    ("JobRequest", JobRequest), ("JobResult", JobResult), ("JobStatus", JobStatus),
    ("PauseRequest", PauseRequest), ("RetryRequest", RetryRequest),
])
def test_one_schema_per_model(name, model):
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert schema["title"] == model.__name__ and schema["type"] == "object"
    assert set(schema["properties"]) == set(model.model_fields)


def test_minimal_request_is_valid():
    schema = json.loads((SCHEMA_DIR / "JobRequest.schema.json").read_text(encoding="utf-8"))
    assert schema["required"] == ["url"]
    request = JobRequest.model_validate({"url": "https://example.com/a.mp3"})
    assert request.url == "https://example.com/a.mp3" and request.priority == 3
    # What the worker's converter decodes from a plain-JSON `--input`.
    assert JobRequest.model_validate_json('{"url": "https://example.com/a.mp3"}') == request


def test_set_priority_schema_matches_the_validator():
    schema = json.loads((SCHEMA_DIR / "set_priority.schema.json").read_text(encoding="utf-8"))
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 5)
    accepted = []
    for value in range(-1, 8):
        try:
            JobControl._check_priority(None, value)  # the update's validator, called directly
        except InvalidRequest:
            continue
        accepted.append(value)
    assert accepted == list(range(schema["minimum"], schema["maximum"] + 1))
