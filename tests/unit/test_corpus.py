"""The diarization evaluation corpus (bench/corpus.py): it builds, its splits share no voice or source package, its
reference turns lie inside the audio and exactly where the speech is."""

from __future__ import annotations

import numpy as np
import pytest

from bench import corpus


@pytest.fixture(scope="module")
def recs() -> list[corpus.Recording]:
    return corpus.recordings()


@pytest.mark.slow
def test_both_splits_build(recs):
    by_split = {s: [r for r in recs if r.split == s] for s in corpus.SPLITS}
    assert all(len(v) >= 10 for v in by_split.values())
    assert [r.name for r in corpus.recordings("test")] == [r.name for r in by_split["test"]]
    assert len({r.name for r in recs}) == len(recs)
    for r in recs:
        assert r.samples.dtype == np.float32 and r.samples.ndim == 1
        assert np.all(np.isfinite(r.samples)) and np.max(np.abs(r.samples)) <= 1.0


@pytest.mark.slow
def test_splits_share_no_voice_nor_package(recs):
    speakers = {s: {t.speaker for r in recs if r.split == s for t in r.turns} for s in corpus.SPLITS}
    assert not speakers["tune"] & speakers["test"]
    packages = {s: {v.source.split()[0] for v in corpus.voices(s)} for s in corpus.SPLITS}
    assert not packages["tune"] & packages["test"]
    assert len(corpus.voices()) >= 8


@pytest.mark.slow
def test_turns_lie_inside_the_audio(recs):
    for r in recs:
        assert r.turns, r.name
        for t in r.turns:
            assert 0 <= t.start < t.end <= r.duration_s + 1e-3, (r.name, t)
        assert r.turns == sorted(r.turns)


@pytest.mark.slow
def test_single_voice_recordings_have_one_speaker_and_conversations_their_cast(recs):
    for r in recs:
        if r.name.startswith("solo-"):
            assert len(r.speakers) == 1, r.name
        for kind, n in (("duo-", 2), ("trio-", 3), ("quartet-", 4)):
            if r.name.startswith(kind):
                assert len(r.speakers) == n, r.name
    minutes = {round(r.duration_s / 60) for r in recs if r.name.startswith("solo-")}
    assert {2, 5} <= minutes


def test_reference_is_exact_where_nothing_was_mixed_in():
    """In a noiseless build every sample more than 1 ms outside the turns is silent, and each turn starts and ends
    on speech."""
    plan = next(p for p in corpus.PLANS["test"] if p.snr_db is None and len(p.voices) == 2)
    rec = corpus.build(plan, "test")
    inside = np.zeros(len(rec.samples), bool)
    for t in rec.turns:
        a, b = round(t.start * corpus.SR), round(t.end * corpus.SR)
        inside[max(0, a - 16):b + 16] = True  # turns are given to the millisecond
        edge = int(0.05 * corpus.SR)
        assert np.sqrt(np.mean(rec.samples[a:a + edge] ** 2)) > 1e-3, t
        assert np.sqrt(np.mean(rec.samples[b - edge:b] ** 2)) > 1e-3, t
    assert np.max(np.abs(rec.samples[~inside])) == 0.0


def test_build_is_deterministic():
    plan = corpus.PLANS["tune"][5]
    a, b = corpus.build(plan, "tune"), corpus.build(plan, "tune")
    assert a.turns == b.turns and np.array_equal(a.samples, b.samples)
