"""Chunked transcription with the real model: cuts in silences, parallel chunks, seams, resume, merging."""

from __future__ import annotations

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import jiwer
import numpy as np
import pytest

from clipper.asr import get_engine, wav_duration
from clipper.asr.base import SAMPLE_RATE, StopRequested, cut_wav, decode_wav16k
from clipper.asr.chunks import (
    QUIET_S, merge_chunks, plan_chunks, quiet_profile, span_resumed_s, transcribe_span,
)
from clipper.asr.local import available_cores, decode_threads
from clipper.asr.noop import NOOP_TEXT
from clipper.asr.resume import transcribe_resumable
from clipper.config import Settings
from clipper.job.messages import ChunkSpan
from clipper.job.outputs import Segment, Word
from clipper.store.files import JsonlLog

DATA = Path(__file__).parent.parent / "data"
REPEATS = 4
GAP_S = 1.0  # silence added between the repetitions
TARGET_S = 60.0  # ⌈221 / 60⌉ = 4 equal spans: every nominal boundary (k × 55.2 s) has a gap within ±20 s
MAX_WER = 0.15


def asr_settings(**overrides) -> Settings:
    # Explicit values, so CLIPPER_* variables in the environment cannot change what the tests exercise.
    values = dict(asr_engine="local", asr_model_path=None, asr_beam_size=5, asr_cpu_threads=0,
                  asr_compute_type="int8", asr_language="en", asr_chunk_s=180.0, asr_parallel=2)
    values.update(overrides)
    return Settings(**values)


def normalise(text: str) -> str:
    text = text.lower().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


REFERENCE = normalise((DATA / "sample.txt").read_text())
REPEATED = " ".join([REFERENCE] * REPEATS)


def words_of(segments: list[Segment]) -> list[Word]:
    return [w for s in segments for w in s.words]


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> Path:
    """The committed sample four times over with a second of silence between, as 16 kHz mono WAV (~221 s)."""
    out = tmp_path_factory.mktemp("chunks") / "long.wav"
    inputs = [arg for _ in range(REPEATS) for arg in ("-i", str(DATA / "sample.mp3"))]
    chains = [f"[{i}:a]aresample={SAMPLE_RATE},aformat=channel_layouts=mono"
              + (f",apad=pad_dur={GAP_S}" if i < REPEATS - 1 else "") + f"[a{i}]" for i in range(REPEATS)]
    graph = ";".join(chains) + ";" + "".join(f"[a{i}]" for i in range(REPEATS)) + f"concat=n={REPEATS}:v=0:a=1[out]"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", *inputs,
                    "-filter_complex", graph, "-map", "[out]", "-ac", "1", "-ar", str(SAMPLE_RATE),
                    "-c:a", "pcm_s16le", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def gaps(long_wav) -> list[tuple[float, float]]:
    """The added silences: digital-zero stretches of at least GAP_S, found in the audio itself."""
    samples = decode_wav16k(long_wav)
    frames = np.abs(samples[: len(samples) // 160 * 160].reshape(-1, 160)).max(axis=1) == 0
    found, start = [], None
    for i, silent in enumerate([*frames, False]):
        if silent and start is None:
            start = i
        elif not silent and start is not None:
            if (i - start) / 100 >= GAP_S:
                found.append((start / 100, i / 100))
            start = None
    inner = [g for g in found if g[1] < wav_duration(long_wav) - 0.5]
    assert len(inner) == REPEATS - 1, found
    return inner


@pytest.fixture(scope="module")
def engine():
    """The engine as `transcribe_chunk` makes it: cores shared between `asr_parallel` decodes."""
    engine = get_engine(asr_settings(), "local", chunked=True)
    engine.load()  # cached per process
    return engine


@pytest.fixture(scope="module")
def single_engine():
    """The engine as the single-pass `transcribe` makes it (shared with test_asr)."""
    engine = get_engine(asr_settings(), "local")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def spans(long_wav) -> list[ChunkSpan]:
    return plan_chunks(long_wav, TARGET_S)


@pytest.fixture(scope="module")
def chunked(engine, long_wav, spans, tmp_path_factory) -> list[list[Segment]]:
    """Every span transcribed, two at a time from two threads (as two activities of one worker would)."""
    folder = tmp_path_factory.mktemp("partials")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(
            lambda span: transcribe_span(engine, long_wav, span, JsonlLog(folder / f"{span.index}.jsonl"),
                                         language="en"),
            spans,
        ))


@pytest.fixture(scope="module")
def single(single_engine, long_wav, tmp_path_factory):
    transcript, _ = transcribe_resumable(single_engine, long_wav, JsonlLog(tmp_path_factory.mktemp("single") / "p.jsonl"),
                                         duration_s=None, language="en")
    return transcript


# --- planning ---


@pytest.mark.slow
def test_plan_cuts_inside_the_silences(long_wav, spans, gaps):
    duration = wav_duration(long_wav)
    assert len(spans) == REPEATS
    assert [s.index for s in spans] == list(range(REPEATS))
    assert spans[0].start == 0.0 and spans[-1].end == pytest.approx(duration, abs=1e-3)
    assert all(a.end == b.start for a, b in zip(spans, spans[1:]))
    cuts = [s.start for s in spans[1:]]
    for cut, (gap_start, gap_end) in zip(cuts, gaps, strict=True):
        # In the silence, well away from its edges (its middle, give or take the sample's own trailing pause).
        assert gap_start + 0.3 <= cut <= gap_end - 0.3, (cut, gap_start, gap_end)
    samples = decode_wav16k(long_wav)
    for k, cut in enumerate(cuts, start=1):
        nominal = k * duration / len(spans)
        lo, hi = nominal - 20.0, nominal + 20.0
        window = quiet_profile(samples[int(lo * SAMPLE_RATE): int(hi * SAMPLE_RATE)])
        at_cut = quiet_profile(samples[int((cut - QUIET_S / 2) * SAMPLE_RATE): int((cut + QUIET_S / 2) * SAMPLE_RATE) + 1])
        assert float(at_cut[0]) <= float(window.min()) + 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("target", [40.0, 70.0, 100.0, 130.0])
def test_plan_spans_cover_the_file_and_are_not_too_short(long_wav, target):
    duration = wav_duration(long_wav)
    planned = plan_chunks(long_wav, target, window_s=20.0, min_chunk_s=30.0)
    assert planned[0].start == 0.0 and planned[-1].end == pytest.approx(duration, abs=1e-3)
    assert all(a.end == b.start for a, b in zip(planned, planned[1:]))
    assert all(s.duration_s >= 30.0 for s in planned)
    assert len(planned) == pytest.approx(duration / target, abs=1)
    # Equal spans of at most about the target (each cut within ±20 s of its nominal place).
    assert all(s.duration_s <= duration / len(planned) + 40.0 for s in planned)


@pytest.mark.slow
def test_plan_short_media_is_one_chunk(long_wav):
    duration = wav_duration(long_wav)
    whole = [ChunkSpan(index=0, start=0.0, end=round(duration, 3))]
    for target in (duration + 1.0, duration / 0.99, 0.0):
        assert plan_chunks(long_wav, target) == whole
    assert len(plan_chunks(long_wav, duration / 1.49)) == 2  # longer than one chunk: cut


@pytest.mark.slow
def test_plan_media_longer_than_one_chunk_in_two(long_wav):
    """221 s at a 180 s target: longer than one chunk, so two spans of about 110 s, cut in a pause."""
    duration = wav_duration(long_wav)
    planned = plan_chunks(long_wav, 180.0)
    assert len(planned) == 2
    assert planned[0].start == 0.0 and planned[1].end == round(duration, 3)
    assert abs(planned[0].end - duration / 2) <= 20.0


# --- transcription: chunked vs single pass ---


@pytest.mark.slow
def test_chunked_and_single_pass_are_accurate(chunked, single, spans):
    merged = merge_chunks(chunked, engine="local", language="en")
    chunked_wer = jiwer.wer(REPEATED, normalise(merged.text))
    single_wer = jiwer.wer(REPEATED, normalise(single.text))
    print(f"\nWER chunked {chunked_wer:.3f} ({len(spans)} chunks), single pass {single_wer:.3f}")
    assert chunked_wer <= MAX_WER, merged.text
    assert single_wer <= MAX_WER, single.text
    assert [s.id for s in merged.segments] == list(range(len(merged.segments)))
    previous = -1.0
    for seg in merged.segments:
        assert seg.start <= seg.end
        for w in seg.words:
            assert previous <= w.start <= w.end and seg.start - 0.01 <= w.start and w.end <= seg.end + 0.01
            previous = w.start
    # Every chunk's times are absolute and inside its own span.
    for span, part in zip(spans, chunked, strict=True):
        assert part, f"chunk {span.index} produced nothing"
        assert all(span.start <= s.start <= s.end <= span.end + 1e-3 for s in part)


@pytest.mark.slow
def test_no_word_lost_or_repeated_at_the_seams(chunked, spans):
    merged = merge_chunks(chunked)
    words = words_of(merged.segments)
    reference = REFERENCE.split()
    for span in spans[1:]:
        at = next(i for i, w in enumerate(words) if w.start >= span.start)
        before = normalise(" ".join(w.word for w in words[at - 4: at])).split()
        after = normalise(" ".join(w.word for w in words[at: at + 4])).split()
        # The cut is between two repetitions: the end of the sample, then its beginning, once each.
        assert before[-4:] == reference[-4:], (span.start, before, after)
        assert after[:4] == reference[:4], (span.start, before, after)


# --- resuming one chunk ---


@pytest.mark.slow
def test_a_chunk_resumes_from_its_partial_log(engine, long_wav, spans, tmp_path):
    span = spans[1]
    partial = JsonlLog(tmp_path / "chunk-1.partial.jsonl")
    with pytest.raises(StopRequested):
        transcribe_span(engine, long_wav, span, partial, language="en", should_stop=lambda: len(partial.read()) >= 3)
    saved = [Segment.model_validate(r) for r in partial.read()]
    assert len(saved) == 3 and saved[0].start >= span.start
    assert span_resumed_s(partial, span) == pytest.approx(saved[-1].end - span.start, abs=1e-3)

    starts: list[float] = []
    progress: list[tuple[float, float]] = []

    class Recording:
        name, model = engine.name, engine.model

        def transcribe(self, audio, **kwargs):
            starts.append(kwargs["start_s"])
            assert kwargs["end_s"] == span.end
            return engine.transcribe(audio, **kwargs)

    segments = transcribe_span(Recording(), long_wav, span, partial, language="en",
                               on_progress=lambda done, total: progress.append((done, total)))
    assert starts == [saved[-1].end], "resumed at the end of the last saved segment, not from the span's start"
    assert [s.model_dump() for s in segments[:3]] == [s.model_dump() for s in saved]
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(saved[-1].end <= s.start and s.end <= span.end + 1e-3 for s in segments[3:])
    assert segments[3:], "the rest of the span was transcribed"
    assert progress[0] == (pytest.approx(saved[-1].end - span.start, abs=1e-3), span.duration_s)
    assert progress[-1][0] == pytest.approx(segments[-1].end - span.start, abs=1e-3)
    # The span is exactly the second repetition of the sample.
    assert jiwer.wer(REFERENCE, normalise(" ".join(s.text for s in segments))) <= MAX_WER


@pytest.mark.slow
def test_resumable_driver_stops_at_end_s(long_wav, tmp_path):
    noop = get_engine(asr_settings(asr_engine="noop"))
    transcript, resumed = transcribe_resumable(noop, long_wav, JsonlLog(tmp_path / "p.jsonl"), duration_s=None,
                                               start_s=10.0, end_s=42.5)
    assert resumed == 0.0
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [(10.0, 42.5, NOOP_TEXT)]


@pytest.mark.slow
def test_decode_and_cut_a_span(long_wav, tmp_path):
    whole = decode_wav16k(long_wav)
    part = decode_wav16k(long_wav, 10.0, 12.5)
    assert len(part) == int(2.5 * SAMPLE_RATE) and (part == whole[160000:200000]).all()
    assert len(decode_wav16k(long_wav, 219.0, 1000.0)) == len(whole) - 219 * SAMPLE_RATE
    out = tmp_path / "span.wav"
    assert cut_wav(long_wav, out, 10.0, end_s=12.5) == pytest.approx(2.5)
    assert (decode_wav16k(out) == part).all()


# --- parallel decoding in one process ---


@pytest.mark.slow
def test_model_decodes_in_parallel(engine, single_engine):
    threads = decode_threads(asr_settings(), chunked=True)
    assert threads == max(1, available_cores() // 2)
    assert decode_threads(asr_settings(asr_cpu_threads=3), chunked=True) == 3
    assert decode_threads(asr_settings(asr_parallel=1), chunked=True) == 0
    assert decode_threads(asr_settings()) == 0  # one pass: all the cores (CTranslate2's default)
    assert (engine.cpu_threads, engine.num_workers) == (threads, 2)
    assert (single_engine.cpu_threads, single_engine.num_workers) == (0, 2)
    # CTranslate2 workers: two transcribe() calls from two threads really run at once.
    assert engine.load().model.num_workers == 2 and single_engine.load().model.num_workers == 2


@pytest.mark.slow
def test_chunks_of_one_model_run_concurrently(engine, long_wav, spans):
    """Two threads decoding at once on the shared model: both have work inside the model at the same time.

    `num_active_batches` counts batches queued or running, so one thread may already have queued its next
    batch: the count can exceed 2, but it stays at 1 if the callers were serialised."""
    model = engine.load().model
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(model.num_active_batches)
            stop.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda s: list(engine.transcribe(long_wav, start_s=s.start, end_s=s.start + 20.0,
                                                            language="en")), spans[:2]))
    finally:
        stop.set()
        watcher.join()
    assert max(seen) >= 2


# --- merging (synthetic segments) ---


def seg(start: float, end: float, *words: tuple[str, float, float], text: str | None = None) -> Segment:
    ws = [Word(word=w, start=s, end=e) for w, s, e in words]
    return Segment(id=0, start=start, end=end, text=text if text is not None else " ".join(w.word for w in ws),
                   words=ws)


def test_merge_dedupes_overlapping_chunks_without_losing_words():
    a = [
        seg(0.0, 2.0, ("One", 0.1, 0.5), ("two", 0.6, 1.0), ("two", 1.1, 1.5)),  # a real repetition: kept
        seg(2.0, 5.6, ("three", 2.1, 2.6), ("four", 3.0, 3.5), ("five.", 4.9, 5.3)),  # ends after B starts
    ]
    b = [
        # B starts at 5.0, inside A's last segment: "five" is the same word over the same time.
        seg(5.0, 7.0, ("Five.", 4.95, 5.3), ("six", 5.5, 6.0), ("seven", 6.2, 6.8)),
        seg(7.0, 9.0, ("eight", 7.2, 7.6), ("nine", 7.8, 8.2)),
    ]
    c = [
        # C overlaps B's end: "nine" again (dropped), "ten" at the same time as nothing in B (kept, not lost).
        seg(7.7, 10.0, ("nine", 7.85, 8.2), ("ten", 8.1, 8.5), ("eleven", 8.9, 9.4)),
        seg(10.0, 11.0, ("nine", 10.1, 10.4)),  # same text later in time: a new word, kept
    ]
    merged = merge_chunks([c, a, [], b], engine="local", duration_s=11.0)  # out of order, with an empty chunk
    words = [w.word for w in words_of(merged.segments)]
    assert words == ["One", "two", "two", "three", "four", "five.", "six", "seven", "eight", "nine", "ten",
                     "eleven", "nine"]
    assert [s.id for s in merged.segments] == list(range(len(merged.segments)))
    assert [s.text for s in merged.segments] == [
        "One two two", "three four five.", "six seven", "eight nine", "ten eleven", "nine"]
    # Times never go back; A's segment that ran into B is clipped to where B's first (kept) word starts.
    assert merged.segments[1].end == pytest.approx(5.5)
    assert merged.segments[2].start == pytest.approx(5.5)
    flat = words_of(merged.segments)
    assert all(x.start <= y.start for x, y in zip(flat, flat[1:]))
    for s, t in zip(merged.segments, merged.segments[1:]):
        assert s.start <= s.end <= t.start
    # "ten" started (8.1) before the kept "nine" ended (8.2): kept, shifted to start after it.
    ten = next(w for w in flat if w.word == "ten")
    assert ten.start >= 8.2 and ten.end >= ten.start
    assert (merged.engine, merged.duration_s) == ("local", 11.0)


def test_merge_of_wordless_segments_and_touching_chunks():
    a = [seg(0.0, 10.0, text="(noop transcript)")]
    b = [seg(0.1, 10.0, text="(noop transcript)")]  # the same segment over the same span again: dropped
    c = [seg(9.9, 20.0, text="(noop transcript)")]  # same text over other audio: kept, the earlier one clipped
    d = [seg(20.0, 30.0, text="(noop transcript)")]  # touching, not overlapping: kept as is
    merged = merge_chunks([a, b, c, d])
    assert [(s.id, s.start, s.end) for s in merged.segments] == [(0, 0.0, 9.9), (1, 9.9, 20.0), (2, 20.0, 30.0)]
    different = merge_chunks([[seg(0.0, 10.0, text="first")], [seg(9.5, 20.0, text="second")]])
    assert [(s.text, s.start, s.end) for s in different.segments] == [("first", 0.0, 9.5), ("second", 9.5, 20.0)]
