"""Where the sound changes: how differently the audio just before a moment and just after it sounds.

Chapters need evidence where the transcript has none. A recording made of parts — a guest's call after the studio
talk, an interview after a report, a clip played in a podcast — changes its *sound* at each seam: the voices, the
microphone and room (the spectral envelope of the speech), the band the line carries (a telephone stops at
3.4 kHz) and the noise between the words. None of that needs words, so it holds where the speech-to-text wrote
nothing (speech in a language the model does not know, music under talk) and where it ran one segment across
the seam.

`SoundProfile.of(audio)` reads the audio a block at a time, and keeps per half second the sums of the speech
frames' log mel spectrum (24 bands, 25 ms frames every 10 ms; speech: loud enough) and of the other frames'. `change(t)` then
compares the `window_s` before `t` with the `window_s` after it, in O(bands) from running sums: per band the
difference of the speech frames' means in units of their spread (a Fisher distance: how many standard
deviations the two sides' voices/channels lie apart), averaged over the bands, plus the same for the pauses'
noise floor. A side with too little speech gives no evidence (0). Digital silence (the gap an editor leaves)
counts as neither speech nor noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipper.speakers.audio import SAMPLE_RATE, AudioSource

FRAME, HOP, FFT = 400, 160, 512  # 25 ms frames every 10 ms
BANDS = 24  # mel bands from 60 Hz to 8 kHz
SPEECH_BELOW_PEAK_DB = 35.0  # a frame is speech within this of the recording's loud frames (95th percentile)...
SPEECH_FLOOR_DB = -55.0  # ... and above this (dBFS)
DIGITAL_SILENCE_DB = -90.0  # frames quieter than this are an editor's silence: neither speech nor noise floor
MIN_SPEECH_S = 3.0  # a side needs this much speech to say how it sounds
BLOCK_S = 60.0  # audio read at once
TICK = 50  # frames summed together: windows are placed to half a second
TICK_S = TICK * HOP / SAMPLE_RATE


def _mel(bands: int = BANDS, lo: float = 60.0, hi: float = SAMPLE_RATE / 2) -> np.ndarray:
    """(bands, FFT//2+1) triangular mel filters."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def inv(m):
        return 700 * (10 ** (m / 2595) - 1)

    edges = inv(np.linspace(mel(lo), mel(hi), bands + 2))
    freqs = np.linspace(0, SAMPLE_RATE / 2, FFT // 2 + 1)
    out = np.zeros((bands, len(freqs)))
    for b in range(bands):
        a, c, d = edges[b : b + 3]
        out[b] = np.clip(np.minimum((freqs - a) / (c - a), (d - freqs) / (d - c)), 0, None)
    return out


def _frames_db(x: np.ndarray, filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame energy dBFS, log mel dB per frame) of `x`."""
    if len(x) < FRAME:
        return np.zeros(0), np.zeros((0, filters.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP].astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), FFT)) ** 2 / FRAME
    return energy, 10 * np.log10(power @ filters.T + 1e-12)


@dataclass
class SoundProfile:
    """Running sums per tick (`TICK` frames: half a second), so any window's statistics cost O(bands) and three
    hours keep ~25 MB."""

    speech_n: np.ndarray  # (ticks+1,) running count of speech frames
    speech_sum: np.ndarray  # (ticks+1, bands) running sum of their log mel
    speech_sq: np.ndarray  # (ticks+1, bands) ... of its square
    floor_n: np.ndarray  # the same for the frames between speech (not digital silence)
    floor_sum: np.ndarray
    floor_sq: np.ndarray

    @classmethod
    def of(cls, audio: AudioSource) -> SoundProfile:
        """Two passes a block at a time: the frames' loudness (what counts as speech is relative to the
        recording's loud frames), then per tick the sums of the speech and floor frames' log mel."""
        filters = _mel()
        block = int(BLOCK_S * SAMPLE_RATE)  # a whole number of ticks
        starts = range(0, len(audio), block)

        def frames(start: int, spectra: bool) -> tuple[np.ndarray, np.ndarray]:
            size = min(block, len(audio) - start)
            e, m = _frames_db(audio.read(start, size + FRAME - HOP), filters if spectra else filters[:1])
            keep = min(len(e), -(-size // HOP))
            return e[:keep], m[:keep]

        energy = np.concatenate([frames(s, False)[0] for s in starts] or [np.zeros(0)])
        real = energy > DIGITAL_SILENCE_DB
        loud = np.percentile(energy[real], 95) if real.any() else 0.0
        speech_all = real & (energy > max(loud - SPEECH_BELOW_PEAK_DB, SPEECH_FLOOR_DB))
        ticks = -(-len(energy) // TICK)
        out = {k: np.zeros((ticks, BANDS)) for k in ("ss", "sq", "fs", "fq")}
        counts = {k: np.zeros(ticks) for k in ("s", "f")}
        for s in starts:
            e, mel = frames(s, True)
            f0 = s // HOP
            speech = speech_all[f0 : f0 + len(e)]
            tick = (f0 + np.arange(len(e))) // TICK
            floor = real[f0 : f0 + len(e)] & ~speech
            for mask, n, total, square in ((speech, "s", "ss", "sq"), (floor, "f", "fs", "fq")):
                np.add.at(counts[n], tick[mask], 1)
                np.add.at(out[total], tick[mask], mel[mask])
                np.add.at(out[square], tick[mask], mel[mask] ** 2)

        def run(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])

        return cls(run(counts["s"]), run(out["ss"]), run(out["sq"]), run(counts["f"]), run(out["fs"]), run(out["fq"]))

    @property
    def duration_s(self) -> float:
        return (len(self.speech_n) - 1) * TICK_S

    def _side(self, n: np.ndarray, s: np.ndarray, q: np.ndarray, a: int, b: int) -> tuple[float, np.ndarray, np.ndarray]:
        count = float(n[b] - n[a])
        if count < 1:
            return 0.0, np.zeros(s.shape[1]), np.zeros(s.shape[1])
        mean = (s[b] - s[a]) / count
        return count, mean, np.maximum((q[b] - q[a]) / count - mean**2, 1.0)  # spread of at least 1 dB

    def change(self, t: float, window_s: float) -> float:
        """How far apart the `window_s` before `t` and the `window_s` after it sound (0: no evidence)."""
        last = len(self.speech_n) - 1
        at = round(t / TICK_S)
        w = round(window_s / TICK_S)
        a, b = max(0, at - w), max(0, min(last, at))
        c = min(last, at + w)
        need = MIN_SPEECH_S * SAMPLE_RATE / HOP
        n1, m1, v1 = self._side(self.speech_n, self.speech_sum, self.speech_sq, a, b)
        n2, m2, v2 = self._side(self.speech_n, self.speech_sum, self.speech_sq, b, c)
        if n1 < need or n2 < need:
            return 0.0
        out = float(np.mean(np.abs(m1 - m2) / np.sqrt((v1 + v2) / 2)))
        f1, g1, u1 = self._side(self.floor_n, self.floor_sum, self.floor_sq, a, b)
        f2, g2, u2 = self._side(self.floor_n, self.floor_sum, self.floor_sq, b, c)
        if min(f1, f2) >= need:
            out += float(np.mean(np.abs(g1 - g2) / np.sqrt((u1 + u2) / 2)))
        return out


def sound_profile(audio: Path) -> SoundProfile:
    """The sound profile of an audio file (the job's 16 kHz WAV is read a block at a time)."""
    with AudioSource(path=audio) as source:
        return SoundProfile.of(source)
