"""`pause --now` and `cancel` reach the running stage at once, with the real stages.

A cancellation reaches an activity only in the answer to one of its heartbeats, and the SDK used to hold
heartbeats back for 0.8 × the heartbeat timeout: 24 s for transcription, 48 s for a download. So these tests run
with the production heartbeat timeouts (not the fast test policies): a chunk of speech decodes in far less than
24 s, and the media server below gives up on its own after `SERVER_GIVES_UP_S`. What they check is who stops
first: the chunks that were decoding end cancelled (not finished), and the client hangs up the download (the
server does not). How fast is bench/control_latency.py's question (docs/performance.md), not a test's.
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import PendingActivityState

from clipper.job.stages import DEFAULT_POLICIES
from clipper.job.status import JobState, StageState
from clipper.store.files import JsonlLog
from clipper.store.local import ArtifactStore
from clipper_app.client import JobCancelled
from tests.helpers import FAST_POLICIES, run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import steering, until
from tests.helpers.real import long_real_speech

PARTIALS = "transcript-*-chunk-*.partial.jsonl"  # a chunk's saved segments (activities/transcribe_chunks.py)
SERVER_GIVES_UP_S = 30.0  # the trickling media server hangs up by itself after this: the client must be first


def production_heartbeats(settings, **changes):
    policies = {stage: policy.model_copy(update={"heartbeat_timeout_s": DEFAULT_POLICIES[stage].heartbeat_timeout_s})
                for stage, policy in FAST_POLICIES.items()}
    return settings.model_copy(update={"policies": policies, **changes})


async def running(clipper, job: str, activity_type: str) -> list:
    desc = await clipper.describe(job)
    return [p for p in desc.raw_description.pending_activities if p.activity_type.name == activity_type
            and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]


async def closed_activities(clipper, job: str) -> dict[int, str]:
    """Scheduled event id → how the activity ended (canceled, completed, failed)."""
    out = {}
    async for e in clipper.handle(job).fetch_history_events():
        for kind in ("canceled", "completed", "failed", "timed_out"):
            attrs = f"activity_task_{kind}_event_attributes"
            if e.HasField(attrs):
                out[getattr(e, attrs).scheduled_event_id] = kind
    return out


async def scheduled_ids(clipper, job: str, activity_type: str) -> list[int]:
    return [e.event_id async for e in clipper.handle(job).fetch_history_events()
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type]


@pytest.fixture(scope="module")
def real_speech(tmp_path_factory):
    """Ten minutes of real speech: four chunks of 150 s, each seconds of decoding."""
    path, _ = long_real_speech(tmp_path_factory.mktemp("real") / "ten.mp3", 10)
    return path


def test_pause_now_stops_a_running_chunked_transcription(settings, real_speech):
    """The chunks decoding when `pause --now` arrives are cancelled mid-chunk (their saved segments stay), none
    starts while paused, and after `resume` the job finishes.

    The pause is sent once a chunk has saved segments and has more of its windows to go: windows decoded one at
    a time (batch 1), each saved as it ends, so a chunk of 150 s is five steps and the pause lands between two
    of them (decoded four at a time, a chunk saves nothing until 120 s of it are done, and a pause in that
    while left no saved segments to see). The stages after transcription are off (speakers, audiograms): what
    follows the resume is not this test's question, only that the job finishes."""
    settings = production_heartbeats(settings, asr_chunk_s=150.0, asr_batch_size=1, speakers_engine="off",
                                     audiograms_enabled=False)
    store = ArtifactStore(settings.storage_dir)

    def saved(job: str) -> bool:
        return any(JsonlLog(p).read() for p in (store.job_dir(job) / ".tmp").glob(PARTIALS))

    async def body(url):
        async with steering(settings) as clipper:
            job = (await clipper.submit(url)).job_id
            await until(lambda: running(clipper, job, "transcribe_chunk"), timeout=300, what="a chunk decoding")
            await until(lambda: saved(job), timeout=120, what="a chunk's first saved segments")
            await clipper.pause(job, now=True)
            ids = await scheduled_ids(clipper, job, "transcribe_chunk")
            ended = await until(lambda: _all_closed(clipper, job, ids), timeout=60, what="the chunks to stop")
            status = await clipper.status(job)
            assert await scheduled_ids(clipper, job, "transcribe_chunk") == ids  # none started while paused
            partials = list((store.job_dir(job) / ".tmp").glob(PARTIALS))
            await clipper.resume(job)
            return status, [ended.get(i) for i in ids], partials, await clipper.result(job)

    with serve({"/ten.mp3": (real_speech.read_bytes(), "audio/mpeg")}) as server:
        status, ends, partials, result = run(body(server.url("/ten.mp3")))
    assert status.state == JobState.paused and status.stage("transcribe").state != StageState.done
    assert "canceled" in ends, ends  # stopped mid-chunk, not left to finish its chunk
    assert partials, "a cancelled chunk keeps the segments it saved"
    assert result.state == JobState.done


async def _all_closed(clipper, job: str, ids: list[int]) -> dict[int, str] | None:
    ended = await closed_activities(clipper, job)
    return ended if all(i in ended for i in ids) else None


def test_cancel_stops_a_download_and_closes_its_connection(settings, media_server):
    """A download in progress (the server sends a byte a second) is cancelled: the client hangs up the connection
    before the server would give up, the job ends cancelled and leaves no partial file."""
    settings = production_heartbeats(settings)
    store = ArtifactStore(settings.storage_dir)
    media_server.trickle("/slow.mp3", head=64 * 1024, every_s=1.0, for_s=SERVER_GIVES_UP_S)
    media_server.files["/slow.mp3"] = media_server.files["/episode.mp3"]

    async def body():
        async with steering(settings) as clipper:
            job = (await clipper.submit(media_server.url("/slow.mp3"))).job_id
            await until(lambda: _downloading(clipper, job), timeout=60, what="the download under way")
            in_progress = await until(lambda: _trickling(media_server), timeout=60, what="the media trickling")
            await clipper.cancel(job)
            # Who ends the connection: the client, cancelled; or else the server, giving up after SERVER_GIVES_UP_S,
            # and the client never hangs up this request (it sees a short body instead).
            await until(lambda: in_progress.hung_up.is_set(), timeout=SERVER_GIVES_UP_S + 10,
                        what="the client to hang up the download's connection")
            with pytest.raises(JobCancelled):
                await clipper.result(job)
            ids = await scheduled_ids(clipper, job, "download")
            ended = await closed_activities(clipper, job)
            return job, in_progress, [ended.get(i) for i in ids]

    job, in_progress, ends = run(body())
    assert ends == ["canceled"]
    assert in_progress.path == "/slow.mp3"
    scratch = store.job_dir(job) / ".tmp"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())


def _trickling(server):
    """The request the download is reading now: past the trickle's head, and not hung up."""
    return next((r for r in reversed(server.requests) if r.path == "/slow.mp3" and r.body_sent > 64 * 1024
                 and not r.hung_up.is_set()), None)


async def _downloading(clipper, job: str) -> bool:
    acts = await running(clipper, job, "download")
    return bool(acts) and any(p.heartbeat_details.payloads for p in acts)
