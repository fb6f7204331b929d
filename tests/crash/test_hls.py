"""kill -9 the worker in the middle of an HLS download (as X Spaces are served: a playlist of many small audio
fragments): the next attempt resumes at the fragment where the first stopped, and no fragment is fetched twice.

How it is made deterministic: the server holds the request for one fragment in the middle. yt-dlp's native HLS
downloader fetches fragments one after the other and appends each to `source.<ext>.part`, recording the index
of the last one appended in `source.<ext>.ytdl` beside it, before asking for the next; so when the held request
arrives, every earlier fragment is on disk and counted. Then the worker is killed, the held request released
(its client is gone: it gets no byte), and a second worker finishes the job. The download's scratch folder is a
function of the job id alone (`<job>/.tmp/download/`), so the retry finds the `.part` and `.ytdl` files there
whichever worker runs it; nothing has to travel in heartbeats.

The proof is the server's request log: every fragment's bytes were sent exactly once, the fragments before the
held one were never asked for after the kill, and the source file is exactly the fragments end to end.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from clipper.job.request import JobResult
from clipper.job.status import JobState
from clipper.store.local import ArtifactStore
from clipper_app.client import ClipperClient, connect
from tests.helpers import run
from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches
from tests.helpers.processes import LATER_STAGES_OFF_ENV, start_worker, wait_for, worker_running

PLAYLIST = "/space/index.m3u8"
# The download is this test's question: the stages after it run on a noop speech engine and do no heavy work.
WORKER = {**LATER_STAGES_OFF_ENV, "CLIPPER_ASR_ENGINE": "noop", "CLIPPER_TEXT_ENGINE": "offline"}


@pytest.fixture(scope="module")
def hls(long_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    """The long sample (~3.6 min) as an HLS stream of 2 s AAC fragments (~110), made with the product's ffmpeg."""
    out = tmp_path_factory.mktemp("hls")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
                    "-i", str(long_sample), "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-f", "hls", "-hls_time", "2",
                    "-hls_list_size", "0", "-hls_segment_filename", str(out / "seg%03d.ts"), str(out / "index.m3u8")],
                   check=True)
    files = {PLAYLIST: ((out / "index.m3u8").read_bytes(), "application/vnd.apple.mpegurl")}
    for segment in sorted(out.glob("seg*.ts")):
        files[f"/space/{segment.name}"] = (segment.read_bytes(), "video/mp2t")
    return files


@pytest.mark.crash
def test_kill_worker_mid_hls_download_resumes_at_fragment_level(settings, hls, tmp_path):
    store = ArtifactStore(settings.storage_dir)
    fragments = [path for path in hls if path.endswith(".ts")]
    held = len(fragments) // 2  # 0-based: fragments[:held] are done when the held one is asked for
    assert len(fragments) >= 50, "expected many small fragments"
    log_path = tmp_path / "workers.log"

    async def submit(url: str) -> str:
        return (await ClipperClient(await connect(settings), settings).submit(url)).job_id

    async def result(job_id: str) -> JobResult:
        return await ClipperClient(await connect(settings), settings).result(job_id)

    with serve(hls) as server:
        arrived = server.hold(fragments[held])
        job_id = run(submit(server.url(PLAYLIST)))
        scratch = store.job_dir(job_id) / ".tmp" / "download"
        first = start_worker(settings, log_path, env=WORKER)
        try:
            wait_for(arrived.is_set, 180, "the first worker to ask for the held fragment")
            ytdl = json.loads(next(scratch.glob("*.ytdl")).read_text())
            part = next(scratch.glob("*.part"))
            kept = part.stat().st_size
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        before_kill = len(server.requests)
        server.release(fragments[held])
        with worker_running(settings, log_path, env=WORKER):
            outcome = run(result(job_id))
        after_kill = server.requests[before_kill:]

    # What the first worker left: every fragment before the held one appended and counted, nothing more.
    assert ytdl["downloader"]["current_fragment"]["index"] == held  # yt-dlp's index is 1-based
    assert kept == sum(len(hls[path][0]) for path in fragments[:held])

    # The request log: no fragment before the held one asked for again; every fragment's bytes sent once.
    assert not {r.path for r in after_kill} & set(fragments[:held])
    for path in fragments:
        sent = [r for r in server.seen(path) if r.body_sent]
        assert len(sent) == 1 and sent[0].body_sent == len(hls[path][0]) and sent[0].range is None, path
    killed = server.seen(fragments[held])[0]
    assert killed.body_sent == 0 and killed.hung_up.is_set()  # asked for by the first worker, never delivered

    # The job: done, the download retried once, its source exactly the fragments end to end.
    assert outcome.state == JobState.done
    assert outcome.status.stage("download").attempt == 2
    source = next(name for name in store.read_manifest(job_id).artifacts if name.startswith("source."))
    assert store.path(job_id, source).read_bytes() == b"".join(hls[path][0] for path in fragments)
    assert outcome.info.duration_s == pytest.approx(4 * 54.4, abs=2.0)
    assert_manifest_matches(store, job_id)
    assert not scratch.exists()
