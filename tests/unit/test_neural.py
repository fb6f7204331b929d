"""The default speakers engine (clipper/speakers/neural.py): segmentation + CAM++ + clustering on real speech.

Real recordings only: the committed phone call and AMI excerpts with their published turns, and recordings built
from real single voices (bench/corpus.py). These are regression checks of the behaviour the engine was tuned to,
so the built recordings come from the TUNING split's plans; how it does on recordings nobody tuned to is measured
by bench/diarization.py on the test split and recorded in docs/quality.md, never asserted here.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import PLANS, build, committed
from bench.diarization import der
from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.job.outputs import SpeakerTurn
from clipper.speakers import neural
from clipper.speakers.audio import AudioSource

MAX_DER_CALL = 0.15  # the target for the committed call (measured ~5 %)


def settings(**overrides) -> Settings:
    return Settings(**{"speakers_engine": "neural", "speakers_max": 8, "speakers_count": 0, **overrides})


def plan(name: str):
    return next(p for p in PLANS["tune"] if p.name == name)


def turns(rec) -> list[SpeakerTurn]:
    return [SpeakerTurn(start=t.start, end=t.end, speaker=t.speaker) for t in rec.turns]


def speakers(found: neural.Diarization) -> set[str]:
    return {t.speaker for t in found.turns}


@pytest.fixture(scope="module")
def call():
    return committed("call")


@pytest.mark.slow
def test_the_two_women_on_the_real_call(call) -> None:
    progress: list[tuple[float, float]] = []
    found = neural.diarize(AudioSource(samples=call.samples), settings(),
                           on_progress=lambda done, total: progress.append((done, total)))
    assert speakers(found) == {"S1", "S2"}
    assert der(turns(call), found.turns, call.duration_s)["der"] <= MAX_DER_CALL
    assert found.turns[0].speaker == "S1"  # labels in order of appearance
    assert progress and progress[-1][0] == pytest.approx(call.duration_s, abs=0.05)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    # Exclusive turns never overlap: each moment has one (the dominant) speaker, which is what words get.
    ends = sorted((t.start, t.end) for t in found.exclusive)
    assert all(b[0] >= a[1] - 1e-6 for a, b in zip(ends, ends[1:]))


@pytest.mark.slow
def test_one_voice_is_one_speaker() -> None:
    rec = build(plan("solo-carlo-2m"), "tune")
    found = neural.diarize(AudioSource(samples=rec.samples), settings())
    assert speakers(found) == {"S1"}
    assert found.overlap_share < 0.02


@pytest.mark.slow
def test_two_real_voices_are_two_speakers() -> None:
    rec = build(plan("duo-cs-v+june-2m"), "tune")
    found = neural.diarize(AudioSource(samples=rec.samples), settings())
    assert len(speakers(found)) == 2
    assert der(turns(rec), found.turns, rec.duration_s)["der"] < 0.3


def test_overrides_fix_or_cap_the_count(call) -> None:
    scan = neural.scan(AudioSource(samples=call.samples), settings())
    assert len(speakers(neural.decide(scan, settings(speakers_max=1)))) == 1
    assert len(speakers(neural.decide(scan, settings(speakers_count=3)))) == 3


def test_overlapped_speech_is_found_and_reported() -> None:
    rec = committed("ami-tst00")  # four people, half of the speech overlapped
    found = neural.diarize(AudioSource(samples=rec.samples), settings())
    assert 0.02 < found.overlap_share < 0.8
    assert any(a.end > b.start and a.speaker != b.speaker for a, b in zip(found.turns, found.turns[1:]))


def test_a_stop_is_heard_between_blocks(call) -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(StopRequested):
        neural.diarize(AudioSource(samples=call.samples), settings(), should_stop=stop)


def test_silence_has_no_speakers() -> None:
    found = neural.diarize(AudioSource(samples=np.zeros(16000 * 12, np.float32)), settings())
    assert found.turns == [] and found.exclusive == [] and found.overlap_share == 0.0


def test_the_wav_is_read_a_block_at_a_time(call, tmp_path: Path) -> None:
    """The job's audio (16 kHz mono 16-bit WAV) is read with seeks, giving the decoded samples."""
    path = tmp_path / "audio.wav"
    pcm = np.clip(np.round(call.samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    with AudioSource(path=path) as source:
        assert len(source) == len(call.samples)
        piece = source.read(16000 * 10, 16000)
        np.testing.assert_allclose(piece, pcm[160000:176000] / 32768.0, atol=1e-6)
        tail = source.read(len(call.samples) - 100, 400)  # past the end: zero-padded
        assert np.all(tail[100:] == 0) and np.any(tail[:100] != 0)
        found = neural.diarize(source, settings())
    assert speakers(found) == {"S1", "S2"}
