"""Downloads that never end by themselves: stalls, trickles, a stop while no byte arrives, redirect chains and
loops, and an X Space whose recording answers 404 for a while. Real yt-dlp against the real local HTTP server
(tests/helpers/httpserver.py); the Space rule also as the pure function it is.

Each server misbehaves for a bounded time (`for_s`) and then hangs up by itself, so without the watchdog these
tests end with the wrong error instead of hanging.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clipper.config import Settings
from clipper.errors import (
    DownloadFailed,
    DownloadStalled,
    JobCancelled,
    MediaNotFound,
    NoMediaFound,
    TooManyRedirects,
)
from clipper.media.download import download
from clipper.media.spaces import RETRY_MAX_S, RETRY_MIN_S, is_space_url, not_ready_wait
from clipper.media.ssrf import MAX_REDIRECTS
from clipper.media.transfer import SLOW, STALLED, STOPPED, TransferLimits, TransferWatch
from clipper.media.ytdlp_errors import map_ytdlp_error
from tests.helpers import SAMPLE
from tests.helpers.httpserver import MediaServer, serve
from tests.helpers.reports import add_report

DATA = SAMPLE.read_bytes()
MEDIA = "/media/sample.mp3"
GIVE_UP_S = 40  # how long the misbehaving server keeps it up before hanging up itself


def local(**overrides) -> Settings:
    """Loopback allowed (the test server), and a socket timeout longer than any test: only the watchdog ends
    a transfer early."""
    return Settings(**{"allow_private_addresses": True, "download_socket_timeout_s": 120, **overrides})


@pytest.fixture
def server():
    with serve({MEDIA: (DATA, "audio/mpeg")}) as srv:
        yield srv


def body_requests(srv: MediaServer, path: str = MEDIA):
    """The requests that got (or are getting) the body: yt-dlp's generic extractor first looks at the headers
    of its own GET, which it never reads."""
    return [r for r in srv.seen(path) if r.body_sent or r.hung_up.is_set()]


# --- stalls and trickles ---


@pytest.mark.slow
def test_a_stall_is_download_stalled_and_the_next_attempt_resumes(server: MediaServer, tmp_path: Path) -> None:
    server.trickle(MEDIA, head=60_000, every_s=None, for_s=GIVE_UP_S)  # 60 KB, then nothing
    with pytest.raises(DownloadStalled, match="sent nothing for 2 s.*CLIPPER_DOWNLOAD_STALL_S") as info:
        download(server.url(MEDIA), tmp_path, local(download_stall_s=2))
    assert info.value.non_retryable is False
    assert body_requests(server)[-1].hung_up.wait(10)  # the client hung up, not the server
    kept = (tmp_path / "source.mp3.part").stat().st_size
    assert 0 < kept <= 60_000

    server.trickles.clear()
    result = download(server.url(MEDIA), tmp_path, local(download_stall_s=2))
    assert server.ranges(MEDIA) == [f"bytes={kept}-"]
    assert result.path.read_bytes() == DATA


@pytest.mark.slow
def test_a_trickle_is_download_stalled_after_the_window(server: MediaServer, tmp_path: Path) -> None:
    """1 byte/s: never a stall (a byte comes every second), never a progress hook (a block never fills); the
    average over the window is what ends it."""
    server.trickle(MEDIA, every_s=1.0, for_s=GIVE_UP_S)
    settings = local(download_stall_s=10, download_min_bytes_per_s=1024, download_rate_window_s=3)
    with pytest.raises(DownloadStalled, match=r"too slow: \d+ bytes/s over the last 3 s.*MIN_BYTES_PER_S"):
        download(server.url(MEDIA), tmp_path, settings)
    seen = body_requests(server)[-1]
    assert seen.hung_up.wait(10) and 0 < seen.body_sent < 30  # the client hung up, not the server


@pytest.mark.slow
def test_a_slow_but_steady_download_is_not_cut(server: MediaServer, tmp_path: Path) -> None:
    """A limit the server stays above never fires, however long the transfer takes."""
    body = DATA[:20_000]
    server.files["/small.mp3"] = (body, "audio/mpeg")
    server.trickle("/small.mp3", head=16_000, every_s=0.001, for_s=GIVE_UP_S)  # ~16 KB, then ~4 s at <1 KB/s
    settings = local(download_stall_s=1, download_min_bytes_per_s=100, download_rate_window_s=1)
    result = download(server.url("/small.mp3"), tmp_path, settings)
    assert result.path.read_bytes() == body


@pytest.mark.slow
def test_stop_during_a_stalled_download_hangs_up_at_once(server: MediaServer, tmp_path: Path, request) -> None:
    """No byte arrives, so no progress hook runs: the watchdog sees the stop flag and closes the connection."""
    server.trickle(MEDIA, head=0, every_s=None, for_s=GIVE_UP_S)
    stop = threading.Event()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            download(server.url(MEDIA), tmp_path, local(download_stall_s=0, download_min_bytes_per_s=0),
                     should_stop=stop.is_set)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # The extractor's look at the headers, then the transfer: the client is now blocked on a body that never comes.
    transfer = _until(lambda: server.seen(MEDIA)[1] if len(server.seen(MEDIA)) >= 2 else None)
    time.sleep(0.5)
    stopped_at = time.monotonic()
    stop.set()
    thread.join(GIVE_UP_S + 10)
    assert isinstance(outcome[0], JobCancelled), outcome
    assert transfer.hung_up.wait(10), "the connection stayed open"
    add_report(request.config, "download stop -> connection closed (tests/unit/test_download_limits.py)",
               [f"stalled transfer, stop flag set -> server saw the hang-up: "
                f"{transfer.hung_up_at - stopped_at:.2f} s"])


# --- the watchdog's rules, on a clock the test moves ---


def fake_clock():
    now = [0.0]
    return now, (lambda: now[0])


def test_only_time_spent_waiting_for_bytes_counts_as_a_stall() -> None:
    now, clock = fake_clock()
    watch = TransferWatch(TransferLimits(stall_s=5, min_bytes_per_s=100, window_s=60), clock=clock)
    watch.add(10_000)
    assert watch.tick() is None
    for _ in range(100):  # 20 s of yt-dlp doing something else (parsing, writing, post-processing): no read open
        now[0] += 0.2
        assert watch.tick() is None
    with watch.waiting():  # now a read waits for bytes that do not come
        for _ in range(24):
            now[0] += 0.2
            assert watch.tick() is None
        now[0] += 0.5
        assert watch.tick() == STALLED
    assert isinstance(watch.error("download of x"), DownloadStalled)


def test_the_average_is_checked_only_after_one_window() -> None:
    now, clock = fake_clock()
    watch = TransferWatch(TransferLimits(stall_s=0, min_bytes_per_s=100, window_s=5), clock=clock)
    with watch.waiting():
        for step in range(1, 60):  # 50 bytes/s, below the minimum from the start
            now[0] += 0.1
            watch.add(5)
            verdict = watch.tick()
            if now[0] < 5 - 1e-9:
                assert verdict is None, step  # the grace: a slow start is not punished
            elif verdict is not None:
                break
    assert verdict == SLOW and now[0] == pytest.approx(5.0, abs=0.3)  # one window of transfer time, to a tick or two
    assert "50 bytes/s over the last 5 s" in watch.error("download of x").message


def test_abort_unblocks_a_read_in_another_thread() -> None:
    ours, theirs = socket.socketpair()
    watch = TransferWatch(TransferLimits())
    watch.opened(ours)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(ours.recv(10)))
    reader.start()
    watch.abort(STOPPED)
    reader.join(5)
    assert got == [b""] and not reader.is_alive()
    assert isinstance(watch.error("download of x"), JobCancelled)
    with pytest.raises(ConnectionAbortedError):
        watch.admit()  # no new connection once ended
    ours.close(), theirs.close()


def test_urllibs_own_redirect_limit_is_too_many_redirects() -> None:
    error = map_ytdlp_error("http://a.example/x", Exception("HTTP Error 302: Found (redirect loop detected)"))
    assert isinstance(error, TooManyRedirects)


def _until(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while (value := predicate()) is None:
        assert time.monotonic() < deadline, "timed out waiting for the transfer to start"
        time.sleep(0.02)
    return value


# --- redirects ---


def test_a_30_hop_redirect_chain_is_too_many_redirects(server: MediaServer, tmp_path: Path) -> None:
    for hop in range(30):
        server.redirect(f"/r{hop}", server.url(f"/r{hop + 1}"))
    server.redirect("/r30", server.url(MEDIA))
    with pytest.raises(TooManyRedirects, match=f"more than {MAX_REDIRECTS} times") as info:
        download(server.url("/r0"), tmp_path, local())
    assert info.value.non_retryable is True
    assert "open it in a browser" in info.value.message
    assert len(server.requests) == MAX_REDIRECTS + 1  # gave up at the limit, without following the rest
    assert server.counts[MEDIA] == 0


def test_a_redirect_loop_is_too_many_redirects(server: MediaServer, tmp_path: Path) -> None:
    server.redirect("/a", server.url("/b"))
    server.redirect("/b", server.url("/a"))
    with pytest.raises(TooManyRedirects, match=r"in a loop \(http://\S+/a -> http://\S+/b -> http://\S+/a\)") as info:
        download(server.url("/a"), tmp_path, local())
    assert info.value.non_retryable is True
    assert len(server.requests) <= 2 * MAX_REDIRECTS


def test_redirects_up_to_the_limit_are_followed(server: MediaServer, tmp_path: Path) -> None:
    for hop in range(MAX_REDIRECTS - 1):
        server.redirect(f"/r{hop}", server.url(f"/r{hop + 1}"))
    server.redirect(f"/r{MAX_REDIRECTS - 1}", server.url(MEDIA))
    assert download(server.url("/r0"), tmp_path, local()).path.read_bytes() == DATA


# --- X Spaces: a 404 is waited out for a while ---

SPACES = local(space_not_ready_s=600)


@pytest.mark.parametrize("url", [
    "https://x.com/i/spaces/1OdKrjqXyzaKX",
    "https://twitter.com/i/spaces/1OdKrjqXyzaKX/",
    "https://www.x.com/i/spaces/1OdKrjqXyzaKX?s=20",
    "https://mobile.twitter.com/i/spaces/1OdKrjqXyzaKX",
    "HTTPS://X.COM/i/spaces/1OdKrjqXyzaKX",
])
def test_space_urls(url: str) -> None:
    assert is_space_url(url, SPACES)


@pytest.mark.parametrize("url", [
    "https://x.com/i/spaces/",  # malformed: no id
    "https://x.com/i/spaces/1OdKrjqXyzaKX/peek",
    "https://x.com/someone/status/1790000000000000000",
    "https://youtube.com/watch?v=dQw4w9WgXcQ",
    "https://example.com/i/spaces/1OdKrjqXyzaKX",  # not an X host
    "not a url at all",
])
def test_not_space_urls(url: str) -> None:
    assert not is_space_url(url, SPACES)


SPACE = "https://x.com/i/spaces/1OdKrjqXyzaKX"
GONE_404 = MediaNotFound("the server says this media does not exist (HTTP 404)", 404)


@pytest.mark.parametrize(("elapsed", "wait"), [
    (0.0, RETRY_MIN_S), (1.0, RETRY_MIN_S), (12.0, 12.0), (45.0, 45.0), (300.0, RETRY_MAX_S), (590.0, 10.0),
])
def test_a_space_404_waits_with_backoff_inside_the_window(elapsed: float, wait: float) -> None:
    assert not_ready_wait(SPACE, GONE_404, elapsed, SPACES) == pytest.approx(wait)


@pytest.mark.parametrize(("url", "error", "elapsed"), [
    (SPACE, GONE_404, 600.0),  # the window is over
    (SPACE, GONE_404, 4000.0),
    (SPACE, MediaNotFound("gone for good (HTTP 410)", 410), 0.0),
    (SPACE, MediaNotFound("no file at /x"), 0.0),  # no HTTP answer at all
    (SPACE, NoMediaFound("no audio or video"), 0.0),
    (SPACE, DownloadFailed("HTTP 500"), 0.0),
    ("https://x.com/i/spaces/", GONE_404, 0.0),  # a malformed Space URL
    ("https://example.com/episode.mp3", GONE_404, 0.0),  # another host's 404 is final at once
])
def test_everything_else_is_reported_at_once(url: str, error, elapsed: float) -> None:
    assert not_ready_wait(url, error, elapsed, SPACES) is None


def test_a_space_url_can_name_a_host_of_choice() -> None:
    """How tests (and a mirror) stand in for X: the host list is a setting; the SSRF guard is not touched."""
    assert not is_space_url("http://127.0.0.1:8000/i/spaces/1abc", SPACES)
    assert is_space_url("http://127.0.0.1:8000/i/spaces/1abc", local(space_hosts=["127.0.0.1"]))
    assert is_space_url(SPACE, local(space_hosts=["x.com"]))  # spelled as users do; canonical is twitter.com


SPACE_PATH = "/i/spaces/1OdKrjqXyzaKX"


@pytest.mark.slow
def test_a_space_recording_that_appears_is_downloaded(server: MediaServer, tmp_path: Path) -> None:
    server.files[SPACE_PATH] = (DATA, "audio/mpeg")
    server.set_status(SPACE_PATH, 404, times=1)  # not ready at the first try
    notes: list[str | None] = []
    settings = local(space_hosts=["127.0.0.1"], space_not_ready_s=120)
    result = download(server.url(SPACE_PATH), tmp_path, settings, on_note=notes.append)
    assert result.path.read_bytes() == DATA
    assert any(note and "waiting for the recording (HTTP 404), asking again in 5 s" in note for note in notes)
    assert notes[-1] is None


def test_a_space_still_missing_after_the_window_is_media_not_found(server: MediaServer, tmp_path: Path) -> None:
    """The window counts from the stage's first attempt (`started_at`), not from this call."""
    settings = local(space_hosts=["127.0.0.1"], space_not_ready_s=600)
    started = datetime.now(timezone.utc) - timedelta(minutes=11)
    with pytest.raises(MediaNotFound, match=r"HTTP 404\), still 0:11:0\d after the first try.*NOT_READY_S"):
        download(server.url(SPACE_PATH), tmp_path, settings, started_at=started)
    assert server.counts[SPACE_PATH] == 1


def test_another_hosts_404_is_media_not_found_at_once(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(MediaNotFound, match=r"HTTP 404\)$"):
        download(server.url(SPACE_PATH), tmp_path, local())  # 127.0.0.1 is not a Space host here
    assert server.counts[SPACE_PATH] == 1


def test_stop_while_waiting_for_a_space(server: MediaServer, tmp_path: Path) -> None:
    settings = local(space_hosts=["127.0.0.1"], space_not_ready_s=600)
    waiting = threading.Event()
    with pytest.raises(JobCancelled):
        download(server.url(SPACE_PATH), tmp_path, settings, should_stop=waiting.is_set,
                 on_note=lambda note: note and waiting.set())
    assert server.counts[SPACE_PATH] == 1
