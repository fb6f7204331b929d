"""MediaJob's `speakers` stage and speaker naming in seconds, with stand-in activities: where the stage runs,
what the speech-to-text writes (`asr.*`), and the update `name_speakers` — refused before the speakers are
known and for unknown labels (no history trace), carried into the report, rendered again after it."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from clipper.job.status import JobState
from tests.helpers import run
from tests.helpers.processes import temporal
from tests.helpers.standins import StandIns, harness, outcome, until
from workflows.media_job import MediaJob


def updates_accepted(events) -> int:
    return sum(1 for e in events if e.HasField("workflow_execution_update_accepted_event_attributes"))


def test_speakers_stage_labels_the_transcript_the_text_stages_read(settings):
    fakes = StandIns()
    result = run(_run(settings, fakes))
    assert result.state == JobState.done
    assert fakes.of("transcribe")[0].arg.name == "asr"  # speech to text no longer writes transcript.*
    speakers = fakes.of("speakers")[0].arg
    assert speakers.transcript.name == "transcript.json" and speakers.audio.name == "audio.wav"
    assert [s.name for s in result.status.stages][:3] == ["download", "transcribe", "speakers"]
    assert "speakers.json" in result.artifacts


async def _run(settings, fakes):
    async with harness(settings, fakes) as (clipper, job):
        return await outcome(clipper, job)


def test_name_speakers_before_during_and_after_the_report(settings):
    fakes = StandIns(held={"speakers", "report"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            handle = clipper.handle(job)
            await until(lambda: fakes.names()[-1:] == ["speakers"], what="the speakers stage")
            with pytest.raises(WorkflowUpdateFailedError) as early:
                await handle.execute_update(MediaJob.name_speakers, {"S1": "Diane"})
            assert "not known yet" in str(early.value.cause)
            fakes.held.discard("speakers")
            await until(lambda: fakes.names()[-1:] == ["report"], what="the report")
            # Known now: S1 and S2. A label the job doesn't have, and a name with markup, are refused.
            for bad in ({"S3": "Carl"}, {"S1": "<b>Diane</b>"}):
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update(MediaJob.name_speakers, bad)
            assert await handle.execute_update(MediaJob.name_speakers, {"S1": "Diane"}) == {"S1": "Diane"}
            fakes.held.discard("report")
            await until(lambda: "render_names" in fakes.names(), what="names rendered after the report")
            result = await outcome(clipper, job)
            events = [e async for e in handle.fetch_history_events()]
            return result, events

    result, events = run(body())
    assert result.state == JobState.done
    report = fakes.of("report")[0].arg
    assert report.names == {}  # named while the report ran: it was rendered again right after
    assert fakes.of("render_names")[0].arg.names == {"S1": "Diane"}
    assert updates_accepted(events) == 1  # refusals leave no trace


def test_names_given_before_the_report_reach_it(settings):
    fakes = StandIns(held={"quotes"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await until(lambda: fakes.names()[-1:] == ["quotes"], what="quotes")
            names = await clipper.handle(job).execute_update(MediaJob.name_speakers, {"S2": "Sheila", "S1": "Di"})
            assert names == {"S1": "Di", "S2": "Sheila"}
            assert await clipper.handle(job).execute_update(MediaJob.name_speakers, {"S1": ""}) == {"S2": "Sheila"}
            fakes.held.clear()
            return await outcome(clipper, job)

    result = run(body())
    assert result.state == JobState.done
    assert fakes.of("report")[0].arg.names == {"S2": "Sheila"}
    assert "render_names" not in fakes.names()


def test_name_speakers_from_the_temporal_cli(settings):
    """An operator names speakers with the stock `temporal` CLI (plain JSON); a bad label is refused there too."""
    fakes = StandIns(held={"quotes"})

    async def body():
        async with harness(settings, fakes) as (clipper, job):
            await until(lambda: fakes.names()[-1:] == ["quotes"], what="quotes")
            ok = await temporal(settings, "workflow", "update", "execute", "--workflow-id", job,
                                "--name", "name_speakers", "--input", '{"S1": "Diane", "S2": "Sheila"}')
            bad = await temporal(settings, "workflow", "update", "execute", "--workflow-id", job,
                                 "--name", "name_speakers", "--input", '{"S5": "Carl"}', check=False)
            fakes.held.clear()
            return ok, bad, await outcome(clipper, job)

    ok, bad, result = run(body())
    assert "Diane" in ok.stdout and "Sheila" in ok.stdout
    assert bad.returncode != 0 and "no speaker S5" in (bad.stderr + bad.stdout)
    assert result.state == JobState.done
    assert fakes.of("report")[0].arg.names == {"S1": "Diane", "S2": "Sheila"}
