"""What is in a media file (duration, streams, title), read with PyAV: the pip ffmpeg build has no ffprobe."""

from __future__ import annotations

from pathlib import Path

import av
from pydantic import BaseModel

from clipper.clock import duration
from clipper.config import Settings
from clipper.errors import InvalidMedia, MediaNotFound, MediaTooLong, NoAudioStream

# Demuxers for single still images: ffmpeg opens a PNG renamed .mp3 happily as a one-frame "video".
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "svg_pipe")
_ARTIST_KEYS = ("artist", "album_artist", "uploader")


class ProbeResult(BaseModel):
    duration_s: float | None = None
    has_audio: bool
    has_video: bool
    title: str | None = None
    artist: str | None = None
    format_name: str | None = None
    size: int


def _first(metadata: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = (metadata.get(key) or "").strip()
        if value:
            return value
    return None


def probe_media(path: Path) -> ProbeResult:
    """Open `path` with PyAV and report its streams, duration and tags. Raises `InvalidMedia` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise MediaNotFound(f"no file at {path}")
    size = path.stat().st_size
    if size == 0:
        raise InvalidMedia(f"{path.name} is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise InvalidMedia(f"{path.name} is not a readable audio or video file ({reason})") from e
    with container:
        format_name = container.format.name if container.format else None
        if format_name in _IMAGE_FORMATS:
            raise InvalidMedia(f"{path.name} is a still image ({format_name}), not audio or video")
        audio = next(iter(container.streams.audio), None)
        has_video = any(True for _ in container.streams.video)
        # Tags may be upper-case (Vorbis comments: TITLE) or in mixed case; compare case-insensitively.
        tags = {str(k).lower(): str(v) for k, v in (container.metadata or {}).items()}
        if audio is not None:
            for k, v in (audio.metadata or {}).items():
                tags.setdefault(str(k).lower(), str(v))
        duration_s: float | None = None
        if container.duration is not None and container.duration > 0:
            duration_s = container.duration / av.time_base  # container duration is in microseconds
        elif audio is not None and audio.duration is not None and audio.time_base is not None:
            duration_s = float(audio.duration * audio.time_base)
    return ProbeResult(
        duration_s=duration_s,
        has_audio=audio is not None,
        has_video=has_video,
        title=_first(tags, ("title",)),
        artist=_first(tags, _ARTIST_KEYS),
        format_name=format_name,
        size=size,
    )


def require_audio(probe: ProbeResult, settings: Settings) -> None:
    """Refuse media we cannot or must not transcribe: no audio track, or longer than the configured limit."""
    if not probe.has_audio:
        kind = "a video without sound" if probe.has_video else "a file without an audio track"
        raise NoAudioStream(f"the media is {kind}; there is nothing to transcribe")
    if probe.duration_s is not None and probe.duration_s > settings.max_duration_s:
        raise MediaTooLong(
            f"the media is {duration(probe.duration_s, hours=True)} long; the limit is "
            f"{duration(settings.max_duration_s, hours=True)} "
            "(set CLIPPER_MAX_DURATION_S to change it)"
        )
