"""Property tests: chunk spans and decoding windows never leave the audio, on any length and source rate.

The last chunk's speech windows ended past the audio's end (its length rounded *up* to the
next millisecond) and faster-whisper's batched pipeline failed with `AssertionError: non-negative timestamp
expected` on about half of all media longer than one chunk. Audio here is built as the product gets it: a
source at 8, 16, 22.05, 44.1 or 48 kHz (real speech from the committed sample, exact digital silence, room
noise, with leading and trailing silence and any number of samples) converted by `to_wav16k_mono`, then planned
(`plan_chunks`, `speech_windows`) for many examples and transcribed with the real tiny.en model for a few.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clipper.asr import get_engine
from clipper.asr.base import SAMPLE_RATE, decode_wav16k, floor_ms
from clipper.asr.chunks import merge_chunks, plan_chunks, transcribe_span
from clipper.asr.quiet import MIN_LAST_S, WINDOW_S, silent, speech_windows
from clipper.config import Settings
from clipper.job.messages import ChunkSpan
from clipper.job.outputs import Segment
from clipper.media.ffmpeg import to_wav16k_mono
from clipper.store.files import JsonlLog

SAMPLE = Path(__file__).parent.parent / "data" / "sample.mp3"
RATES = (8000, 16000, 22050, 44100, 48000)
KINDS = ("speech", "zero", "room")  # real speech, exact digital silence, quiet noise (not silent)
# Deterministic (CI runs the same examples every time) and no example database written into the checkout.
COMMON = dict(deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@cache
def speech_at(rate: int) -> np.ndarray:
    """The committed sample (54 s of speech) decoded by ffmpeg at `rate`, mono float32."""
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(SAMPLE),
                          "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


@dataclass(frozen=True)
class Layout:
    """A source recording: `pieces` of (kind, seconds, offset into the sample) at `rate`, then `extra` samples
    of the last piece's kind (so the length is any number of samples, not whole milliseconds)."""

    rate: int
    pieces: tuple[tuple[str, float, float], ...]
    extra: int

    def samples(self) -> np.ndarray:
        speech, rng, out = speech_at(self.rate), np.random.default_rng(13), []
        for i, (kind, seconds, offset) in enumerate(self.pieces):
            n = int(seconds * self.rate) + (self.extra if i == len(self.pieces) - 1 else 0)
            if kind == "speech":
                start = int(offset * len(speech)) % len(speech)
                out.append(np.resize(np.roll(speech, -start), n))
            elif kind == "zero":
                out.append(np.zeros(n, dtype=np.float32))
            else:
                out.append(rng.normal(0, 0.01, n).astype(np.float32))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def stretches(self) -> list[tuple[str, float, float]]:
        """(kind, start, end) of every piece, in seconds of the source."""
        out, t = [], 0.0
        for i, (kind, seconds, _) in enumerate(self.pieces):
            n = int(seconds * self.rate) + (self.extra if i == len(self.pieces) - 1 else 0)
            out.append((kind, t, t + n / self.rate))
            t += n / self.rate
        return out

    def to_wav16k(self, folder: Path) -> Path:
        """Written at its own rate and converted as the product converts every download."""
        src, dst = folder / f"source-{self.rate}.wav", folder / "audio.wav"
        pcm = (np.clip(self.samples(), -1, 1) * 32767).astype("<i2")
        with wave.open(str(src), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(pcm.tobytes())
        to_wav16k_mono(src, dst)
        return dst


@st.composite
def layouts(draw, min_s: float, max_s: float) -> Layout:
    """About `min_s`…`max_s` seconds: leading silence, 1–8 stretches of speech, digital silence or room noise
    (their lengths in random proportions), trailing silence or noise, and any number of extra samples."""
    rate = draw(st.sampled_from(RATES))
    total = draw(st.floats(min_s, max_s))
    lead = draw(st.sampled_from([0.0, 0.0, 0.4, 3.0]) | st.floats(0.0, 5.0))
    trail = draw(st.sampled_from([0.0, 0.0, 0.7]) | st.floats(0.0, 5.0))
    body = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0.02, 1.0), st.floats(0.0, 1.0)),
                         min_size=1, max_size=8))
    room, weight = max(0.05, total - lead - trail), sum(w for _, w, _ in body)
    pieces = [("zero", lead, 0.0), *((kind, w / weight * room, offset) for kind, w, offset in body),
              (draw(st.sampled_from(("zero", "room"))), trail, 0.0)]
    return Layout(rate=rate, pieces=tuple(p for p in pieces if p[1] > 0), extra=draw(st.integers(0, rate - 1)))


def check_spans(spans: list[ChunkSpan], n_samples: int) -> None:
    end_of_audio = n_samples / SAMPLE_RATE
    assert spans[0].start == 0.0 and [s.index for s in spans] == list(range(len(spans)))
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False)), "gap or overlap between chunks"
    assert all(s.end > s.start for s in spans) or n_samples < SAMPLE_RATE // 1000
    assert spans[-1].end == floor_ms(end_of_audio) <= end_of_audio, "the last chunk leaves the audio"


def check_windows(samples: np.ndarray) -> list[tuple[float, float]]:
    """Windows inside the audio, contiguous but for silent stretches, never a sliver; and what faster-whisper
    computes from them (`int(seconds × 16000)` per clip) never adds up to more audio than it holds."""
    windows = speech_windows(samples)
    length = len(samples) / SAMPLE_RATE
    edges = [0.0, *(t for w in windows for t in w), floor_ms(length)]
    assert edges == sorted(edges), f"windows overlap or go back: {windows}"
    for start, end in windows:
        assert 0.0 <= start < end <= length
        assert end - start <= WINDOW_S + 1e-9
        assert end - start >= min(MIN_LAST_S, floor_ms(length)) - 1e-9, f"a sliver of a window: {start}-{end}"
    for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):  # between the windows: only silence
        assert gap_end - gap_start < 1e-9 or silent(samples, gap_start, gap_end), \
            f"speech lost in {gap_start}-{gap_end}"
    clips = [(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in windows]
    assert all(0 <= a < b <= len(samples) for a, b in clips)
    assert sum(b - a for a, b in clips) <= len(samples), "windows hold more audio than there is"
    return windows


@settings(max_examples=300, **COMMON)
@given(seconds=st.floats(0.0, 95.0) | st.floats(29.0, 31.0), remainder=st.integers(0, 15),
       offset=st.floats(0.0, 1.0), zeros=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 40)), max_size=3))
@pytest.mark.slow
@example(seconds=35.989, remainder=9, offset=0.0, zeros=[])  # the reproduction that found it: its last chunk, 575833 samples
def test_windows_never_leave_the_audio(seconds, remainder, offset, zeros):
    """Many lengths of real speech (any number of 16 kHz samples: `remainder` of them past a whole millisecond)
    with stretches of exact digital silence."""
    speech = speech_at(SAMPLE_RATE)
    n = int(round(seconds * 1000)) * (SAMPLE_RATE // 1000) + remainder
    samples = np.resize(np.roll(speech, -int(offset * len(speech))), n)
    for at, silence_s in zeros:
        first = int(at * n)
        samples[first: first + int(silence_s * SAMPLE_RATE)] = 0.0
    check_windows(samples)


@pytest.mark.slow
@settings(max_examples=40, **COMMON)
@given(layout=layouts(min_s=0.2, max_s=200.0), target=st.floats(10.0, 120.0))
@example(layout=Layout(16000, (("speech", 54.0, 0.0), ("speech", 20.0, 0.0)), 9), target=40.0)
@example(layout=Layout(44100, (("speech", 306.5, 0.3),), 0), target=300.0)  # the 306.5 s WAV of the issue
def test_chunks_and_their_windows_never_leave_the_audio(layout, target, tmp_path_factory):
    """Any source rate, length, leading/trailing silence and chunk length: the spans tile the audio, and
    each span's windows, decoded as `transcribe_chunk` decodes them, stay inside it."""
    wav = layout.to_wav16k(tmp_path_factory.mktemp("plan"))
    n = len(decode_wav16k(wav))
    spans = plan_chunks(wav, target)
    check_spans(spans, n)
    for span in spans:
        check_windows(decode_wav16k(wav, span.start, span.end))


@pytest.fixture(scope="module")
def engine():
    settings_ = Settings(asr_engine="local", asr_model_path=None, asr_beam_size=5, asr_cpu_threads=0,
                         asr_compute_type="int8", asr_language="en", asr_chunk_s=40.0, asr_parallel=2,
                         asr_batch_size=4)
    return get_engine(settings_, "local", chunked=True)


def _words_in_order(segments: list[Segment], lo: float, hi: float) -> None:
    words = [w for s in segments for w in s.words]
    assert all(lo <= w.start <= w.end <= hi for w in words), "a word outside the audio it was heard in"
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False)), "words out of order"
    assert all(s.start <= s.end for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False)), "segments overlap"


@settings(max_examples=3, **COMMON)
@given(layout=layouts(min_s=45.0, max_s=100.0), target=st.floats(20.0, 45.0))
@example(layout=Layout(16000, (("speech", 54.0, 0.0), ("speech", 20.0, 0.0)), 9), target=40.0)
@example(layout=Layout(22050, (("zero", 2.0, 0.0), ("speech", 30.0, 0.5), ("zero", 35.0, 0.0),
                               ("speech", 20.0, 0.1)), 7), target=30.0)
@pytest.mark.slow
def test_transcribing_every_chunk_of_any_audio(layout, target, engine, tmp_path_factory):
    """The real model on every span, as `transcribe_chunk` runs it, then the merge: no exception, words in
    order inside their chunk, no segment overlapping the next, speech heard, nothing heard in long silence."""
    folder = tmp_path_factory.mktemp("asr")
    wav = layout.to_wav16k(folder)
    length = len(decode_wav16k(wav)) / SAMPLE_RATE
    spans = plan_chunks(wav, target)
    parts = []
    for span in spans:
        segments = transcribe_span(engine, wav, span, JsonlLog(folder / f"chunk-{span.index}.jsonl"), language="en")
        _words_in_order(segments, span.start, span.end)
        parts.append(segments)
    check_spans(spans, int(round(length * SAMPLE_RATE)))
    merged = merge_chunks(parts, duration_s=length).segments
    _words_in_order(merged, 0.0, floor_ms(length))
    words = [w for s in merged for w in s.words]
    for kind, start, end in layout.stretches():
        if kind == "speech" and end - start >= 5.0:
            assert any(start - 0.5 <= (w.start + w.end) / 2 <= end + 0.5 for w in words), \
                f"no word heard in the speech at {start:.1f}-{end:.1f} s"
        if kind == "zero" and end - start >= 4.0:
            inside = [w for w in words if start + 1.0 <= w.start and w.end <= end - 1.0]
            assert not inside, f"words invented in digital silence at {start:.1f}-{end:.1f} s: {inside}"
