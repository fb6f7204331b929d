"""16 kHz mono audio read a block at a time, so diarizing three hours holds minutes of samples, not hours.

The job's audio is the download stage's 16 kHz mono 16-bit WAV: read straight from the file with `wave`
(seek + read, no decoder). Anything else (benchmarks, tests, other formats) is decoded once into memory.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


class AudioSource:
    """`len(source)` samples, `source.read(start, count)` → float32 in [-1, 1] (zero-padded past the end)."""

    def __init__(self, samples: np.ndarray | None = None, path: Path | None = None) -> None:
        self._samples = None if samples is None else np.asarray(samples, dtype=np.float32)
        self._wave = None
        if self._samples is None:
            if path is None:
                raise ValueError("AudioSource needs samples or a path")
            self._wave = _open_wav(path)
            if self._wave is None:
                from faster_whisper.audio import decode_audio

                self._samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
        self._length = len(self._samples) if self._samples is not None else self._wave.getnframes()

    def __len__(self) -> int:
        return self._length

    @property
    def duration_s(self) -> float:
        return self._length / SAMPLE_RATE

    def read(self, start: int, count: int) -> np.ndarray:
        out = np.zeros(count, np.float32)
        start = max(0, start)
        end = min(self._length, start + count)
        if end <= start:
            return out
        if self._samples is not None:
            out[:end - start] = self._samples[start:end]
        else:
            self._wave.setpos(start)
            raw = np.frombuffer(self._wave.readframes(end - start), dtype="<i2")
            out[:len(raw)] = raw.astype(np.float32) / 32768.0
        return out

    def close(self) -> None:
        if self._wave is not None:
            self._wave.close()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _open_wav(path: Path) -> wave.Wave_read | None:
    """The file as a readable WAV when it is 16 kHz mono 16-bit PCM, else None (decode it instead)."""
    try:
        reader = wave.open(str(path), "rb")
    except (wave.Error, EOFError, OSError):
        return None
    if (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) != (SAMPLE_RATE, 1, 2):
        reader.close()
        return None
    return reader
