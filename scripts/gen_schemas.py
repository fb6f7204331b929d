"""Write the JSON Schemas of a job's public API into `docs/schemas/`: `python -m scripts.gen_schemas`.

One file per message that crosses the wire, generated from the pydantic models (the same models the
worker's `pydantic_data_converter` decodes and encodes), so clients in any language can validate what they
send and read. The output is deterministic (sorted keys, two-space indent, trailing newline):
`tests/unit/test_schemas.py` regenerates it and fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from clipper.job.batch import BatchRequest, BatchResult, BatchStatus
from clipper.job.request import JobRequest, JobResult, PauseRequest, RetryRequest
from clipper.job.status import PRIORITY_HIGHEST, PRIORITY_LOWEST
from clipper.job.status import JobStatus

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# file stem -> (model, mode, what it is). "validation" for what clients send (defaults make fields optional),
# "serialization" for what the workflow returns.
MODELS: dict[str, tuple[type[BaseModel], str, str]] = {
    "JobRequest": (JobRequest, "validation", "Input of workflow MediaJob."),
    "JobResult": (JobResult, "serialization", "Result of workflow MediaJob once it completed."),
    "JobStatus": (JobStatus, "serialization", "Result of the query `status`."),
    "PauseRequest": (PauseRequest, "validation", "Input of the signal `pause` (optional: no input = {\"now\": false})."),
    "RetryRequest": (RetryRequest, "validation", "Input of the signal `retry` (optional: no input = {\"options\": {}})."),
    "BatchRequest": (BatchRequest, "validation", "Input of workflow BatchJob (a playlist URL or a list of URLs)."),
    "BatchResult": (BatchResult, "serialization", "Result of workflow BatchJob once it completed."),
    "BatchStatus": (BatchStatus, "serialization", "Result of the BatchJob query `status`."),
}

# The update's argument is a bare int: no model to generate it from. The range is clipper/job/status.py's.
SET_PRIORITY: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "set_priority",
    "description": f"Input and result of the update `set_priority`: {PRIORITY_HIGHEST} (highest) to "
                   f"{PRIORITY_LOWEST} (lowest).",
    "type": "integer",
    "minimum": PRIORITY_HIGHEST,
    "maximum": PRIORITY_LOWEST,
}


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every public message of a job."""
    out: dict[str, dict[str, Any]] = {}
    for name, (model, mode, what) in MODELS.items():
        schema = model.model_json_schema(mode=mode)
        doc = schema.get("description")
        schema = {"$schema": DIALECT, **schema, "description": what + (f" {doc}" if doc else "")}
        out[f"{name}.schema.json"] = schema
    out["set_priority.schema.json"] = SET_PRIORITY
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help=f"output folder (default: {SCHEMA_DIR})")
    args = parser.parse_args()
    for path in write(args.out):
        print(path)


if __name__ == "__main__":
    main()
