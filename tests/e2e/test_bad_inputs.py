"""Bad inputs, end to end: each case runs a real MediaJob on the dev server and checks three things.

(a) the typed error: the workflow failure's `cause.type`, or the `ClipperError` the client raises when it
    refuses before submitting; (b) a message that tells the user what happened and what to do; (c) nothing
    half-written in storage: no files under the job's `.tmp/`, no `*.tmp`/`*.part` anywhere in the job folder,
    a readable manifest.json, and every artifact it lists matching its sha256.

Media is generated at test time with the ffmpeg the product uses; the HTTP server is tests/helpers/httpserver.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from clipper.config import Settings
from clipper.errors import ClipperError, InvalidRequest, StorageFull, UnsupportedUrl
from clipper.job.outputs import Transcript
from clipper.job.request import JobOptions, JobRequest, JobResult
from clipper.job.status import JobState, StageState
from clipper.media.ffmpeg import ffmpeg_exe
from clipper.store.files import JsonlLog, sha256_file
from clipper.store.local import MANIFEST, TMP_DIR, ArtifactStore, Manifest
from clipper.text.formats import NO_SPEECH
from clipper_app.client import ClipperClient, JobFailed, connect
from clipper_app.workers.pools import build_worker
from tests.helpers import REFERENCE, SAMPLE, run
from tests.helpers.httpserver import HTML_NO_MEDIA, serve
from tests.helpers.jobs import normalise, wait_for_state
from workflows.media_job import MediaJob

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BYTES = SAMPLE.read_bytes()
HUGE = SAMPLE_BYTES + bytes(32 << 20)  # far more than socket buffers hold: a refused body can't all be sent


# --- media made at test time ---


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("bad-media")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", "-c:v", "mpeg4", str(out / "mute.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "5", "-c:a", "libmp3lame", "-b:a", "32k",
            str(out / "silence.mp3"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1", str(out / "picture.png"))
    return {name: (out / name).read_bytes() for name in ("mute.mp4", "silence.mp3", "picture.png")}


@pytest.fixture
def server(media: dict[str, bytes]):
    files = {
        "/episode.mp3": (SAMPLE_BYTES, "audio/mpeg"),
        "/page.html": (HTML_NO_MEDIA, "text/html"),
        "/empty.mp3": (b"", "audio/mpeg"),
        "/truncated.mp3": (SAMPLE_BYTES[: len(SAMPLE_BYTES) // 10], "audio/mpeg"),
        "/header-only.mp3": (SAMPLE_BYTES[:200], "audio/mpeg"),  # cut inside the ID3 tag: no audio frame at all
        "/cover.mp3": (media["picture.png"], "audio/mpeg"),  # a PNG renamed .mp3, served as audio
        "/mute.mp4": (media["mute.mp4"], "video/mp4"),
        "/silence.mp3": (media["silence.mp3"], "audio/mpeg"),
        "/huge.mp3": (HUGE, "audio/mpeg"),
        "/two.html": (b'<html><body><audio src="/episode.mp3"></audio><audio src="/other.mp3"></audio>'
                      b"</body></html>", "text/html"),
    }
    with serve(files) as srv:
        yield srv


# --- running a job and checking what it left behind ---


async def run_bad_job(
    settings: Settings,
    url: str,
    *,
    raw: bool = False,
    options: JobOptions | None = None,
    during: Callable[[ClipperClient, str], Awaitable[None]] | None = None,
) -> tuple[str, JobResult | JobFailed]:
    """Run `url` as a job with an in-process worker. `raw` starts it as any Temporal client could (e.g.
    `temporal workflow start`), bypassing the checks our client makes before submitting."""
    client = await connect(settings)
    clipper = ClipperClient(client, settings)
    async with build_worker(client, settings):
        if raw:
            job_id = f"bad-{uuid.uuid4().hex[:10]}"
            request = JobRequest(url=url, options=options or JobOptions(), policies=settings.stage_policies())
            await client.start_workflow(MediaJob.run, request, id=job_id, task_queue=settings.task_queue)
        else:
            job_id = (await clipper.submit(url, options)).job_id
        if during is not None:
            await during(clipper, job_id)
        try:
            return job_id, await asyncio.wait_for(clipper.result(job_id), 60)
        except JobFailed as err:
            return job_id, err


def assert_failed(result: JobResult | Exception, error_type: str, *fragments: str) -> None:
    assert isinstance(result, JobFailed), f"expected {error_type}, got {result!r}"
    assert result.error_type == error_type, (result.error_type, result.error_message)
    for fragment in fragments:
        assert fragment.lower() in result.error_message.lower(), (fragment, result.error_message)


def assert_nothing_half_written(settings: Settings, job_id: str) -> Manifest:
    """No work in progress left, no temp file anywhere, and a manifest whose every artifact checks out."""
    store = ArtifactStore(settings.storage_dir)
    job_dir = settings.storage_dir / "jobs" / job_id
    if not job_dir.exists():
        return Manifest(job_id=job_id)  # refused before anything was written
    scratch = job_dir / TMP_DIR
    leftovers = [p for p in scratch.rglob("*") if p.is_file()] if scratch.exists() else []
    assert not leftovers, f"work in progress left behind: {leftovers}"
    temps = [p for pattern in ("*.tmp", "*.part") for p in job_dir.rglob(pattern) if p.is_file()]
    assert not temps, f"half-written files left behind: {temps}"
    manifest_path = job_dir / MANIFEST
    if not manifest_path.exists():
        return Manifest(job_id=job_id)
    manifest = Manifest.model_validate_json(manifest_path.read_bytes())  # readable, not just "recovered"
    for name, ref in manifest.artifacts.items():
        path = store.path(job_id, name)
        assert path.is_file(), f"{name} is in the manifest but missing"
        assert path.stat().st_size == ref.size and sha256_file(path) == ref.sha256, f"{name} does not match"
    return manifest


def abandon_when_waiting(error_type: str, stage: str, *fragments: str):
    """A retryable failure (or one a manual retry with new options could fix) makes the job wait: check
    that it waits, failed, with the typed error, then abandon it."""

    async def during(clipper: ClipperClient, job_id: str) -> None:
        status = await wait_for_state(clipper, job_id, JobState.failed, timeout=60)
        assert status.waiting_since is not None, "the job should wait for a manual retry or abandon"
        assert status.error is not None and status.error.type == error_type, status.error
        assert status.stage(stage).state == StageState.failed
        for fragment in fragments:
            assert fragment.lower() in status.error.message.lower(), (fragment, status.error.message)
        await clipper.abandon(job_id)

    return during


def no_private(settings: Settings, **update) -> Settings:
    """The production default: loopback, private and link-local addresses refused."""
    return settings.model_copy(update={"allow_private_addresses": False, **update})


# --- URLs refused before any download: by the client, and again by the worker ---


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http//nohost", "colon after 'http' is missing"),
        ("not a url", "is it a url"),
        ("ftp://example.com/a.mp3", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("data:audio/mpeg;base64,SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4", "scheme 'data'"),
        ("https://example.com/" + "a" * 10_000, "limit is 4096"),
    ],
    ids=["missing-colon", "not-a-url", "ftp", "javascript", "data", "10kB-url"],
)
def test_malformed_or_unsupported_url(settings, url, fragment):
    async def client_refuses() -> ClipperError:
        clipper = ClipperClient(await connect(settings), settings)
        with pytest.raises(UnsupportedUrl) as err:
            await clipper.submit(url)
        return err.value

    assert fragment.lower() in run(client_refuses()).message.lower()
    # The worker does not rely on the client: the same URL started directly fails at once, same type.
    job_id, result = run(run_bad_job(settings, url, raw=True))
    assert_failed(result, "UnsupportedUrl", fragment)
    assert_nothing_half_written(settings, job_id)


def test_invalid_priority_is_refused_at_submit(settings, server):
    async def body() -> InvalidRequest:
        clipper = ClipperClient(await connect(settings), settings)
        with pytest.raises(InvalidRequest) as err:
            await clipper.submit(server.url("/episode.mp3"), priority=9)
        return err.value

    assert "priority must be 1 (highest) to 5 (lowest), got 9" in run(body()).message
    assert server.requests == []


@pytest.mark.parametrize("as_uri", [True, False], ids=["file-url", "local-path"])
def test_local_file_when_not_allowed(settings, as_uri):
    url = SAMPLE.resolve().as_uri() if as_uri else str(SAMPLE.resolve())
    job_id, result = run(run_bad_job(settings, url, raw=True))
    assert_failed(result, "LocalPathNotAllowed", "is a local file", "CLIPPER_ALLOW_LOCAL_FILES=true")
    assert not assert_nothing_half_written(settings, job_id).artifacts


# --- the SSRF guard ---


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.0.0.1", "169.254.169.254"], ids=["loopback", "private", "link-local"]
)
def test_non_public_address_literally(settings, server, host):
    port = server.server_address[1]
    url = f"http://{host}:{port}/episode.mp3"
    job_id, result = run(run_bad_job(no_private(settings), url, raw=True))
    assert_failed(result, "ForbiddenAddress", f"non-public address {host}", "CLIPPER_ALLOW_PRIVATE_ADDRESSES")
    assert server.requests == []  # refused before connecting
    assert not assert_nothing_half_written(settings, job_id).artifacts


def test_non_public_address_through_a_dns_name(settings, server):
    url = f"http://localhost:{server.server_address[1]}/episode.mp3"
    job_id, result = run(run_bad_job(no_private(settings), url))
    assert_failed(result, "ForbiddenAddress", "the host localhost resolves to the non-public address")
    assert server.requests == []
    assert_nothing_half_written(settings, job_id)


def test_non_public_address_through_a_redirect(settings, server):
    """`localhost` is allow-listed, so the first hop is fetched; it answers 302 to 127.0.0.1, which is not.
    yt-dlp follows redirects itself: the guard must see every hop, not just the submitted URL."""
    port = server.server_address[1]
    server.redirect("/go.mp3", f"http://127.0.0.1:{port}/episode.mp3")
    settings = no_private(settings, allowed_hosts=["localhost"])
    job_id, result = run(run_bad_job(settings, f"http://localhost:{port}/go.mp3"))
    assert_failed(result, "ForbiddenAddress", "/go.mp3 redirects to a refused address",
                  "non-public address 127.0.0.1")
    assert [r.path for r in server.requests] == ["/go.mp3"]  # the redirect target was never requested
    assert not assert_nothing_half_written(settings, job_id).artifacts


# --- what the server answers ---


def test_http_404_fails_at_once(settings, server):
    server.set_status("/gone.mp3", 404)
    job_id, result = run(run_bad_job(settings, server.url("/gone.mp3")))
    assert_failed(result, "MediaNotFound", "does not exist (HTTP 404)")
    assert server.counts["/gone.mp3"] == 1  # not retried: no retry can fix it
    assert_nothing_half_written(settings, job_id)


def test_http_403_is_not_retried_but_waits_for_a_manual_retry(settings, server):
    """AccessDenied is non-retryable (no automatic retries), but it does not end the job (`ends_job` is False): access
    can be granted later (a private video made public), so the job waits for `retry` or `abandon`."""
    server.set_status("/private.mp3", 403)
    during = abandon_when_waiting("AccessDenied", "download", "refused access (HTTP 403)")
    job_id, result = run(run_bad_job(settings, server.url("/private.mp3"), during=during))
    assert_failed(result, "AccessDenied", "refused access (HTTP 403)", "private, need a login")
    assert server.counts["/private.mp3"] == 1  # one attempt, no automatic retries
    assert_nothing_half_written(settings, job_id)


def test_http_500_is_retried_then_waits_for_a_manual_retry(settings, server):
    server.set_status("/flaky.mp3", 500)
    attempts = settings.stage_policies()["download"].max_attempts
    # The last attempt's message says that it was the last (it said "will retry").
    during = abandon_when_waiting("DownloadFailed", "download", "HTTP 500", f"gave up after {attempts} failed attempts")
    job_id, result = run(run_bad_job(settings, server.url("/flaky.mp3"), during=during))
    assert_failed(result, "DownloadFailed", "the server had a problem (HTTP 500)")
    assert "will retry" not in result.error_message
    assert server.counts["/flaky.mp3"] == attempts  # the whole (fast) error budget, one request each
    assert_nothing_half_written(settings, job_id)


def test_html_page_without_media(settings, server):
    job_id, result = run(run_bad_job(settings, server.url("/page.html")))
    assert_failed(result, "NoMediaFound", "no audio or video found")
    assert_nothing_half_written(settings, job_id)


def test_playlist_submitted_as_one_job(settings, server):
    job_id, result = run(run_bad_job(settings, server.url("/two.html")))
    assert_failed(result, "UnsupportedUrl", "is a playlist (2 items)", "submit it as a batch")
    assert server.counts["/episode.mp3"] == 0  # refused before fetching any entry
    assert_nothing_half_written(settings, job_id)


# --- what the file contains ---


@pytest.mark.parametrize(
    ("path", "error_type", "fragments"),
    [
        ("/empty.mp3", "InvalidMedia", ("empty file (0 bytes)",)),
        ("/header-only.mp3", "InvalidMedia", ("not a readable audio or video file",)),
        ("/cover.mp3", "InvalidMedia", ("is a still image",)),
        ("/mute.mp4", "NoAudioStream", ("has no audio track",)),
    ],
    ids=["zero-bytes", "cut-mid-header", "png-renamed-mp3", "video-without-audio"],
)
def test_unusable_media_fails_at_once(settings, server, path, error_type, fragments):
    job_id, result = run(run_bad_job(settings, server.url(path)))
    assert_failed(result, error_type, *fragments)
    assert server.counts[path] <= 2  # the extractor's look and the transfer: no retries
    assert "audio.wav" not in assert_nothing_half_written(settings, job_id).artifacts


def test_truncated_audio_that_still_decodes_gives_a_short_transcript(settings, server):
    """The first 10 % of the sample is a valid MP3 that ends early: its frames decode, and its header still
    claims the full 54 s. Nothing tells a file cut at the origin from a short one, so refusing it would lose
    what can be transcribed: the job succeeds with the duration that really decodes and the first words.
    (A file cut before its first audio frame is refused as InvalidMedia: see `cut-mid-header` above.)"""
    job_id, result = run(run_bad_job(settings, server.url("/truncated.mp3")))
    assert isinstance(result, JobResult) and result.state == JobState.done, result
    assert 4.5 < result.info.duration_s < 6.5  # what decodes, not the 54 s the header claims
    store = ArtifactStore(settings.storage_dir)
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    words = normalise(transcript.text).split()
    assert words and words[:3] == normalise(REFERENCE.read_text()).split()[:3], transcript.text
    assert len(words) < 25
    assert_nothing_half_written(settings, job_id)


def test_silence_only_is_a_valid_job_without_speech(settings, server):
    job_id, result = run(run_bad_job(settings, server.url("/silence.mp3")))
    assert isinstance(result, JobResult) and result.state == JobState.done, result
    store = ArtifactStore(settings.storage_dir)
    transcript = Transcript.model_validate_json(store.path(job_id, "transcript.json").read_bytes())
    assert len(normalise(transcript.text).split()) <= 2, transcript.text  # empty, or a stray token at most
    assert NO_SPEECH in store.path(job_id, "report.md").read_text()
    assert_nothing_half_written(settings, job_id)


# --- limits ---


def test_media_longer_than_the_maximum(settings, server):
    settings = settings.model_copy(update={"max_duration_s": 10})
    job_id, result = run(run_bad_job(settings, server.url("/episode.mp3")))
    assert_failed(result, "MediaTooLong", "is 0:00:54 long; the limit is 0:00:10", "CLIPPER_MAX_DURATION_S")
    manifest = assert_nothing_half_written(settings, job_id)
    assert not manifest.artifacts  # refused before converting: not even the source is kept


def test_media_larger_than_the_maximum(settings, server):
    settings = settings.model_copy(update={"max_download_bytes": 1_000_000})
    job_id, result = run(run_bad_job(settings, server.url("/huge.mp3")))
    assert_failed(result, "MediaTooLarge", "larger than the limit of 1000000 bytes", "CLIPPER_MAX_DOWNLOAD_BYTES")
    seen = [r for r in server.requests if r.path == "/huge.mp3"]
    assert seen and all(r.method == "GET" and r.range is None for r in seen)
    # Refused on Content-Length: the client hung up long before the server could send the body.
    assert all(r.body_sent < len(HUGE) // 2 for r in seen), [r.body_sent for r in seen]
    assert not assert_nothing_half_written(settings, job_id).artifacts


# --- options ---


def test_unknown_engine_is_refused_by_the_client(settings, server):
    async def body():
        clipper = ClipperClient(await connect(settings), settings)
        for options in (JobOptions(asr_engine="nope"), JobOptions(text_engine="gpt")):
            with pytest.raises(InvalidRequest, match="unknown (asr|text)_engine"):
                await clipper.submit(server.url("/episode.mp3"), options)

    run(body())


def test_unknown_asr_engine_from_another_client_waits_for_a_manual_retry(settings, server):
    """Started past our client's checks: `retry` with `{"asr_engine": "local"}` fixes it, so the job waits."""
    during = abandon_when_waiting("EngineNotConfigured", "transcribe", "unknown ASR engine 'nope'")
    job_id, result = run(run_bad_job(settings, server.url("/episode.mp3"), options=JobOptions(asr_engine="nope"),
                                     during=during, raw=True))
    assert_failed(result, "EngineNotConfigured", "unknown ASR engine 'nope'", "choose local, openai or noop")
    manifest = assert_nothing_half_written(settings, job_id)
    assert {"audio.wav", "media.json"} <= set(manifest.artifacts) and "transcript.json" not in manifest.artifacts


# --- the disk fills up while writing ---

FILE_SIZE_LIMIT = 1_000_000  # the sample's source (218 kB) fits; its 16 kHz WAV (1.7 MB) does not


def _limit_file_size() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_disk_full_during_conversion(settings, server, tmp_path):
    env = dict(os.environ, TEMPORAL_ADDRESS=settings.temporal_address, CLIPPER_TASK_QUEUE=settings.task_queue,
               CLIPPER_STORAGE_DIR=str(settings.storage_dir), CLIPPER_ALLOW_PRIVATE_ADDRESSES="true",
               CLIPPER_LOG_FORMAT="json", CLIPPER_GRACEFUL_SHUTDOWN_S="2", HF_HUB_OFFLINE="1")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                              stdout=open(log, "ab"), stderr=subprocess.STDOUT, preexec_fn=_limit_file_size)
    during = abandon_when_waiting("StorageFull", "download", "audio.wav", "free disk space")

    async def body():
        clipper = ClipperClient(await connect(settings), settings)
        job_id = (await clipper.submit(server.url("/episode.mp3"))).job_id
        await during(clipper, job_id)
        try:
            return job_id, await asyncio.wait_for(clipper.result(job_id), 60)
        except JobFailed as err:
            return job_id, err

    try:
        job_id, result = run(body())
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    # Killed by SIGXFSZ (subprocesses get that signal's default back) or EFBIG: either way a full disk.
    assert_failed(result, "StorageFull", "no room to write audio.wav", "free disk space")
    manifest = assert_nothing_half_written(settings, job_id)
    assert "source.mp3" in manifest.artifacts  # what was written completely is kept, and checks out
    assert "audio.wav" not in manifest.artifacts and not (settings.storage_dir / "jobs" / job_id / "audio.wav").exists()


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Lower this process's RLIMIT_FSIZE for a moment (Python ignores SIGXFSZ: writes fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_store_writes_when_the_disk_is_full(tmp_path):
    """The store's own writes (artifacts, manifest, resumable logs), below the pipeline: typed, retryable,
    and nothing torn or half-written left behind."""
    store = ArtifactStore(tmp_path)
    store.put_text("job", "small.txt", "fits", "test")
    partial = JsonlLog(store.scratch_dir("job") / "t.partial.jsonl")
    partial.append({"id": 0})
    with file_size_limit(100_000):
        with pytest.raises(StorageFull, match="no room to write big.bin") as err:
            store.put_bytes("job", "big.bin", bytes(200_000), "test")
        with pytest.raises(StorageFull, match="t.partial.jsonl"):
            partial.append({"id": 1, "text": "x" * 200_000})
    assert err.value.non_retryable is False
    assert not [p for p in tmp_path.rglob("*.tmp") if p.is_file()]
    manifest = Manifest.model_validate_json((tmp_path / "jobs" / "job" / MANIFEST).read_bytes())
    assert set(manifest.artifacts) == {"small.txt"}
    assert partial.read() == [{"id": 0}]  # the failed append left no torn line to hide later ones
    partial.append({"id": 2})
    assert partial.read() == [{"id": 0}, {"id": 2}]
