"""ffmpeg invocations (through ffmpeg-python) with failures turned into typed, readable errors.

The binary is the system `ffmpeg` when there is one, else the static build shipped by PyPI `imageio-ffmpeg`,
so a pip-only install works. That build has no ffprobe: probing lives in `probe.py` (PyAV).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import ffmpeg

from clipper.errors import (
    STORAGE_FULL_WORDING,
    InvalidMedia,
    MediaNotFound,
    NoAudioStream,
    StorageFull,
    is_storage_full,
    storage_full,
)
from clipper.asr.base import StopRequested
from clipper.media.probe import probe_media
from clipper.store.files import temp_path

# stderr fragments that mean "this media has no audio we could map" (wording varies across ffmpeg versions).
_NO_AUDIO = ("does not contain any stream", "matches no streams")
_INVALID = (
    "invalid data found",
    "moov atom not found",
    "end of file",
    "could not find codec parameters",
    "failed to find two consecutive mpeg audio frames",
    "invalid argument",
)
# Lines that only repeat the failure in general terms; the line before them says what went wrong.
_GENERIC_LINE = re.compile(r"^(error opening (input|output) files?|conversion failed!?$)", re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: the system one if on PATH, else the one bundled with imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # imported lazily: only needed when there is no system ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def first_error_line(stderr: bytes | str | None, limit: int = 300) -> str:
    """The most telling line of ffmpeg's stderr, without the `[mp3 @ 0x...]` prefix, for user messages."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [_LOG_PREFIX.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    specific = [line for line in lines if not _GENERIC_LINE.match(line)]
    chosen = (specific or lines or ["ffmpeg failed without saying why"])[0]
    return chosen if len(chosen) <= limit else chosen[: limit - 3] + "..."


STOP_POLL_S = 0.1  # how often a running ffmpeg's caller is asked whether to stop (cancel, pause --now)


def run_ffmpeg(stream: ffmpeg.nodes.OutputStream, what: str, should_stop: Callable[[], bool] | None = None) -> None:
    """Run an ffmpeg-python stream with our binary; `ffmpeg.Error` (with stderr) if it fails.

    Under a file-size limit (`ulimit -f`, RLIMIT_FSIZE) ffmpeg is killed by SIGXFSZ before it can say a word
    (Python restores that signal's default in children): that is a `StorageFull`, not a broken input.
    With `should_stop`, asked every `STOP_POLL_S`: when it turns true ffmpeg is killed and `StopRequested`
    raised (converting hours of audio takes seconds; a cancel must not wait for it).
    """
    args = stream.compile(cmd=ffmpeg_exe(), overwrite_output=True)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while True:
        try:
            out, err = proc.communicate(timeout=STOP_POLL_S if should_stop is not None else None)
            break
        except subprocess.TimeoutExpired:
            if should_stop is not None and should_stop():
                proc.kill()
                proc.communicate()
                raise StopRequested(f"stopped while writing {what}") from None
    if proc.returncode == -signal.SIGXFSZ:
        raise storage_full(what, "file size limit exceeded")
    if proc.returncode != 0:
        raise ffmpeg.Error("ffmpeg", out, err)


def storage_full_in(stderr: bytes | str | None, what: str) -> StorageFull | None:
    """A `StorageFull` if ffmpeg's stderr says its output could not be written for lack of room, else None."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    lowered = text.lower()
    for wording in STORAGE_FULL_WORDING:
        if wording in lowered:
            return storage_full(what, wording.capitalize())
    return None


def _raise_for_ffmpeg_error(src: Path, stderr: bytes | None, what: str = "the converted audio") -> NoReturn:
    text = (stderr or b"").decode("utf-8", "replace")
    lowered = text.lower()
    reason = first_error_line(text)
    # First: not the media's fault, and a retry (maybe on another worker) can succeed.
    if (full := storage_full_in(text, what)) is not None:
        raise full
    if any(fragment in lowered for fragment in _NO_AUDIO):
        probe_media(src)  # a still image (a PNG renamed .mp3) is not media at all: InvalidMedia, not NoAudioStream
        raise NoAudioStream(f"{src.name} has no audio track to transcribe")
    if "no such file or directory" in lowered and not src.exists():
        raise MediaNotFound(f"{src} does not exist")
    if src.exists() and src.stat().st_size == 0:
        raise InvalidMedia(f"{src.name} is empty")
    if any(fragment in lowered for fragment in _INVALID):
        raise InvalidMedia(f"{src.name} is not a readable audio or video file ({reason})")
    raise InvalidMedia(f"could not convert {src.name} to audio: {reason}")


def to_wav16k_mono(src: Path, dst: Path, should_stop: Callable[[], bool] | None = None) -> None:
    """Convert any media to 16 kHz mono 16-bit PCM WAV, the input speech engines expect.

    Writes to a temp file beside `dst` and renames it into place, so `dst` is either complete or absent.
    The caller records it in the manifest. `should_stop`: see `run_ffmpeg`.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dst)  # a killed write leaves it for ArtifactStore.discard_temporary to find
    stream = (
        ffmpeg.input(str(src))
        .output(str(tmp), format="wav", vn=None, ac=1, ar=16000, acodec="pcm_s16le")
        # -nostdin: never wait for keyboard input in a worker; errors only, so stderr stays short.
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    )
    try:
        run_ffmpeg(stream, dst.name, should_stop)
        os.replace(tmp, dst)
    except ffmpeg.Error as e:
        _raise_for_ffmpeg_error(src, e.stderr, dst.name)
    except OSError as e:
        if is_storage_full(e):
            raise storage_full(dst.name, e) from e
        raise
    finally:
        tmp.unlink(missing_ok=True)
