"""The job's public API as docs/api.md documents it, driven through the real `temporal` CLI with plain JSON.

No clipper client code on the caller's side: only the binary any operator has. The worker is in-process.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from clipper.config import Settings
from clipper_app.client import ClipperClient, connect
from clipper_app.workers.pools import build_worker
from tests.helpers import SAMPLE, run
from tests.helpers.httpserver import serve
from tests.helpers.processes import temporal


@pytest.fixture
def media_server():
    with serve({"/episode.mp3": (SAMPLE.read_bytes(), "audio/mpeg")}) as server:
        yield server


async def query_status(settings: Settings, job_id: str) -> dict:
    proc = await temporal(settings, "workflow", "query", "--workflow-id", job_id, "--type", "status", "-o", "json")
    result = json.loads(proc.stdout)["queryResult"]
    return result[0] if isinstance(result, list) else result


async def listed(settings: Settings, query: str) -> list[str]:
    proc = await temporal(settings, "workflow", "list", "--query", query, "-o", "json")
    text = proc.stdout.strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    return [row["execution"]["workflowId"] for row in rows]


def test_job_through_the_temporal_cli(settings, media_server):
    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    policies = {stage: policy.model_dump() for stage, policy in settings.stage_policies().items()}
    request = json.dumps({"url": media_server.url("/episode.mp3"), "policies": policies})

    async def body() -> dict:
        client = await connect(settings)
        async with build_worker(client, settings):
            await temporal(settings, "workflow", "start", "--type", "MediaJob", "--task-queue", settings.task_queue,
                           "--workflow-id", job_id, "--input", request)

            # pause, no input: the signal's argument is optional.
            await temporal(settings, "workflow", "signal", "--workflow-id", job_id, "--name", "pause")
            status = await query_status(settings, job_id)
            assert status["state"] == "paused" and status["paused_since"], status
            assert status["job_id"] == job_id and status["priority"] == 3

            # set_priority: the update returns the new priority; the validator refuses 9 without changing it.
            proc = await temporal(settings, "workflow", "update", "execute", "--workflow-id", job_id,
                                  "--name", "set_priority", "--input", "1", "-o", "json")
            assert json.loads(proc.stdout)["result"] == 1, proc.stdout
            assert (await query_status(settings, job_id))["priority"] == 1
            bad = await temporal(settings, "workflow", "update", "execute", "--workflow-id", job_id,
                                 "--name", "set_priority", "--input", "9", check=False)
            assert bad.returncode != 0
            assert "1 (highest) to 5 (lowest)" in bad.stderr + bad.stdout, bad.stderr + bad.stdout
            assert (await query_status(settings, job_id))["priority"] == 1

            await temporal(settings, "workflow", "signal", "--workflow-id", job_id, "--name", "resume")
            assert (await query_status(settings, job_id))["state"] in ("running", "done")

            proc = await temporal(settings, "workflow", "result", "--workflow-id", job_id, "-o", "json")
            result = json.loads(proc.stdout)
            desc = json.loads((await temporal(settings, "workflow", "describe", "--workflow-id", job_id,
                                              "-o", "json")).stdout)
            final = await query_status(settings, job_id)  # a closed job is still queryable (replayed)
            # Naming its speakers starts a helper workflow, marked so a list of jobs can leave it out.
            await ClipperClient(client, settings).name_speakers(job_id, {"S1": "Narrator"})

        # Visibility is eventually consistent: the search attributes show up in lists a little later.
        deadline = time.monotonic() + 10
        while True:
            done = await listed(settings, 'ClipperState="done"')
            if job_id in done or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        mine = await listed(settings, f'WorkflowId="{job_id}" AND ClipperState="done" AND ClipperPriority=1')
        title = result["result"]["status"]["title"]
        titled = await listed(settings, f'ClipperTitle="{title}" AND WorkflowId STARTS_WITH "{job_id}"')
        jobs_only = await listed(settings, f'WorkflowId STARTS_WITH "{job_id}" AND ClipperKind IS NULL')
        helpers = await listed(settings, f'WorkflowId STARTS_WITH "{job_id}" AND ClipperKind="helper"')
        return {"result": result, "desc": desc, "final": final, "done": done, "mine": mine, "titled": titled,
                "jobs_only": jobs_only, "helpers": helpers}

    seen = run(body())
    result = seen["result"]
    assert result["status"] == "COMPLETED", result
    job = result["result"]
    assert job["job_id"] == job_id and job["state"] == "done"
    assert {"transcript.json", "quotes.json", "report.md"} <= set(job["artifacts"])
    assert seen["desc"]["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert seen["desc"]["workflowExecutionInfo"]["type"]["name"] == "MediaJob"
    assert seen["final"]["state"] == "done" and seen["final"]["priority"] == 1
    assert job_id in seen["done"], f"{job_id} never listed under ClipperState=\"done\""
    assert seen["mine"] == [job_id]
    # What the Web UI's list can show as columns and filter on (docs/monitoring.md): the title, and helpers marked.
    assert job["status"]["title"] and seen["titled"] == [job_id]
    assert seen["jobs_only"] == [job_id]
    assert len(seen["helpers"]) == 1 and seen["helpers"][0].startswith(f"{job_id}/names-"), seen["helpers"]
