"""Where audio is quiet: the loudness scan behind chunk cuts and decoding windows.

Whisper reads audio in windows of at most 30 s. Cutting a window in the middle of a word loses or mangles
that word, so both the chunk planner (clipper/asr/chunks.py, cuts every few minutes) and the window planner
here (cuts every < 30 s inside a chunk) cut in the quietest stretch near where they would like to cut.

`speech_windows` replaces faster-whisper's Silero VAD for batched decoding: the VAD (an ONNX model run over
every 32 ms of audio) cost ~22 % of a chunk's decoding time on 2 cores (py-spy, bench/chunked_vs_single.py),
while this scan is a few numpy passes. Windows that are silent throughout are skipped, as the VAD would.
"""

from __future__ import annotations

import numpy as np

from clipper.asr.base import SAMPLE_RATE, floor_ms, r3

FRAME = SAMPLE_RATE // 100  # 10 ms frames for the loudness scan
QUIET_S = 0.3  # the stretch whose RMS decides where to cut
QUIET_FRAMES = int(round(QUIET_S * SAMPLE_RATE / FRAME))
PAUSE_BUCKET_S = 0.25  # pause lengths that differ by less are "about the same" when choosing a cut
WINDOW_S = 29.5  # longest decoding window: Whisper's 30 s, with a margin for rounding
MIN_WINDOW_S = 18.0  # a window is cut no earlier than this: fewer, fuller windows decode faster
# A cut leaves at least this much for the last window: on a sliver of audio Whisper invents words ("Thank you.").
MIN_LAST_S = 1.0
# No speech hides in audio whose loudest sample is below -50 dBFS (see clipper/asr/local.py).
SILENCE_PEAK = 10 ** (-50 / 20)


def quiet_profile(samples: np.ndarray) -> np.ndarray:
    """RMS of every 0.3 s stretch of `samples` starting on a 10 ms frame (index i = frames i…i+29)."""
    frames = len(samples) // FRAME
    if frames < QUIET_FRAMES:
        return np.zeros(0)
    energy = np.square(samples[: frames * FRAME].astype(np.float64)).reshape(frames, FRAME).sum(axis=1)
    cumulative = np.concatenate(([0.0], np.cumsum(energy)))
    window = cumulative[QUIET_FRAMES:] - cumulative[:-QUIET_FRAMES]
    return np.sqrt(np.maximum(window, 0.0) / (QUIET_FRAMES * FRAME))


def quietest_point(samples: np.ndarray, lo: float, nominal: float) -> float:
    """The middle of the quietest 0.3 s stretch of `samples`, which start at `lo` seconds.

    Stretches as quiet as the quietest one (within a hair) form runs (pauses). A clearly longer pause wins
    (lengths compared in PAUSE_BUCKET_S steps, up to 1 s: a sentence break over a breath); among pauses of
    about the same length, the one nearest `nominal`. The cut is the pause's middle.
    """
    rms = quiet_profile(samples)
    if rms.size == 0:
        return r3(lo + len(samples) / SAMPLE_RATE / 2)
    floor = float(rms.min())
    quiet = rms <= floor * 1.05 + 1e-5
    # Runs of consecutive quiet window starts: [first, last] indices.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    runs = list(zip(edges[::2], edges[1::2] - 1, strict=True))

    def middle(run: tuple[int, int]) -> float:
        first, last = run
        return lo + ((first + last + QUIET_FRAMES) / 2) * FRAME / SAMPLE_RATE

    def length_class(run: tuple[int, int]) -> int:
        seconds = (run[1] - run[0] + QUIET_FRAMES) * FRAME / SAMPLE_RATE
        return int(min(seconds, 1.0) / PAUSE_BUCKET_S)

    best = max(runs, key=lambda run: (length_class(run), -abs(middle(run) - nominal)))
    return r3(middle(best))


def _at(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def silent(samples: np.ndarray, start_s: float = 0.0, end_s: float | None = None) -> bool:
    """True if `samples` (16 kHz, [-1, 1]) between `start_s` and `end_s` never rise above SILENCE_PEAK."""
    lo = max(0, int(start_s * SAMPLE_RATE))
    hi = len(samples) if end_s is None else max(lo + 1, _at(end_s))
    span = samples[lo:hi]
    return span.size == 0 or float(np.abs(span).max()) < SILENCE_PEAK


def speech_windows(
    samples: np.ndarray, max_s: float = WINDOW_S, min_s: float = MIN_WINDOW_S
) -> list[tuple[float, float]]:
    """Decoding windows over 16 kHz `samples`: (start, end) seconds, each at most `max_s` long.

    Windows follow each other without gaps; each one but the last ends in the quietest stretch between
    `min_s` and `max_s` after its start (leaving the last at least MIN_LAST_S), preferring longer pauses and,
    among equal ones, the latest (fuller windows mean fewer passes of the encoder). Windows whose loudest sample
    is below -50 dBFS are left out.
    The last one ends at the audio's end rounded down to the millisecond (`floor_ms`): never past the last sample.
    """
    duration = floor_ms(len(samples) / SAMPLE_RATE)
    windows: list[tuple[float, float]] = []
    start = 0.0
    while duration - start >= 5e-4:  # times are whole milliseconds: at least 1 ms of audio is left
        end = duration
        if duration - start > max_s:
            lo = start + min(min_s, max_s / 2)
            hi = min(start + max_s, duration - MIN_LAST_S)
            end = quietest_point(samples[_at(lo): _at(hi)], lo, hi)
            end = r3(min(max(end, lo), hi))
        if not silent(samples, start, end):
            windows.append((start, end))
        start = end
    return windows
