"""The state a person reads (clipper/job/status.py `shown_state`) and the pages built from the rules' one home:
the state filter, the priority selects and the script's `data-rules` come from the same names, no copies."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from clipper.config import Settings
from clipper.job.status import (
    CONTROLS, LISTED_AS, PRIORITIES, PRIORITY_DEFAULT, PRIORITY_HIGHEST, PRIORITY_LOWEST, SHOWN_STATES, WAITING,
    WAITING_FOR_RETRY, JobState, JobStatus, shown_state, state_rules,
)
from clipper.ops.stats import WAITING as STATS_WAITING
from clipper_app.cli.render import COMMANDS, control_hints
from clipper_app.web.app import create_app

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def status(state: JobState, **since: datetime) -> JobStatus:
    return JobStatus(job_id="clip-1", url="https://example.com/a.mp3", state=state, **since)


@pytest.mark.parametrize(("job", "shown"), [
    (status(JobState.queued), "queued"),
    (status(JobState.running), "running"),
    (status(JobState.done), "done"),
    (status(JobState.cancelled), "cancelled"),
    (status(JobState.failed), "failed"),  # failed and closed: no decision left to wait for
    (status(JobState.failed, waiting_since=NOW), WAITING),  # a stage gave up, the job waits for retry/abandon
    (status(JobState.paused, paused_since=NOW), "paused"),
    (status(JobState.running, paused_since=NOW), "paused"),  # paused at the next boundary: already says so
    (status(JobState.paused, paused_since=NOW, waiting_since=NOW), WAITING),  # the decision it waits for first
])
def test_shown_state(job, shown):
    assert shown_state(job) == shown
    assert shown_state(json.loads(job.model_dump_json())) == shown  # the REST API's JSON reads the same
    assert shown in SHOWN_STATES


def test_the_shown_states_are_the_job_states_and_waiting():
    assert set(SHOWN_STATES) == {s.value for s in JobState} | {WAITING}
    assert LISTED_AS == {WAITING: JobState.failed.value}  # a waiting job is still `failed` to the server
    assert STATS_WAITING == WAITING_FOR_RETRY == "waiting_for_retry"  # statistics' and notifications' name


def test_the_rules_for_the_pages_are_plain_json_of_the_same_names():
    rules = json.loads(json.dumps(state_rules()))
    assert rules["shown"] == list(SHOWN_STATES)
    assert rules["shownBy"] == [["waiting_since", WAITING], ["paused_since", "paused"]]
    assert rules["listedAs"] == LISTED_AS and rules["initial"] == JobState.queued.value


class NoJobs:
    """Enough of a `ClipperClient` for the jobs page: an empty list."""

    async def list_jobs(self, **_: object) -> list:
        return []


def test_the_jobs_page_is_built_from_the_rules(tmp_path):
    async def factory(_: Settings) -> NoJobs:
        return NoJobs()

    app = create_app(Settings(storage_dir=tmp_path), clipper_client_factory=factory)
    with TestClient(app, base_url="http://127.0.0.1") as http:  # a host the server answers for
        page = http.get("/?state=waiting").text
    rules = json.loads(html.unescape(re.search(r"data-rules='([^']*)'", page).group(1)))
    assert rules["shown"] == list(SHOWN_STATES) and set(rules["reloadOn"]) == {"done", "failed", WAITING}
    options = re.findall(r'<option value="([a-z]+)"( selected)?>', page.split('id="state-filter"')[1])
    assert [o for o, _ in options] == list(SHOWN_STATES) and dict(options)[WAITING] == " selected"
    for form in ("submit-form", "batch-form"):
        select = page.split(f'id="{form}"')[1].split("</select>")[0]
        values = [int(v) for v in re.findall(r'<option value="(\d+)"', select)]
        assert values == list(PRIORITIES) == list(range(PRIORITY_HIGHEST, PRIORITY_LOWEST + 1))
        assert re.findall(r'<option value="(\d+)" selected', select) == [str(PRIORITY_DEFAULT)]
    assert f">{PRIORITY_HIGHEST} (highest)<" in page and f">{PRIORITY_LOWEST} (lowest)<" in page


def test_the_cli_offers_only_the_controls_that_apply():
    assert set(COMMANDS) == set(CONTROLS)  # every control the pages know has its command
    job = JobStatus(job_id="clip-1", url="https://example.com/a.mp3")
    job.state = JobState.done
    assert control_hints(job) == ["clipper delete clip-1"]
    job.state = JobState.running
    assert "clipper pause clip-1" in control_hints(job) and "clipper delete clip-1" not in control_hints(job)
    assert "clipper resume clip-1" not in control_hints(job)
    job.paused_since = datetime.now(UTC)
    assert "clipper resume clip-1" in control_hints(job) and "clipper pause clip-1" not in control_hints(job)
    job.waiting_since, job.state = datetime.now(UTC), JobState.failed
    assert {"clipper retry clip-1", "clipper abandon clip-1"} <= set(control_hints(job))
