"""The CLI as a user runs it: `python starter.py …` in a subprocess against the dev server, with an in-process
worker. Every error must be one line on stderr with a non-zero exit code, never a traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import ActivityType, Payloads
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import (
    ActivityTaskCanceledEventAttributes, ActivityTaskCancelRequestedEventAttributes,
    ActivityTaskScheduledEventAttributes, ActivityTaskStartedEventAttributes, HistoryEvent,
    TimerFiredEventAttributes, TimerStartedEventAttributes,
)
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from clipper.job.stages import STAGES
from clipper.job.stages import ACTIVITY_STAGES
from clipper.job.status import JobState
from clipper_app.client import ClipperClient, connect
from clipper_app.client.history import AuditEntry, audit_log
from clipper_app.workers.pools import build_worker
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import wait_for_state
from tests.helpers.processes import Result, cli

REPO = Path(__file__).resolve().parents[2]
HISTORIES = Path(__file__).parent.parent / "histories"






@pytest.fixture
def media_server():
    audio = (SAMPLE.read_bytes(), "audio/mpeg")
    with serve({"/episode.mp3": audio, "/other.mp3": audio}) as server:
        yield server


async def until_listed(settings, job_id: str, *args: str, timeout: float = 15) -> Result:
    """Visibility is eventually consistent: poll until the list shows the job."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await cli(settings, "list", *args, columns=200)
        if result.code != 0 or job_id in result.out or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.5)


def test_cli_submit_control_list_history(settings, media_server):
    async def body():
        client = await connect(settings)
        clipper = ClipperClient(client, settings)
        async with build_worker(client, settings):
            submitted = await cli(settings, "submit", media_server.url("/episode.mp3"))
            assert submitted.code == 0, submitted.err
            job = submitted.out.strip()
            assert job.startswith("clip-") and " " not in job
            await clipper.pause(job)  # through the client; takes effect at the next stage boundary
            other = (await clipper.submit(media_server.url("/other.mp3"))).job_id
            await clipper.pause(other)
            await wait_for_state(clipper, job, JobState.paused)
            await wait_for_state(clipper, other, JobState.paused)

            status, refused, bad_arg, bogus, missing, missing_history = await asyncio.gather(
                cli(settings, "status", job, columns=200), cli(settings, "priority", job, "9"),
                cli(settings, "priority", job, "high"), cli(settings, "retry", job, "--set", "bogus=1"),
                cli(settings, "status", "nope"), cli(settings, "history", "nope"))
            assert status.code == 0 and "paused" in status.out, status
            message = refused.one_line_error()
            assert refused.code == 2 and "1" in message and "5" in message and "9" in message, message
            assert bad_arg.code == 2 and "invalid int" in bad_arg.one_line_error()
            assert "bogus" in bogus.one_line_error() and "asr_engine" in bogus.err
            assert "JobNotFound" in missing.one_line_error()
            assert "JobNotFound" in missing_history.one_line_error()

            async def steer_job() -> None:
                changed = await cli(settings, "priority", job, "1")
                assert changed.code == 0 and "priority is now 1" in changed.out, changed
                as_json = await cli(settings, "status", job, "--json")
                assert json.loads(as_json.out)["priority"] == 1
                resumed = await cli(settings, "resume", job)
                assert resumed.code == 0, resumed
                await wait_for_state(clipper, job, JobState.done, timeout=60)

            async def cancel_other() -> None:
                # retry/abandon are refused while a job is not waiting after a failure; cancel ends it.
                abandon = await cli(settings, "abandon", other)
                assert abandon.code == 2 and "not waiting" in abandon.one_line_error()
                cancel = await cli(settings, "cancel", other)
                assert cancel.code == 0, cancel
                await wait_for_state(clipper, other, JobState.cancelled)
                late = await cli(settings, "pause", other)
                assert "JobClosed" in late.one_line_error() and "canceled" in late.err

            await asyncio.gather(steer_job(), cancel_other())
            done, listed, history, table = await asyncio.gather(
                until_listed(settings, job, "--state", "done"),
                until_listed(settings, other, "--json", "--limit", "1000"),
                cli(settings, "history", job, "--json"),
                cli(settings, "history", job, columns=200),
            )
            other_history = await clipper.history(other)

        assert done.code == 0 and job in done.out and other not in done.out, done
        jobs = {j["job_id"]: j for j in json.loads(listed.out)}
        assert jobs[job]["state"] == "done" and jobs[job]["priority"] == 1 and jobs[job]["progress"] == 100
        assert jobs[job]["source"] == "127.0.0.1" and jobs[job]["status"] == "completed"
        assert jobs[other]["state"] == "cancelled"

        assert history.code == 0, history.err
        entries = [AuditEntry.model_validate(e) for e in json.loads(history.out)]
        assert entries[0].event == "job started" and "priority=3" in entries[0].detail
        assert entries[-1].event == "job completed"
        assert [e.stage for e in entries if e.event == "stage completed"] == list(STAGES)
        assert [e.time for e in entries] == sorted(e.time for e in entries)

        def position(event: str, detail: str) -> int:
            return next(i for i, e in enumerate(entries) if e.event == event and e.detail.startswith(detail))

        assert position("signal", "pause") < position("update completed", "set_priority") < position("signal", "resume")
        signals = [e.detail for e in entries if e.event == "signal"]
        assert [s.split("(")[0] for s in signals] == ["pause", "resume"], signals
        assert '"now": false' in signals[0]
        updates = [(e.event, e.detail) for e in entries if e.event.startswith("update")]
        assert [u[0] for u in updates] == ["update accepted", "update completed"]
        assert "set_priority(1)" in updates[0][1] and "→ 1" in updates[1][1]  # the refused 9 is not in history
        # Stages scheduled after the update carry the new priority.
        scheduled = {e.stage: e.detail for e in entries if e.event == "stage scheduled"}
        assert scheduled["report"] == "priority=1"
        assert "upsert" not in history.out.lower()
        assert table.code == 0 and "pause(" in table.out and "resume()" in table.out and "signal" in table.out

        events = [e.event for e in other_history]
        assert "cancel requested" in events and events[-1] == "job cancelled", events

    run(body())


def load(name: str) -> list[AuditEntry]:
    return audit_log(WorkflowHistory.from_json(name, (HISTORIES / name).read_text()))


def test_submit_wait_of_a_failing_job_ends_with_one_error_line(settings, media_server):
    """The CLI's contract: the job id and progress on stdout, the failure as one stderr line naming the error's
    type, the stage and its message, and a non-zero exit; a bare word is refused at submit, before any job."""
    media_server.set_status("/episode.mp3", 404)

    async def body() -> tuple[Result, Result]:
        client = await connect(settings)
        async with build_worker(client, settings):
            failed = await cli(settings, "submit", media_server.url("/episode.mp3"), "--wait", timeout=90)
            refused = await cli(settings, "submit", "not-a-url")
        return failed, refused

    failed, refused = run(body())
    line = failed.one_line_error()
    assert failed.code == 2 and line.startswith("error MediaNotFound: clip-") and " failed in download: " in line
    assert failed.out.splitlines()[0].startswith("clip-") and "Traceback" not in failed.out
    assert line.count("MediaNotFound") == 1, line  # the type said once, not "X: X: ..."
    assert refused.code == 2 and refused.one_line_error().startswith("error UnsupportedUrl:") and not refused.out


def test_audit_log_of_a_failed_job():
    entries = load("1.0-media-failed.json")
    # The failure notification (an activity of the job, not a stage) runs between the stage's failure and the end.
    assert [e.event for e in entries if e.stage != "notify"] == ["job started", "stage scheduled", "stage started",
                                                                 "stage failed", "job failed"]
    assert "url=https://10.0.0.1/episode.mp3" in entries[0].detail
    failed = entries[3]
    assert failed.stage == "download" and failed.attempt == 1
    assert failed.detail.startswith("ForbiddenAddress: https://10.0.0.1/episode.mp3 points at the non-public address")
    assert "ForbiddenAddress" in entries[-1].detail


def test_audit_log_of_a_finished_job_lists_stages_in_order():
    entries = load("1.2-audiograms-chunked-done.json")  # recorded before the index stage was added
    ran = [s for s in STAGES if s != "index"]
    completed = [ACTIVITY_STAGES[e.stage].name for e in entries if e.event == "stage completed"]
    assert list(dict.fromkeys(completed)) == ran  # transcribe: plan, three chunks, merge
    assert [e.stage for e in entries if e.event == "stage completed" and e.stage.startswith("transcribe_chunk")] == \
        ["transcribe_chunk"] * 3
    for stage in ran:  # scheduled → started → completed, one attempt each
        if stage == "transcribe":
            continue
        assert [e.event for e in entries if e.stage == stage] == ["stage scheduled", "stage started",
                                                                  "stage completed"]
    completed = next(e for e in entries if e.stage == "download" and e.event == "stage completed")
    assert "audio.wav" in completed.detail and completed.attempt == 1
    assert entries[-1].event == "job completed" and "state=done" in entries[-1].detail
    assert not any("upsert" in e.event for e in entries)


def test_audit_log_shows_retries_cancellations_and_timers():
    """Built by hand: a transcribe whose third attempt (after two failures) was cancelled by `pause --now`,
    and a manual-retry wait's timer."""
    converter = pydantic_data_converter.payload_converter
    error = Failure(message="model busy", application_failure_info=ApplicationFailureInfo(type="AsrUnavailable"))

    def event(event_id: int, second: int, **attrs) -> HistoryEvent:
        e = HistoryEvent(event_id=event_id, **attrs)
        e.event_time.FromSeconds(1_800_000_000 + second)
        return e

    timer_wait = TimerStartedEventAttributes(timer_id="7")
    timer_wait.start_to_fire_timeout.FromSeconds(7 * 24 * 3600)
    events = [
        event(5, 0, activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
            activity_id="2", activity_type=ActivityType(name="transcribe"),
            input=Payloads(payloads=converter.to_payloads([{"job_id": "j"}])))),
        # The started event is written when the attempt ends: after the cancel request, with its own earlier time.
        event(7, 10, activity_task_cancel_requested_event_attributes=ActivityTaskCancelRequestedEventAttributes(
            scheduled_event_id=5)),
        event(6, 9, activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
            scheduled_event_id=5, attempt=3, last_failure=error, identity="w1")),
        event(8, 11, activity_task_canceled_event_attributes=ActivityTaskCanceledEventAttributes(
            scheduled_event_id=5, started_event_id=6)),
        event(9, 12, timer_started_event_attributes=timer_wait),
        event(10, 13, timer_fired_event_attributes=TimerFiredEventAttributes(timer_id="7", started_event_id=9)),
    ]
    entries = audit_log(WorkflowHistory("j", events), converter)
    assert [(e.event, e.stage, e.attempt) for e in entries] == [
        ("stage scheduled", "transcribe", None), ("retry", "transcribe", 3), ("stage started", "transcribe", 3),
        ("stage cancel requested", "transcribe", None), ("stage cancelled", "transcribe", 3),
        ("timer started", None, None), ("timer fired", None, None),
    ]
    assert entries[1].detail == "attempt 2 failed: AsrUnavailable: model busy"
    assert "7 days" in entries[5].detail


@pytest.mark.parametrize("command", [["list"], ["web", "--port", "0"]])
def test_no_temporal_server_is_one_typed_line(command, tmp_path):
    """A new user without a running server reads what to do, not a traceback (`clipper web` included)."""
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1", "CLIPPER_STORAGE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "starter.py"), *command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "error TemporalUnavailable: no Temporal server answers at 127.0.0.1:1 (namespace default): start one "
        "(`make server`, or `temporal server start-dev`) or set TEMPORAL_ADDRESS"], done.stderr
