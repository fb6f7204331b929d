"""Fetch the source media of a job: yt-dlp for http(s), a plain copy for (allowed) local files.

Retries belong to the caller (Temporal retries the whole stage), so yt-dlp is told not to retry and not to hide
failures; a retry resumes the `.part` file left by the previous attempt with an HTTP Range request (an HLS
stream: its fragment index in the `.ytdl` file beside it).
Every yt-dlp failure becomes one of the typed errors in `clipper.errors`, with a message naming the URL.
A watchdog (`transfer.py`) ends a transfer that stalls or trickles (`DownloadStalled`) or that the caller asks to
stop, even while no byte arrives; the one retry made here is a Space's 404, waited out (`spaces.py`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
import yt_dlp
from pydantic import BaseModel

from clipper import clock
from clipper.config import Settings
from clipper.errors import (
    DownloadFailed,
    InvalidMedia,
    JobCancelled,
    MediaNotFound,
    MediaTooLarge,
    MediaTooLong,
    NoMediaFound,
    UnsupportedUrl,
)
from clipper.job.request import MediaInfo
from clipper.media.probe import probe_media
from clipper.media.spaces import is_space_url, not_ready_wait
from clipper.media.ssrf import GuardedYoutubeDL
from clipper.media.transfer import TICK_S, TransferLimits, TransferWatch
from clipper.media.urls import canonical_url, check_url, is_local, local_path
from clipper.media.ytdlp_errors import clean_message, map_ytdlp_error, short_url
from clipper.store.files import writing

log = structlog.get_logger(__name__)

ProgressFn = Callable[[int, int | None], None]
StopFn = Callable[[], bool]
NoteFn = Callable[[str | None], None]

SOURCE_STEM = "source"
_COPY_CHUNK = 1 << 20


class DownloadResult(BaseModel):
    path: Path
    info: MediaInfo


class _StopRequested(yt_dlp.utils.DownloadCancelled):
    """Raised from the progress hook when the caller asks us to stop; yt-dlp lets it through untouched."""


class _TooLarge(yt_dlp.utils.DownloadCancelled):
    """Raised from the progress hook when a download without Content-Length grows past the size limit
    (yt-dlp only checks max_filesize against Content-Length, before the transfer)."""


def download(
    url: str,
    dest_dir: Path,
    settings: Settings,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    started_at: datetime | None = None,
    on_note: NoteFn | None = None,
) -> DownloadResult:
    """Download (or copy) the media at `url` to `dest_dir/source.<ext>`. Safe to call again after a failure:
    a finished file is reused and a partial one resumed.

    `started_at`: when the stage's first attempt was scheduled (default now), the start of a Space's wait for
    its recording; `on_note` hears what the download is waiting for (None once it no longer waits)."""
    check_url(url, settings)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if should_stop is not None and should_stop():
        raise JobCancelled(f"download of {short_url(url)} was cancelled")
    if is_local(url):
        result = _copy_local(url, dest_dir, settings, on_progress, should_stop)
    else:
        result = _download_until_ready(url, dest_dir, settings, on_progress, should_stop, started_at, on_note)
    # A direct link's duration is known only now, from the file: refuse before converting hours of audio.
    # (The conversion stage checks the decoded audio again; this is the early, cheap check.)
    duration = result.info.duration_s
    if duration and duration > settings.max_duration_s:
        raise _too_long(url, duration, settings)
    return result


# --- local files ---


def _copy_local(
    url: str, dest_dir: Path, settings: Settings, on_progress: ProgressFn | None, should_stop: StopFn | None
) -> DownloadResult:
    src = local_path(url)
    size = src.stat().st_size
    if size > settings.max_download_bytes:
        raise MediaTooLarge(
            f"{src} is {size} bytes; the limit is {settings.max_download_bytes} "
            "(set CLIPPER_MAX_DOWNLOAD_BYTES to change it)"
        )
    probe = probe_media(src)  # fail on a non-media file before copying it
    dest = dest_dir / f"{SOURCE_STEM}{src.suffix.lower()}"
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        with writing(dest.name), open(src, "rb") as fin, open(tmp, "wb") as fout:
            copied = 0
            while block := fin.read(_COPY_CHUNK):
                if should_stop is not None and should_stop():
                    raise JobCancelled(f"copy of {src} was cancelled")
                fout.write(block)
                copied += len(block)
                if on_progress is not None:
                    on_progress(copied, size)
        os.replace(tmp, dest)  # the destination is either absent or complete
    finally:
        tmp.unlink(missing_ok=True)
    info = MediaInfo(
        title=probe.title or src.stem,
        uploader=probe.artist,
        duration_s=probe.duration_s,
        source_url=canonical_url(url),
        webpage_url=None,
        extractor="local",
        filesize=dest.stat().st_size,
    )
    return DownloadResult(path=dest, info=info)


# --- http(s) via yt-dlp ---


def _download_until_ready(
    url: str, dest_dir: Path, settings: Settings, on_progress: ProgressFn | None, should_stop: StopFn | None,
    started_at: datetime | None, on_note: NoteFn | None,
) -> DownloadResult:
    """`_download_remote`, asked again while a Space's recording answers 404 (`spaces.not_ready_wait`)."""
    started_at = started_at or datetime.now(timezone.utc)
    while True:
        try:
            return _download_remote(url, dest_dir, settings, on_progress, should_stop)
        except MediaNotFound as err:
            elapsed = max(0.0, (datetime.now(timezone.utc) - started_at).total_seconds())
            wait = not_ready_wait(url, err, elapsed, settings)
            if wait is None:
                if err.http_status == 404 and is_space_url(url, settings):
                    waited = clock.duration(elapsed, hours=True)
                    raise MediaNotFound(f"{err.message}, still {waited} after the first try; a Space without "
                                        "a recording stays missing (CLIPPER_SPACE_NOT_READY_S sets how long to wait)",
                                        err.http_status) from err
                raise
            if on_note is not None:
                on_note(f"waiting for the recording (HTTP 404), asking again in {wait:.0f} s")
            _pause(wait, should_stop, url)
        finally:
            if on_note is not None:
                on_note(None)


def _pause(seconds: float, should_stop: StopFn | None, url: str) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if should_stop is not None and should_stop():
            raise JobCancelled(f"download of {short_url(url)} was cancelled")
        time.sleep(min(left, TICK_S))


class YtdlpLogger:
    """Keeps yt-dlp's own output off stdout/stderr: to structlog at debug, plus the last lines for diagnosis
    (yt-dlp reports some outcomes, like the max-filesize abort, only as a log line)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines: deque[str] = deque(maxlen=50)

    def _keep(self, level: str, msg: str) -> None:
        self.lines.append(msg)
        log.debug("yt-dlp", level=level, message=msg, url=short_url(self.url))

    def debug(self, msg: str) -> None:
        self._keep("debug", msg)

    def info(self, msg: str) -> None:
        self._keep("info", msg)

    def warning(self, msg: str) -> None:
        self._keep("warning", msg)

    def error(self, msg: str) -> None:
        self._keep("error", msg)

    def said(self, fragment: str) -> bool:
        return any(fragment in line for line in self.lines)


def _ydl_options(dest_dir: Path, settings: Settings, logger: YtdlpLogger, hook: Callable[[dict], None]) -> dict:
    return {
        "format": "bestaudio/best",
        "outtmpl": str(dest_dir / f"{SOURCE_STEM}.%(ext)s"),
        "continuedl": True,  # resume source.<ext>.part with a Range request
        "overwrites": False,  # a finished source.<ext> from an earlier attempt is reused
        "noplaylist": True,
        "extract_flat": "in_playlist",  # a playlist URL is refused, so don't resolve every entry first
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger,
        "progress_hooks": [hook],
        "socket_timeout": settings.download_socket_timeout_s,
        "max_filesize": settings.max_download_bytes,
        # Temporal retries the stage with backoff and shows the attempts; retries inside yt-dlp would hide them.
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "skip_unavailable_fragments": False,  # a missing fragment is a failure, not a silently shorter file
        "updatetime": False,
        # An HLS download stays the fragments' bytes end to end (ffmpeg reads MPEG-TS whatever the name): no remux
        # by an ffmpeg that yt-dlp may or may not find on PATH, so the same media gives the same source.* file.
        "fixup": "never",
        # yt-dlp's own HLS/DASH code fetches through the guarded request handler (see ssrf.py); an external
        # ffmpeg would fetch every fragment and redirect unseen.
        "external_downloader": {"default": "native"},
    }


def _download_remote(
    url: str, dest_dir: Path, settings: Settings, on_progress: ProgressFn | None, should_stop: StopFn | None
) -> DownloadResult:
    logger = YtdlpLogger(url)
    watch = TransferWatch(TransferLimits.from_settings(settings), should_stop)
    what = f"download of {short_url(url)}"

    def hook(status: dict[str, Any]) -> None:
        if should_stop is not None and should_stop():
            raise _StopRequested("stop requested")
        if (status.get("downloaded_bytes") or 0) > settings.max_download_bytes:
            raise _TooLarge("over max_download_bytes")
        if on_progress is not None and status.get("status") in ("downloading", "finished"):
            total = status.get("total_bytes") or status.get("total_bytes_estimate")
            on_progress(int(status.get("downloaded_bytes") or 0), int(total) if total else None)

    try:
        # Every request yt-dlp makes, and every redirect it follows, passes check_url first (SSRF guard); every
        # connection's bytes count for the watchdog, which can end them.
        with watch.watching(), GuardedYoutubeDL(_ydl_options(dest_dir, settings, logger, hook), settings, watch) as ydl:
            # Extract (and pick a format) first, check it, then download from the same info dict, so the page
            # is fetched once. A direct media link still costs two GETs: the generic extractor's look at the
            # headers, then the transfer.
            info = ydl.extract_info(url, download=False)
            _check_info(url, info, settings)
            info = ydl.process_ie_result(info, download=True)
            path = _downloaded_path(ydl, info)
    except _StopRequested as e:
        raise JobCancelled(f"{what} was cancelled") from e
    except _TooLarge as e:
        for part in dest_dir.glob(f"{SOURCE_STEM}.*.part"):
            part.unlink(missing_ok=True)  # never resumable into something we would accept
        raise _too_large(url, settings) from e
    except yt_dlp.utils.YoutubeDLError as e:
        raise (watch.error(what) or map_ytdlp_error(url, e)) from e
    except OSError as e:  # a socket the watchdog shut, outside yt-dlp's own error handling
        if (ended := watch.error(what)) is None:
            raise
        raise ended from e

    if path is None or not path.is_file():
        if (ended := watch.error(what)) is not None:
            raise ended
        if logger.said("larger than max-filesize"):
            raise _too_large(url, settings)
        last = logger.lines[-1] if logger.lines else "no reason given"
        raise DownloadFailed(f"downloading {short_url(url)} produced no file ({clean_message(last)})")
    return DownloadResult(path=path, info=_media_info(url, info, path))


def _too_large(url: str, settings: Settings) -> MediaTooLarge:
    return MediaTooLarge(
        f"{short_url(url)} is larger than the limit of {settings.max_download_bytes} bytes "
        "(set CLIPPER_MAX_DOWNLOAD_BYTES to change it)"
    )


def _check_info(url: str, info: dict[str, Any] | None, settings: Settings) -> None:
    """Refuse before downloading what we already know we will not handle."""
    if not info:
        raise NoMediaFound(f"no audio or video found at {short_url(url)}")
    if info.get("_type") in ("playlist", "multi_video"):
        count = len(info.get("entries") or [])
        raise UnsupportedUrl(
            f"{short_url(url)} is a playlist ({count} items); submit it as a batch, one job per item"
        )
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise UnsupportedUrl(f"{short_url(url)} is a live stream; submit the recording once the stream has ended")
    formats = info.get("requested_formats") or [info]
    sizes = [f.get("filesize") or f.get("filesize_approx") for f in formats]
    if all(sizes) and sum(sizes) > settings.max_download_bytes:
        raise MediaTooLarge(
            f"{short_url(url)} is about {sum(sizes)} bytes; the limit is {settings.max_download_bytes} bytes "
            "(set CLIPPER_MAX_DOWNLOAD_BYTES to change it)"
        )
    duration = info.get("duration")
    if duration and duration > settings.max_duration_s:
        raise _too_long(url, duration, settings)


def _too_long(url: str, duration: float, settings: Settings) -> MediaTooLong:
    return MediaTooLong(
        f"{short_url(url)} is {clock.duration(duration, hours=True)} long; the limit is "
        f"{clock.duration(settings.max_duration_s, hours=True)} "
        "(set CLIPPER_MAX_DURATION_S to change it)"
    )


def _downloaded_path(ydl: yt_dlp.YoutubeDL, info: dict[str, Any]) -> Path | None:
    for item in info.get("requested_downloads") or []:
        if item.get("filepath"):
            return Path(item["filepath"])
    name = ydl.prepare_filename(info)
    return Path(name) if name else None


def _media_info(url: str, info: dict[str, Any], path: Path) -> MediaInfo:
    title, uploader, duration = info.get("title"), info.get("uploader"), info.get("duration")
    try:
        probe = probe_media(path)
    except (InvalidMedia, MediaNotFound):
        probe = None  # best effort here; the conversion stage reports unreadable media with its own error
    if probe is not None:
        # The generic extractor titles a direct link after its file name (title == id); the file's tag is better.
        if probe.title and (not title or title == info.get("id")):
            title = probe.title
        uploader = uploader or probe.artist
        duration = duration or probe.duration_s
    return MediaInfo(
        title=title,
        uploader=uploader,
        duration_s=float(duration) if duration else None,
        source_url=canonical_url(url),
        webpage_url=info.get("webpage_url"),
        extractor=info.get("extractor_key") or info.get("extractor"),
        filesize=path.stat().st_size,
    )
