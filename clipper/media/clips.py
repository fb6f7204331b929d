"""Audio clips of quotes, cut with ffmpeg (through ffmpeg-python).

Cuts are sample-accurate: the source is decoded and then trimmed with the `atrim` filter, never seeked on the
input side or stream-copied, because an input-side seek in an MP3 lands on a frame or bitrate estimate and a
stream copy can only cut on packet boundaries, so a quote would start mid-word. The cost is decoding the
source up to the end of the clip; the pipeline's source is the 16 kHz mono WAV, which decodes at disk speed.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import ffmpeg

from clipper.errors import InvalidMedia, InvalidRequest, MediaNotFound
from clipper.media.ffmpeg import first_error_line, run_ffmpeg, storage_full_in
from clipper.media.probe import probe_media
from clipper.store.files import fsync_dir, temp_path

# format -> (encoder, muxer, extra output options). The muxer is named because the temp file's name ends in
# `.tmp`, so ffmpeg cannot guess it from the extension. `ipod` is the muxer ffmpeg itself picks for .m4a.
CLIP_FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp3": ("libmp3lame", "mp3", {"audio_bitrate": "64k"}),
    "wav": ("pcm_s16le", "wav", {}),
    "ogg": ("libvorbis", "ogg", {"audio_bitrate": "64k"}),
    "m4a": ("aac", "ipod", {"audio_bitrate": "64k"}),
}

SLUG_MAX_CHARS = 40
SLUG_MAX_WORDS = 6


def _codec(fmt: str) -> tuple[str, str, dict[str, str]]:
    try:
        return CLIP_FORMATS[fmt.lower()]
    except (KeyError, AttributeError):
        known = ", ".join(CLIP_FORMATS)
        raise InvalidRequest(f"unknown clip format {fmt!r}; use one of: {known}") from None


def _slug(text: str) -> str:
    """The first words of `text`, lower-case ASCII joined by hyphens, at most SLUG_MAX_CHARS long."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower().replace("'", ""))[:SLUG_MAX_WORDS]
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX_CHARS:
            break
        slug = candidate
    if not slug and words:  # a single word longer than the limit: cut it rather than lose it
        slug = words[0][:SLUG_MAX_CHARS]
    return slug or "clip"


def clip_name(rank: int, quote_text: str, fmt: str) -> str:
    """Artifact name of a quote's clip, e.g. `clips/01-durable-systems-are-boring.mp3`.

    The rank comes first so the clips sort in the quotes' order; the slug makes the file recognisable.
    """
    _codec(fmt)
    return f"clips/{rank:02d}-{_slug(quote_text)}.{fmt.lower()}"


def clip_span(start: float, end: float, padding_s: float, media_duration_s: float | None) -> tuple[float, float]:
    """[start, end) of the media a clip (or an audiogram) holds: the span padded, clamped to the media."""
    lo = max(0.0, start - padding_s)
    hi = end + padding_s if media_duration_s is None else min(media_duration_s, end + padding_s)
    return lo, hi


def clip_audio(audio: Path, lo: float, hi: float, fade_s: float) -> ffmpeg.nodes.FilterableStream:
    """The audio of [lo, hi) as an ffmpeg-python stream starting at 0, faded in and out (no click at either end;
    a fade longer than half the clip would overlap and swallow it, so it is shortened)."""
    length = hi - lo
    fade = min(fade_s, length / 2)
    stream = (
        ffmpeg.input(str(audio))
        .audio.filter("atrim", start=f"{lo:.6f}", end=f"{hi:.6f}")
        # atrim keeps the source's timestamps; restart them at 0 so the fades and the muxer see a clip.
        .filter("asetpts", "PTS-STARTPTS")
    )
    if fade > 0:
        stream = stream.filter("afade", type="in", start_time=0, duration=f"{fade:.6f}")
        stream = stream.filter("afade", type="out", start_time=f"{length - fade:.6f}", duration=f"{fade:.6f}")
    return stream


def encode_atomically(out: ffmpeg.nodes.OutputStream, tmp: Path, dst: Path, failed: str,
                      should_stop: Callable[[], bool] | None = None) -> None:
    """Run `out` (which writes `tmp`), fsync it and rename it to `dst`: `dst` is complete or absent. A full disk
    is a retryable `StorageFull` (no fault of the audio); any other ffmpeg failure an `InvalidMedia` that starts
    with `failed`. With `should_stop`, a stop kills ffmpeg (`StopRequested`)."""
    # -nostdin: never wait for keyboard input in a worker; errors only, so stderr stays short.
    out = out.global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    try:
        run_ffmpeg(out, dst.name, should_stop)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except ffmpeg.Error as e:
        if (full := storage_full_in(e.stderr, dst.name)) is not None:
            raise full from None
        raise InvalidMedia(f"{failed}: {first_error_line(e.stderr)}") from None


def cut_clip(
    audio: Path,
    dst: Path,
    start: float,
    end: float,
    *,
    padding_s: float = 0.5,
    fade_s: float = 0.05,
    fmt: str = "mp3",
    media_duration_s: float | None = None,
) -> float:
    """Cut [start - padding, end + padding] of `audio` (clamped to the media) into `dst`; return its duration.

    The clip is mono, re-encoded in `fmt` (mp3, wav, ogg or m4a), with a short fade in and out so it does not
    start or stop with a click. `media_duration_s` saves a probe when the caller already knows it. `dst` is
    written to a temp file beside it and renamed into place, so it is either complete or absent.
    """
    audio, dst = Path(audio), Path(dst)
    codec, muxer, extra = _codec(fmt)
    if not audio.is_file():
        raise MediaNotFound(f"no audio at {audio} to cut a clip from")
    if start < 0 or end <= start:
        raise InvalidRequest(f"invalid clip span {start:.3f}-{end:.3f} s: it must start at 0 or later, then end")
    if padding_s < 0 or fade_s < 0:
        raise InvalidRequest("clip padding and fade must not be negative")
    if media_duration_s is None:
        media_duration_s = probe_media(audio).duration_s
    if media_duration_s is not None and start >= media_duration_s:
        raise InvalidRequest(f"clip start {start:.3f} s is past the end of the media ({media_duration_s:.3f} s)")

    lo, hi = clip_span(start, end, padding_s, media_duration_s)
    stream = clip_audio(audio, lo, hi, fade_s)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dst)  # a killed write leaves it for ArtifactStore.discard_temporary to find
    out = stream.output(str(tmp), format=muxer, acodec=codec, ac=1, vn=None, map_metadata=-1, **extra)
    try:
        encode_atomically(out, tmp, dst, f"could not cut a clip from {audio.name}")
    finally:
        tmp.unlink(missing_ok=True)

    # Report what was written (encoders pad a little), falling back to the span asked for.
    try:
        probed = probe_media(dst).duration_s
    except InvalidMedia:
        probed = None
    return probed if probed else hi - lo
