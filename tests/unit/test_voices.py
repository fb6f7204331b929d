"""The voice-change measure (clipper/speakers/voices.py) on embeddings laid out by hand: who is heard on each side
of a moment, not the speech models (tests/unit/test_chapters_sound.py runs it on real joined recordings)."""

from __future__ import annotations

import numpy as np

from clipper.speakers.voices import MIN_SPEECH_S, VoiceProfile

RNG = np.random.default_rng(7)
A, B, C, D = (v / np.linalg.norm(v) for v in RNG.normal(size=(4, 192)))  # four voices, nearly orthogonal


def _profile(spans: list[tuple[float, float, list[np.ndarray]]]) -> VoiceProfile:
    """An embedding every 5 s in each span, taking turns among its voices (slightly varied, as real ones are)."""
    times, vectors = [], []
    for start, end, voices in spans:
        for k, t in enumerate(np.arange(start + 2.5, end, 5.0)):
            times.append(t)
            vectors.append(voices[k % len(voices)] + 0.01 * RNG.normal(size=192))
    return VoiceProfile(np.array(times), np.full(len(times), 4.0), np.array(vectors))


def test_a_new_pair_of_people_scores_high_and_the_same_conversation_low() -> None:
    voices = _profile([(0, 100, [A, B]), (100, 200, [C, D])])
    assert voices.change(100.0, 40.0) > 0.8
    assert voices.change(50.0, 40.0) < 0.05  # A and B take turns on both sides
    assert voices.change(150.0, 40.0) < 0.05


def test_a_voice_that_carries_on_across_the_moment_lowers_the_change() -> None:
    """A host who stays while the guest changes: half the voices are new, half carry on."""
    handover = _profile([(0, 100, [A, B]), (100, 200, [A, C])]).change(100.0, 40.0)
    fresh = _profile([(0, 100, [A, B]), (100, 200, [C, D])]).change(100.0, 40.0)
    assert 0.2 < handover < fresh - 0.3


def test_the_smaller_side_decides() -> None:
    """A voice joining a conversation that goes on is not a change of people: the voices after are partly new,
    but every voice before is still heard."""
    joining = _profile([(0, 100, [A, B]), (100, 200, [A, B, C])]).change(100.0, 40.0)
    assert joining < 0.05


def test_too_little_speech_on_a_side_is_no_evidence() -> None:
    voices = _profile([(0, 100, [A]), (100, 104, [B]), (200, 300, [C])])
    assert voices.seconds[voices.times > 100].sum() - voices.seconds[voices.times > 200].sum() < MIN_SPEECH_S
    assert voices.change(104.0, 40.0) == 0.0  # 40 s after holds 4 s of speech: no evidence
    assert voices.change(0.0, 40.0) == 0.0  # nothing before the start
    assert VoiceProfile(np.zeros(0), np.zeros(0), np.zeros((0, 192))).change(10.0, 40.0) == 0.0


def test_it_survives_the_store_round_trip_in_any_order() -> None:
    voices = _profile([(0, 100, [A, B]), (100, 200, [C, D])])
    shuffled = RNG.permutation(len(voices.times))
    again = VoiceProfile.from_bytes(VoiceProfile(voices.times[shuffled], voices.seconds[shuffled],
                                                 voices.vectors[shuffled]).to_bytes())
    assert np.all(np.diff(again.times) >= 0) and np.allclose(again.times, voices.times, atol=1e-3)
    for t in (50.0, 100.0, 150.0):
        assert abs(again.change(t, 40.0) - voices.change(t, 40.0)) < 0.01
