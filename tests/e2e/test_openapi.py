"""The OpenAPI document tells the truth: Schemathesis over every route of the REST API, against the real app.

The app runs as `clipper web` does (tests/helpers/liveapi.py: uvicorn on loopback, a worker process on a dev
server), with jobs for the generated requests to point at: `job_id` is most of the time one that finished (its
files in the store), one waiting for a retry or an unknown one, `batch_id` a real batch or an unknown one, `name`
an artifact the done job has or not. Each route runs the examples, coverage (every constraint's edges, both sides)
and fuzzing phases, then the stateful phase chains calls (a job id from one answer into the next request, by the
links Schemathesis infers from the document). Every check runs, from `not_a_server_error`,
`status_code_conformance` and `response_schema_conformance` to the ones that hold the document to its word
(`positive_data_acceptance`, `negative_data_rejection`, `ignored_auth`, `unsupported_method`, ...). A fixed seed and
derandomized generation make each run the same requests.

Narrowed, each for its reason (nothing else is):
- `DELETE /api/jobs/{job_id}` is pointed at another waiting job (refused while it runs) when it would be the done
  one: a delete of the done job would leave every route after it nothing to read.
- A generated `callback_url` that fits the document is sent as a loopback receiver's URL instead: the submit check
  resolves the callback's host (a test machine has no DNS) and refuses private addresses; what "a host that resolves
  to a public address" means no schema can say.
- Speaker names: a name's letters may be any alphabet's (Python's \\w), which no pattern says alike to a JSON
  Schema validator and to Python, so the document says it in words; a generated name the rule refuses is a 422
  that `positive_data_acceptance` would count against the document, and only that check is off there. The same
  for a search's `q` and `speaker`: a word is letters or digits of any alphabet, and one without is a 422.
- A negative request larger than the body limit is refused 413 before it is read: a refusal like any other.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.run import PhaseName
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from clipper_app.client.delete import DELETE_WAIT_S
from clipper_app.web.openapi import URL_PATTERN
from tests.helpers.liveapi import LiveApi, live_api

pytestmark = pytest.mark.slow

EXAMPLES = 8  # fuzzed requests per route and mode, besides the coverage phase's edge cases
URL = re.compile(URL_PATTERN)
RECEIVER = "http://127.0.0.1:9/hook"  # allowed by CLIPPER_ALLOWED_HOSTS (tests/helpers/liveapi.py)


@pytest.fixture(scope="module")
def api(own_temporal_server, tmp_path_factory) -> LiveApi:
    with live_api(own_temporal_server.address, tmp_path_factory.mktemp("api")) as running:
        yield running


def config(api: LiveApi) -> SchemathesisConfig:
    unknown_job, unknown_batch = "clip-0000000000000000", "batch-0000000000000000"
    return SchemathesisConfig.from_dict({
        "seed": 20261207,
        "generation": {"deterministic": True, "max-examples": EXAMPLES},
        "checks": {"enabled": True, "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]}},
        "phases": {"stateful": {"max-steps": 8}},
        "dictionaries": {
            "jobs": {"values": [api.done, api.waiting, unknown_job]},
            "batches": {"values": [api.batch, unknown_batch]},
            "names": {"values": ["report.md", "audio.wav", "transcript.vtt", "items.json", "clips/none.mp3"]},
        },
        "parameters": {"path.job_id": {"dictionary": "jobs", "probability": 0.75},
                       "path.batch_id": {"dictionary": "batches", "probability": 0.75},
                       "path.name": {"dictionary": "names", "probability": 0.75}},
        "request-timeout": DELETE_WAIT_S + 15,  # a delete waits for the server to forget the job's history
        "operations": [
            {"include-name": "POST /api/jobs/{job_id}/speakers",
             "checks": {"positive_data_acceptance": {"enabled": False}}},
            {"include-name": "GET /api/search", "checks": {"positive_data_acceptance": {"enabled": False}}},
        ],
    })


def test_every_route_does_what_the_document_says(api):
    schema = schemathesis.openapi.from_url(f"{api.base}/openapi.json", config=config(api))

    def narrowed(context, case, kwargs):
        """The two narrowings of the module's doc, made on each request as it leaves, in every phase."""
        if route(context) == ("POST", "/api/jobs") and isinstance(case.body, dict):
            callback = case.body.get("callback_url")
            if isinstance(callback, str) and URL.match(callback):
                case.body["callback_url"] = RECEIVER
        path = case.path_parameters or {}
        if route(context) == ("DELETE", "/api/jobs/{job_id}") and path.get("job_id") == api.done:
            path["job_id"] = api.kept

    schemathesis.hook("before_call")(narrowed)  # a hook Schemathesis takes only globally: removed right after
    try:
        failures, tested = run(schema)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(narrowed)
    documented = {f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items() for method in item}
    assert tested == documented, f"routes not tested: {sorted(documented - tested)}"
    assert not failures, "the document and the API disagree:\n" + "\n".join(failures)


def route(context) -> tuple[str, str] | None:
    operation = context.operation
    return None if operation is None else (operation.method.upper(), operation.path)


def run(schema) -> tuple[list[str], set[str]]:
    """One run, as `schemathesis run` does it: every phase, every check. Returns each failure (route, check, what
    it says, the request as curl) and the routes the per-route phases tested."""
    failures, tested = set(), set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label and event.status is not Status.SKIP and event.phase is not PhaseName.STATEFUL_TESTING:
                tested.add(event.label)
            failures |= {f"{event.label}: {check.name}: {check.failure_info.failure.title}\n"
                         f"  {check.failure_info.failure.message.strip()[:400]}\n  {check.failure_info.code_sample}"
                         for checks in event.recorder.checks.values() for check in checks
                         if check.status is Status.FAILURE and check.failure_info is not None}
        elif isinstance(event, events.NonFatalError):
            failures.add(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            failures.add(f"error: {event.exception!r}")
    return sorted(failures), tested
