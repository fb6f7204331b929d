"""Decoding windows cut in pauses (clipper/asr/quiet.py), on synthetic bursts and on the real sample."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from clipper.asr.base import SAMPLE_RATE
from clipper.asr.quiet import QUIET_S, WINDOW_S, quiet_profile, speech_windows

DATA = Path(__file__).parent.parent / "data"


def bursts(seconds: float, on_s: float = 2.2, off_s: float = 0.6, seed: int = 7) -> tuple[np.ndarray, list]:
    """Noise bursts of `on_s` separated by `off_s` of digital silence; returns samples and the gaps."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    gaps, t = [], 0.0
    while t < seconds:
        a, b = int(t * SAMPLE_RATE), int(min(seconds, t + on_s) * SAMPLE_RATE)
        out[a:b] = rng.uniform(-0.3, 0.3, b - a)
        gaps.append((t + on_s, t + on_s + off_s))
        t += on_s + off_s
    return out, gaps


def test_windows_are_short_contiguous_and_cut_in_gaps():
    samples, gaps = bursts(130.0)
    windows = speech_windows(samples)
    assert windows[0][0] == 0.0 and windows[-1][1] == pytest.approx(130.0, abs=1e-3)
    assert all(end - start <= WINDOW_S + 1e-6 for start, end in windows)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))  # no gap, no overlap
    assert len(windows) == 5  # ⌈130 / 29.5⌉: the cuts are late in each window, not every pause
    for _, cut in windows[:-1]:
        assert any(lo <= cut <= hi for lo, hi in gaps), f"cut at {cut} s is inside a burst"


def test_short_audio_is_one_window_and_silence_none():
    samples, _ = bursts(12.0)
    assert speech_windows(samples) == [(0.0, 12.0)]
    assert speech_windows(np.zeros(60 * SAMPLE_RATE, dtype=np.float32)) == []
    assert speech_windows(np.zeros(0, dtype=np.float32)) == []


def test_silent_windows_are_left_out():
    """40 s of silence between two stretches of bursts: no window is spent on the silence alone."""
    head, _ = bursts(20.0)
    tail, _ = bursts(20.0, seed=8)
    samples = np.concatenate([head, np.zeros(70 * SAMPLE_RATE, dtype=np.float32), tail])
    windows = speech_windows(samples)
    for start, end in windows:
        span = samples[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        assert np.abs(span).max() > 0.01, f"window {start}-{end} is silent"
    assert windows[0][0] == 0.0 and windows[-1][1] == pytest.approx(110.0, abs=1e-3)
    assert len(windows) < 110 / WINDOW_S + 1


def test_windows_of_real_speech_end_in_its_quietest_moments():
    raw = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(DATA / "sample.mp3"), "-ac", "1",
         "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    windows = speech_windows(samples)
    assert len(windows) >= 2
    typical = float(np.median(quiet_profile(samples)))
    for _, cut in windows[:-1]:
        around = samples[int((cut - QUIET_S / 2) * SAMPLE_RATE): int((cut + QUIET_S / 2) * SAMPLE_RATE)]
        assert float(np.sqrt(np.mean(np.square(around)))) < 0.25 * typical, f"cut at {cut} s is not in a pause"
