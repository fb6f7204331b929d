"""`ClipperClient.over_http`: a client with neither Temporal nor the store, only the REST API of a token-protected
`clipper web` (real uvicorn on a free port, reads protected too) over a real dev server and a real worker running
the bundled sample. It gets the same models and the same typed errors as the local client, and every file it
reads is the one the job recorded."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from clipper.errors import ClipperError, InvalidRequest, UnsupportedUrl
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from clipper_app.client import (
    ApiUnavailable, ClipperClient, JobCancelled, JobClosed, JobFailed, JobNotFound, JobStillRunning,
    RemoteClipperClient, connect,
)
from clipper_app.workers.pools import build_worker
from tests.helpers import run
from tests.helpers.jobs import until
from tests.helpers.webserver import free_port, web_server

TOKEN = "remote-t0ken-planted-Vb2"


@pytest.mark.slow
def test_a_remote_client_does_what_the_local_one_does(settings, media_server, tmp_path):
    settings = settings.model_copy(update={"web_token": SecretStr(TOKEN), "web_protect_reads": True,
                                           "audiograms_enabled": False})
    store = ArtifactStore(settings.storage_dir)
    episode = media_server.url("/episode.mp3")

    async def body() -> None:
        async with build_worker(await connect(settings), settings):
            with web_server(settings) as base:
                for token in (None, "wrong-token"):  # reads are protected: refused before anything is read
                    async with ClipperClient.over_http(base, token=token) as stranger:
                        with pytest.raises(ClipperError) as refused:
                            await stranger.list_jobs()
                        assert refused.value.type_name == "Unauthorized" and TOKEN not in str(refused.value)
                async with ClipperClient.over_http(base, token=TOKEN, poll_s=0.3) as clipper:
                    assert TOKEN not in repr(clipper)
                    done = await outputs_and_errors(clipper, episode, store)
                    await controls(clipper, media_server)
                    await clipper.delete(done)  # an ended job: its files and runs are gone
                    assert not await clipper.exists(done) and not (store.root / "jobs" / done).exists()
                    with pytest.raises(JobNotFound):
                        await clipper.delete(done)
        async with RemoteClipperClient(f"http://127.0.0.1:{free_port()}", TOKEN) as nobody:
            with pytest.raises(ApiUnavailable, match="could not reach clipper web"):
                await nobody.status("clip-0000000000000000")

    run(body())


async def outputs_and_errors(clipper: RemoteClipperClient, episode: str, store: ArtifactStore) -> str:
    job = await clipper.submit(episode, priority=2)
    assert not job.existing and job.job_id.startswith("clip-") and job.webhook_secret is None  # no webhook set
    assert (await clipper.submit(episode)).existing
    status = await clipper.status(job.job_id)
    assert status.job_id == job.job_id and status.priority == 2
    result = await clipper.result(job.job_id)
    assert result.state == JobState.done and result.info is not None and result.info.duration_s
    assert {"audio.wav", "report.md", "quotes.json", "transcript.srt"} <= set(result.artifacts)
    for name, ref in result.artifacts.items():  # the same references the store's manifest has
        assert store.read_manifest(job.job_id).artifacts[name].sha256 == ref.sha256, name

    assert (await clipper.report_markdown(job.job_id)) == store.path(job.job_id, "report.md").read_text()
    quotes, transcript = await clipper.quotes(job.job_id), await clipper.transcript(job.job_id)
    assert quotes.quotes and transcript.segments
    clip = await clipper.clip_bytes(job.job_id, 1)
    first = next(c for c in (await clipper.clips(job.job_id)).clips if c.rank == 1)
    assert clip == store.path(job.job_id, first.name).read_bytes()
    folder = store.path(job.job_id, "report.md").parent.parent / "downloads"
    folder.mkdir()
    saved = await clipper.download(job.job_id, "audio.wav", folder)
    assert saved.read_bytes() == store.path(job.job_id, "audio.wav").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["audio.wav"]  # no .part left
    listed = await until(lambda: _listed(clipper, job.job_id), what="the job in the list", timeout=30)
    assert listed.state == "done"

    # The same typed errors as the local client.
    unknown = "clip-0000000000000000"
    for call in (clipper.status(unknown), clipper.result(unknown), clipper.quotes(unknown), clipper.pause(unknown)):
        with pytest.raises(JobNotFound):
            await call
    assert not await clipper.exists(unknown) and await clipper.exists(job.job_id)
    for call in (clipper.pause(job.job_id), clipper.resume(job.job_id), clipper.cancel(job.job_id)):
        with pytest.raises(JobClosed):
            await call
    with pytest.raises(UnsupportedUrl):
        await clipper.submit("not a url")
    with pytest.raises(InvalidRequest):
        await clipper.set_priority(job.job_id, 9)
    with pytest.raises(ClipperError) as missing:
        await clipper.artifact_bytes(job.job_id, "no-such-file.txt")
    assert missing.value.type_name == "ArtifactNotFound"
    return job.job_id


async def controls(clipper: RemoteClipperClient, media_server) -> None:
    """Pause at once, resume, cancel: the job ends cancelled; media that is not there: JobFailed."""
    job = (await clipper.submit(media_server.url(f"/episode.mp3?copy={uuid.uuid4().hex}"))).job_id
    await until(lambda: _state(clipper, job, JobState.running), what="the job to run", timeout=60)
    await clipper.pause(job, now=True)
    await until(lambda: _state(clipper, job, JobState.paused), what="the job to pause", timeout=60)
    await clipper.resume(job)
    await until(lambda: _state(clipper, job, JobState.running), what="the job to resume", timeout=60)
    assert await clipper.set_priority(job, 1) == 1
    with pytest.raises(JobStillRunning):
        await clipper.delete(job)
    await clipper.cancel(job)
    with pytest.raises(JobCancelled):
        await clipper.result(job)

    gone = (await clipper.submit(media_server.url(f"/{uuid.uuid4().hex}.mp3"))).job_id
    with pytest.raises(JobFailed) as failed:
        await clipper.result(gone)
    assert failed.value.error_type == "MediaNotFound" and failed.value.stage == "download"


async def _state(clipper: RemoteClipperClient, job: str, state: JobState) -> bool:
    return (await clipper.status(job)).state == state


async def _listed(clipper: RemoteClipperClient, job: str):
    return next((row for row in await clipper.list_jobs(limit=20) if row.job_id == job and row.state), None)
