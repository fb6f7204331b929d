"""Downloads through the real yt-dlp against a real local HTTP server (tests/helpers/httpserver.py), and local copies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipper.config import Settings
from clipper.errors import (
    AccessDenied,
    DownloadFailed,
    ForbiddenAddress,
    InvalidMedia,
    JobCancelled,
    LocalPathNotAllowed,
    MediaNotFound,
    MediaTooLarge,
    MediaTooLong,
    NoMediaFound,
    UnsupportedUrl,
)
from clipper.media.download import download
from tests.helpers.httpserver import HTML_NO_MEDIA, MediaServer, serve

SAMPLE = Path(__file__).parent.parent / "data" / "sample.mp3"
DATA = SAMPLE.read_bytes()
TITLE = "Building software that never loses work"
MEDIA = "/media/sample.mp3"

# 127.0.0.1 is loopback, which the SSRF guard refuses by default; these tests opt in like an operator would.
LOCAL_NET = Settings(allow_private_addresses=True, download_socket_timeout_s=5)


def json_ld_page(content_url: str, size: int, duration: str) -> bytes:
    """An HTML page describing its audio with schema.org JSON-LD, which yt-dlp's generic extractor reads."""
    data = {
        "@context": "https://schema.org",
        "@type": "AudioObject",
        "name": "Episode 1",
        "contentUrl": content_url,
        "encodingFormat": "audio/mpeg",
        "contentSize": str(size),
        "duration": duration,
    }
    return f'<html><head><script type="application/ld+json">{json.dumps(data)}</script></head></html>'.encode()


@pytest.fixture
def server() -> Iterator[MediaServer]:
    with serve({MEDIA: (DATA, "audio/mpeg"), "/page.html": (HTML_NO_MEDIA, "text/html")}) as srv:
        yield srv


def media_requests(srv: MediaServer) -> int:
    return srv.counts[MEDIA]


def test_default_settings_refuse_loopback(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(ForbiddenAddress, match="CLIPPER_ALLOW_PRIVATE_ADDRESSES"):
        download(server.url(MEDIA), tmp_path, Settings())
    assert server.requests == []  # refused before any connection


def test_download_with_progress(server: MediaServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    result = download(
        server.url(MEDIA), tmp_path, LOCAL_NET, on_progress=lambda done, total: seen.append((done, total))
    )
    assert result.path == tmp_path / "source.mp3"
    assert result.path.read_bytes() == DATA
    assert len(seen) >= 2
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(DATA), len(DATA))
    info = result.info
    assert info.title == TITLE  # from the file's tag: the generic extractor would call it "sample"
    assert info.uploader == "Clipper Podcast"
    assert info.duration_s == pytest.approx(54.4, abs=0.2)
    assert info.source_url == server.url(MEDIA)
    assert info.webpage_url == server.url(MEDIA)
    assert info.extractor == "Generic"
    assert info.filesize == len(DATA)


def test_finished_download_is_reused(server: MediaServer, tmp_path: Path) -> None:
    download(server.url(MEDIA), tmp_path, LOCAL_NET)
    before = media_requests(server)
    again = download(server.url(MEDIA), tmp_path, LOCAL_NET)
    assert again.path.read_bytes() == DATA
    assert media_requests(server) - before == 1  # the extractor's look, no second transfer


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, MediaNotFound), (410, MediaNotFound), (403, AccessDenied), (401, AccessDenied), (500, DownloadFailed)],
)
def test_http_errors_are_typed(server: MediaServer, tmp_path: Path, status: int, error: type) -> None:
    server.set_status(MEDIA, status)
    with pytest.raises(error) as info:
        download(server.url(MEDIA), tmp_path, LOCAL_NET)
    assert server.url(MEDIA) in info.value.message
    assert str(status) in info.value.message
    assert info.value.non_retryable is (status != 500)


def test_html_page_without_media(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(NoMediaFound, match="no audio or video"):
        download(server.url("/page.html"), tmp_path, LOCAL_NET)


def test_page_with_several_media_is_a_playlist(server: MediaServer, tmp_path: Path) -> None:
    server.files["/two.html"] = (
        f'<html><body><audio src="{MEDIA}"></audio><audio src="/media/other.mp3"></audio></body></html>'.encode(),
        "text/html",
    )
    with pytest.raises(UnsupportedUrl, match="playlist"):
        download(server.url("/two.html"), tmp_path, LOCAL_NET)
    assert media_requests(server) == 0


def test_interrupted_download_resumes_with_range(server: MediaServer, tmp_path: Path) -> None:
    cut = 50_000
    server.drop_after(MEDIA, cut, times=None)  # every fresh GET is cut: only a resumed download can finish
    with pytest.raises(DownloadFailed) as info:
        download(server.url(MEDIA), tmp_path, LOCAL_NET)
    assert info.value.non_retryable is False
    assert (tmp_path / "source.mp3.part").stat().st_size == cut

    result = download(server.url(MEDIA), tmp_path, LOCAL_NET)
    assert server.ranges(MEDIA) == [f"bytes={cut}-"]
    assert result.path.read_bytes() == DATA
    assert not (tmp_path / "source.mp3.part").exists()


def test_too_large_by_content_length(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(MediaTooLarge, match="1000 bytes"):
        download(server.url(MEDIA), tmp_path, Settings(allow_private_addresses=True, max_download_bytes=1000))
    assert list(tmp_path.iterdir()) == []


def test_too_large_without_content_length(server: MediaServer, tmp_path: Path) -> None:
    server.omit_length(MEDIA)
    with pytest.raises(MediaTooLarge):
        download(server.url(MEDIA), tmp_path, Settings(allow_private_addresses=True, max_download_bytes=50_000))
    assert list(tmp_path.iterdir()) == []
    assert download(server.url(MEDIA), tmp_path, LOCAL_NET).path.read_bytes() == DATA


def test_size_and_duration_checked_before_downloading(server: MediaServer, tmp_path: Path) -> None:
    server.files["/big.html"] = (json_ld_page(server.url(MEDIA), 5 * 1024**3, "PT54S"), "text/html")
    server.files["/long.html"] = (json_ld_page(server.url(MEDIA), len(DATA), "PT9H"), "text/html")
    with pytest.raises(MediaTooLarge):
        download(server.url("/big.html"), tmp_path, LOCAL_NET)
    with pytest.raises(MediaTooLong, match="9:00:00"):
        download(server.url("/long.html"), tmp_path, LOCAL_NET)
    assert media_requests(server) == 0


def test_page_is_fetched_once(server: MediaServer, tmp_path: Path) -> None:
    server.files["/episode.html"] = (json_ld_page(server.url(MEDIA), len(DATA), "PT54S"), "text/html")
    result = download(server.url("/episode.html"), tmp_path, LOCAL_NET)
    assert result.info.title == "Episode 1"  # a real title from the page wins over the file's tag
    assert server.counts["/episode.html"] == 1 and media_requests(server) == 1


def test_stop_request_cancels_and_keeps_the_part_file(server: MediaServer, tmp_path: Path) -> None:
    progress: list[int] = []
    with pytest.raises(JobCancelled):
        download(
            server.url(MEDIA),
            tmp_path,
            LOCAL_NET,
            on_progress=lambda done, total: progress.append(done),
            should_stop=lambda: bool(progress) and progress[-1] > 20_000,
        )
    partial = (tmp_path / "source.mp3.part").stat().st_size
    assert 20_000 < partial < len(DATA)
    result = download(server.url(MEDIA), tmp_path, LOCAL_NET)
    assert server.ranges(MEDIA) == [f"bytes={partial}-"]
    assert result.path.read_bytes() == DATA


def test_local_file_refused_by_default(tmp_path: Path) -> None:
    with pytest.raises(LocalPathNotAllowed):
        download(str(SAMPLE), tmp_path, Settings())


def test_local_file_copied_when_allowed(tmp_path: Path) -> None:
    dest = tmp_path / "job"
    seen: list[int] = []
    result = download(SAMPLE.as_uri(), dest, Settings(allow_local_files=True), on_progress=lambda d, t: seen.append(d))
    assert result.path == dest / "source.mp3"
    assert result.path.read_bytes() == DATA
    assert seen[-1] == len(DATA)
    assert [p.name for p in dest.iterdir()] == ["source.mp3"]
    assert result.info.title == TITLE
    assert result.info.source_url == SAMPLE.resolve().as_uri()
    assert result.info.duration_s == pytest.approx(54.4, abs=0.2)


def test_local_non_media_file(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp3"
    fake.write_text("not audio")
    with pytest.raises(InvalidMedia):
        download(str(fake), tmp_path / "job", Settings(allow_local_files=True))


# --- the SSRF guard sees every request yt-dlp makes, redirects included ---

ONLY_LOCALHOST = Settings(allowed_hosts=["localhost"], download_socket_timeout_s=5)


def _localhost(srv: MediaServer, path: str) -> str:
    return f"http://localhost:{srv.server_address[1]}{path}"


def test_redirect_to_a_private_address_is_refused(server: MediaServer, tmp_path: Path) -> None:
    server.redirect("/go.mp3", server.url(MEDIA))  # localhost (allowed) -> 127.0.0.1 (not allowed)
    with pytest.raises(ForbiddenAddress, match="/go.mp3 redirects to a refused address: .*127.0.0.1"):
        download(_localhost(server, "/go.mp3"), tmp_path, ONLY_LOCALHOST)
    assert [r.path for r in server.requests] == ["/go.mp3"]
    assert list(tmp_path.iterdir()) == []


def test_redirect_found_only_at_download_time_is_refused(server: MediaServer, tmp_path: Path) -> None:
    """The page is fine and names a media URL on the same host; that URL redirects to a private address when
    the transfer starts, after extraction: the guard is in yt-dlp's request path, not only in front of it."""
    server.redirect("/go.mp3", server.url(MEDIA))
    server.files["/episode.html"] = (b'<html><body><audio src="/go.mp3"></audio></body></html>', "text/html")
    with pytest.raises(ForbiddenAddress, match="redirects to a refused address"):
        download(_localhost(server, "/episode.html"), tmp_path, ONLY_LOCALHOST)
    assert media_requests(server) == 0


def test_redirect_to_another_scheme_is_refused(server: MediaServer, tmp_path: Path) -> None:
    server.redirect("/go.mp3", "ftp://localhost/sample.mp3")
    with pytest.raises(UnsupportedUrl, match="redirects to a refused address: the scheme 'ftp'"):
        download(_localhost(server, "/go.mp3"), tmp_path, ONLY_LOCALHOST)


def test_redirect_to_an_allowed_host_is_followed(server: MediaServer, tmp_path: Path) -> None:
    server.redirect("/go.mp3", _localhost(server, MEDIA))
    result = download(_localhost(server, "/go.mp3"), tmp_path, ONLY_LOCALHOST)
    assert result.path.read_bytes() == DATA


def test_empty_file_is_invalid_media_not_a_network_error(server: MediaServer, tmp_path: Path) -> None:
    server.files["/empty.mp3"] = (b"", "audio/mpeg")
    with pytest.raises(InvalidMedia, match="empty file"):
        download(server.url("/empty.mp3"), tmp_path, LOCAL_NET)


def test_direct_link_too_long_is_refused_once_probed(server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(MediaTooLong, match="0:00:54 long; the limit is 0:00:10"):
        download(server.url(MEDIA), tmp_path, Settings(allow_private_addresses=True, max_duration_s=10))
