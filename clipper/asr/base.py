"""The engine contract and the audio helpers every engine shares.

Engines know nothing of Temporal or of the artifact store: they turn a 16 kHz mono WAV into `Segment`s,
lazily, one at a time, with times that are absolute in the file.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from clipper.errors import InvalidMedia
from clipper.job.outputs import Segment

SAMPLE_RATE = 16_000


class StopRequested(Exception):
    """Raised by an engine (or the resumable driver) when `should_stop()` turned true between segments."""


@runtime_checkable
class AsrEngine(Protocol):
    name: str
    model: str | None

    def transcribe(
        self,
        audio: Path,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        language: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[Segment]:
        """Yield segments of `audio` (16 kHz mono WAV) from `start_s` to `end_s` (None: the end of the file),
        as the engine produces them; audio after `end_s` is not transcribed.

        Times are absolute in the file (already offset by `start_s`) and increasing. Segment ids are left at
        0; the caller numbers them. If `should_stop()` turns true, the engine stops before the next segment
        and raises `StopRequested`.
        """
        ...


def check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise StopRequested("transcription stopped on request")


def r3(value: float) -> float:
    """A plain Python float rounded to milliseconds (engines hand out numpy floats)."""
    return round(float(value), 3)


def floor_ms(seconds: float) -> float:
    """`seconds` rounded *down* to the millisecond: the end of a stretch of audio as clipper writes it.

    Times are kept in milliseconds, but audio ends on a sample (1/16 ms at 16 kHz). Rounding an audio's end to
    the nearest millisecond can put it up to half a millisecond past the last sample, and faster-whisper
    asserts when the windows it is given add up to more than the audio it holds. So every end that
    is "the end of the audio" — of the file, of a chunk, of the last decoding window — comes from here and
    never leaves the audio; at most 1 ms of a file's very end is not transcribed. The inner round removes
    float noise (1 ns, far below a sample) before flooring, so an end already in milliseconds stays put.
    """
    return math.floor(round(float(seconds) * 1000.0, 6)) / 1000.0


def within(t: float, start: float, end: float) -> float:
    """Time `t` in milliseconds, clamped to the audio [`start`, `end`] (`end` rounded down as `floor_ms`).

    The one clamp for times an engine hands out: a word Whisper places a hair past the end of its window or
    before its start stays inside the audio it was decoded from.
    """
    return r3(min(max(float(t), start), max(start, floor_ms(end))))


def _open_wav(path: Path) -> wave.Wave_read:
    try:
        return wave.open(str(path), "rb")
    except FileNotFoundError as exc:
        raise InvalidMedia(f"audio file {path.name} is missing") from exc
    except (wave.Error, EOFError) as exc:
        raise InvalidMedia(f"audio file {path.name} is not a readable WAV file: {exc}") from exc


def wav_duration(path: Path) -> float:
    """Duration in seconds from the WAV header."""
    with _open_wav(path) as w:
        rate = w.getframerate()
        return w.getnframes() / rate if rate else 0.0


def _is_pcm16_mono_16k(w: wave.Wave_read) -> bool:
    return w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2


def decode_wav16k(path: Path, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
    """Float32 mono samples in [-1, 1] from `start_s` to `end_s` (None: the end of the file).

    Our pipeline always produces 16 kHz s16 mono WAV, which is read directly (fast, no ffmpeg). Anything
    else falls back to faster-whisper's decoder, which resamples.
    """
    start_s = max(0.0, float(start_s))
    first = int(round(start_s * SAMPLE_RATE))
    last = None if end_s is None else max(first, int(round(float(end_s) * SAMPLE_RATE)))
    with _open_wav(Path(path)) as w:
        if _is_pcm16_mono_16k(w):
            n = w.getnframes()
            first, stop = min(first, n), n if last is None else min(last, n)
            w.setpos(first)
            raw = w.readframes(stop - first)
            return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0

    from faster_whisper import decode_audio

    samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    return np.ascontiguousarray(samples[first:last], dtype=np.float32)


def cut_wav(
    src: Path, dst: Path, start_s: float, chunk_frames: int = 1 << 20, end_s: float | None = None
) -> float:
    """Write the part of WAV `src` from `start_s` to `end_s` (None: the end) to `dst` (same format).

    Returns its duration in seconds."""
    with _open_wav(Path(src)) as r:
        rate = r.getframerate()
        first = min(int(math.floor(max(0.0, start_s) * rate)), r.getnframes())
        stop = r.getnframes() if end_s is None else max(first, min(int(round(end_s * rate)), r.getnframes()))
        r.setpos(first)
        with wave.open(str(dst), "wb") as w:
            w.setnchannels(r.getnchannels())
            w.setsampwidth(r.getsampwidth())
            w.setframerate(rate)
            remaining = stop - first
            while remaining > 0:
                block = r.readframes(min(chunk_frames, remaining))
                if not block:
                    break
                w.writeframes(block)
                remaining -= len(block) // (r.getsampwidth() * r.getnchannels())
        return (stop - first) / rate if rate else 0.0
