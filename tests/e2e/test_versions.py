"""Artifact versions end to end: a real job on the bundled sample (real dev server, yt-dlp over HTTP, ffmpeg,
Whisper, the speaker encoder), then the two ways its outputs are replaced — naming a speaker re-renders the
transcript, subtitles, quotes and report; the quotes stage run again with other options — each keeping the
earlier outputs as a version that the CLI lists and shows. Retention is 2 here, so the third version drops the
first."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from activities.quotes import QuotesActivity
from activities.runtime import StageDeps
from clipper.job.messages import QuotesOutput, TextStageInput
from clipper.job.outputs import QuoteSet, SpeakerSet
from clipper.job.request import JobOptions
from clipper.job.status import JobState
from clipper.job.versions import list_versions
from clipper.store.local import ArtifactStore
from clipper_app.client import connect
from tests.helpers import run
from tests.helpers.jobs import assert_manifest_matches, steering
from tests.helpers.processes import cli
from tests.helpers.webserver import web_server

RENAMED = {"speakers.json", "transcript.txt", "quotes.md", "transcript.srt", "transcript.vtt", "report.md",
           "report.json"}


@workflow.defn(name="QuotesAgain", sandboxed=False)
class QuotesAgain:
    """Test-only: the real `quotes` activity run once more on a finished job, as a manual retry with other
    options would run it (through `run_stage`: receipt, version, work)."""

    @workflow.run
    async def run(self, request: TextStageInput) -> QuotesOutput:
        return await workflow.execute_activity_method(
            QuotesActivity.run, request, start_to_close_timeout=timedelta(seconds=120),
            retry_policy=RetryPolicy(maximum_attempts=1))


def test_named_speakers_and_a_rerun_keep_the_earlier_outputs_as_versions(settings, media_server):
    settings = settings.model_copy(update={"keep_versions": 2})
    store = ArtifactStore(settings.storage_dir)

    async def body():
        async with steering(settings) as clipper:
            job = (await clipper.submit(media_server.url("/episode.mp3"), JobOptions(max_quotes=3))).job_id
            result = await clipper.result(job)
            seen = {"result": result, "none": await cli(settings, "versions", job),
                    "report": store.path(job, "report.md").read_text(),
                    "before": {n: r.sha256 for n, r in store.read_manifest(job).artifacts.items()}}
            label = SpeakerSet.model_validate_json(store.path(job, "speakers.json").read_bytes()).speakers[0].label
            seen["named"] = await cli(settings, "speakers", job, f"{label}=Zelda Quarry")
            seen["kept"] = list_versions(store, job)
            seen["listed"] = await cli(settings, "versions", job, columns=250)
            seen["shown"] = await cli(settings, "show", job, "--version", "1", columns=250)
            seen["current"] = await cli(settings, "show", job, columns=250)
            # The Python client reads the re-rendered file (the job's result still names the one before).
            seen["speakers_now"] = await clipper.speakers(job)

            client, queue = await connect(settings), f"{settings.task_queue}-again"
            transcript = store.valid_ref(job, "transcript.json")
            async with Worker(client, task_queue=queue, workflows=[QuotesAgain],
                              activities=[QuotesActivity(StageDeps.from_settings(settings)).run]):
                for cap in (2, 1):
                    seen[f"quotes{cap}"] = await client.execute_workflow(
                        QuotesAgain.run, TextStageInput(job_id=job, transcript=transcript,
                                                        options=JobOptions(max_quotes=cap)),
                        id=f"again-{uuid.uuid4().hex[:8]}", task_queue=queue)
            seen["json"] = await cli(settings, "versions", job, "--json")
            with web_server(settings) as base:
                async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                    seen["api"] = (await http.get(f"/api/jobs/{job}/versions")).json()
                    seen["api_unknown"] = (await http.get("/api/jobs/clip-0000000000000000/versions")).status_code
            seen["pruned"] = await cli(settings, "show", job, "--version", "1")
            seen["no_report"] = await cli(settings, "show", job, "--version", "2")
            return job, seen

    job, seen = run(body())
    assert seen["result"].state == JobState.done
    assert seen["none"].code == 0 and "no versions kept" in seen["none"].out  # one run of each stage: none

    # Naming re-rendered the outputs; version 1 holds them as they were, byte for byte.
    assert seen["named"].code == 0, seen["named"].err
    assert "Zelda Quarry" in store.path(job, "report.md").read_text()
    [first] = seen["kept"]
    assert (first.number, first.stage, first.reason) == (1, "names", "speaker names")
    assert first.options["max_quotes"] == 3  # the options the job ran with
    kept = {first.original(r): r.sha256 for r in first.artifacts}
    # The audiograms get the name as their speaker line (one voice had none): drawn again, the old ones kept.
    videos = {n for n in seen["before"] if n.startswith("audiograms/")} | {"audiograms.json"}
    assert len(videos) > 1 and set(kept) == RENAMED | videos and all(kept[n] == seen["before"][n] for n in kept)
    listed = seen["listed"]
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if "speaker names" in line)
    assert "names" in row and "max_quotes=3" in row and "report.md" in row, listed.out
    assert seen["shown"].code == 0, seen["shown"].err
    assert "Zelda Quarry" not in seen["shown"].out and "Zelda Quarry" in seen["current"].out
    assert "Zelda Quarry" in seen["speakers_now"].names().values()
    first_line = seen["report"].splitlines()[0].lstrip("# ").strip()
    assert first_line and first_line in seen["shown"].out

    # The quotes stage run again with other options: the run before is kept with the options it ran with.
    assert seen["quotes2"].count <= 2 and seen["quotes1"].count <= 1
    versions = json.loads(seen["json"].out)
    assert [(v["number"], v["stage"], v["reason"]) for v in versions] == [(2, "quotes", "rerun"),
                                                                          (3, "quotes", "rerun")]
    assert [v["options"]["max_quotes"] for v in versions] == [3, 2]
    assert seen["api"] == versions and seen["api_unknown"] == 404  # GET /api/jobs/{id}/versions: the same list
    # Only the files the quotes stage still owns: quotes.md was rendered again by the naming.
    assert [a["name"] for a in versions[0]["artifacts"]] == ["versions/2/quotes.json"]
    assert versions[0]["artifacts"][0]["sha256"] == seen["before"]["quotes.json"]
    older = QuoteSet.model_validate_json(store.path(job, "versions/3/quotes.json").read_bytes())
    assert len(older.quotes) == seen["quotes2"].count  # version 3 = what the max_quotes=2 run wrote

    # Retention 2: the third version dropped the first, from the manifest and the folder.
    assert seen["pruned"].one_line_error() == (
        f"error VersionNotFound: job {job} has no version 1; its versions: 2, 3 (clipper versions JOB lists them)")
    assert not store.path(job, "versions/1").exists()
    assert seen["no_report"].one_line_error() == (
        f"error VersionNotFound: version 2 of {job} (stage quotes) has no report.md; no version of this job has "
        "one (clipper versions JOB lists them)")
    assert_manifest_matches(store, job)
