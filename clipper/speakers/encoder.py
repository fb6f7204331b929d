"""The GE2E speaker encoder (Resemblyzer 0.1.4's `pretrained.pt`) run in numpy: no torch, no librosa, no hub.

Why this shape: the weights ship inside a PyPI wheel (so an offline install has them), but Resemblyzer itself
imports torch (gigabytes with its CUDA libraries on Linux) and librosa. The network is small — a 3-layer LSTM
(256 units) on 40 mel bands, a linear layer, ReLU, L2 norm — so numpy runs it fast enough once many windows
are batched together. The checkpoint is read with a small unpickler for torch's legacy format, and the mel
spectrogram reproduces the librosa call Resemblyzer makes (`librosa.feature.melspectrogram`: 25 ms Hann window,
10 ms hop, centred reflect padding, power 2, 40 Slaney mel bands, *not* log-compressed).

The package is found with `importlib.util.find_spec` and never imported (importing it imports torch).
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipper.errors import SpeakerModelMissing

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s: the window length the encoder was trained on
EMBED_DIM = 256
TARGET_DBFS = -30.0  # Resemblyzer's `audio_norm_target_dBFS` (volume raised to it, never lowered)
MODEL_NAME = "resemblyzer-ge2e-0.1.4"

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def weights_path() -> Path:
    """`resemblyzer/pretrained.pt` of the installed wheel, or `SpeakerModelMissing`."""
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise SpeakerModelMissing(
        "no speaker model: install the GE2E weights with `pip install --no-deps Resemblyzer==0.1.4` "
        "(speaker labels are skipped until then)"
    )


class _Storage:
    def __init__(self, dtype: type, key: str) -> None:
        self.dtype, self.key = dtype, key


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles torch's legacy `.pt` body into references to raw storages; refuses every other class, so a
    crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: _TensorRef(storage, offset, size, stride)
        if module == "torch" and name in _DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the speaker model")

    def persistent_load(self, pid):
        _tag, storage_type, key, _location, _size, _view = pid
        return _Storage(_DTYPES[storage_type], key)


def read_legacy_checkpoint(path: Path, field: str = "model_state") -> dict[str, np.ndarray]:
    """The tensors of `checkpoint[field]` as float32 arrays, from a torch legacy-format file: five pickles (magic
    number, protocol, sys info, the object with storages as persistent ids, the storage keys), then each storage
    as an int64 element count followed by its raw little-endian data."""
    try:
        with open(path, "rb") as f:
            for _ in range(3):
                pickle.load(f)
            obj = _LegacyUnpickler(f).load()
            keys = pickle.load(f)
            dtypes = _storage_types(obj)
            storages: dict[str, np.ndarray] = {}
            for key in keys:
                (count,) = struct.unpack("<q", f.read(8))
                dtype = np.dtype(dtypes.get(key, np.float32))
                storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
        out = {}
        for name, ref in obj[field].items():
            storage = storages[ref.storage.key]
            view = np.lib.stride_tricks.as_strided(
                storage[ref.offset:], shape=ref.size, strides=[s * storage.itemsize for s in ref.stride])
            out[name] = np.array(view, dtype=np.float32)
        return out
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError, struct.error) as exc:
        raise SpeakerModelMissing(f"cannot read the speaker model {str(path)!r}: {exc}") from exc


def _storage_types(obj: object, seen: dict | None = None) -> dict[str, type]:
    """Each storage's element type, from the tensors that refer to it (the storage section does not say)."""
    seen = {} if seen is None else seen
    if isinstance(obj, _TensorRef):
        seen[obj.storage.key] = obj.storage.dtype
    elif isinstance(obj, dict):
        for v in obj.values():
            _storage_types(v, seen)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _storage_types(v, seen)
    return seen


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): Slaney mel scale, Slaney (area) normalisation."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
                        hz / f_sp)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)

    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_frames(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Mel frames [start, stop) of `samples` exactly as `librosa.feature.melspectrogram` (centred, reflect
    padding) computes them for the whole signal, reading only the samples they need: a long recording's
    spectrogram is never held at once. Frame i is centred on sample 160·i; a signal has 1 + len // 160 frames."""
    y = np.asarray(samples, dtype=np.float32)
    n = len(y)
    stop = min(stop, 1 + n // HOP)
    if stop <= start:
        return np.zeros((0, N_MELS), np.float32)
    lo, hi = HOP * start - N_FFT // 2, HOP * (stop - 1) + N_FFT // 2
    part = y[max(lo, 0):min(hi, n)]
    if lo < 0 or hi > n:  # reflect at the signal's edges, as librosa's centred STFT does
        if n <= N_FFT // 2:
            y = np.pad(y, (0, N_FFT // 2 + 1 - n))
            n = len(y)
        head = y[1:1 - lo][::-1] if lo < 0 else y[:0]
        tail = y[n - 1 - (hi - n):n - 1][::-1] if hi > n else y[:0]
        part = np.concatenate([head, y[max(lo, 0):min(hi, n)], tail])
    frames = np.lib.stride_tricks.sliding_window_view(part, N_FFT)[::HOP][:stop - start]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    return (power.astype(np.float32) @ mel_filters().T).astype(np.float32)


def mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram of a whole (short) signal; see `mel_frames`."""
    return mel_frames(samples, 0, 1 + len(samples) // HOP)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def volume_gain(samples: np.ndarray) -> float:
    """The factor that raises `samples` to -30 dBFS RMS, never lowers it: Resemblyzer's `normalize_volume`
    with increase_only. The encoder sees an unlogged power spectrogram, so its input level matters."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return gain_for_rms(rms)


def gain_for_rms(rms: float) -> float:
    if rms <= 1e-9:
        return 1.0
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return float(10 ** (change_db / 20)) if change_db > 0 else 1.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings, same values


class SpeakerEncoder:
    """The GE2E network: a batch of (n, frames, 40) mel windows -> (n, 256) L2-normalised embeddings.

    Weights are loaded once per process (`load_encoder`). Gate order and biases follow torch.nn.LSTM
    (input, forget, cell, output; b_ih + b_hh); the embedding is ReLU(linear(last hidden state of layer 3)).
    """

    def __init__(self, path: Path) -> None:
        w = read_legacy_checkpoint(path)
        try:
            self.layers = [
                (np.ascontiguousarray(w[f"lstm.weight_ih_l{i}"].T), np.ascontiguousarray(w[f"lstm.weight_hh_l{i}"].T),
                 w[f"lstm.bias_ih_l{i}"] + w[f"lstm.bias_hh_l{i}"])
                for i in range(3)
            ]
            self.linear_w = np.ascontiguousarray(w["linear.weight"].T)
            self.linear_b = w["linear.bias"]
        except KeyError as exc:
            raise SpeakerModelMissing(f"the speaker model {str(path)!r} lacks {exc}") from exc
        self.path = path
        self.name = MODEL_NAME

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """(n, T, 40) float32 -> (n, 256). Every window has the same T (160 for what the model was trained on)."""
        x = np.asarray(mels, dtype=np.float32)
        n, steps, _ = x.shape
        if n == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        for w_ih, w_hh, bias in self.layers:
            hidden = w_hh.shape[0]
            # The input projection of every step at once (one large GEMM); only h @ W_hh is sequential.
            xp = (x.reshape(n * steps, -1) @ w_ih + bias).reshape(n, steps, 4 * hidden)
            h = np.zeros((n, hidden), np.float32)
            c = np.zeros((n, hidden), np.float32)
            out = np.empty((n, steps, hidden), np.float32)
            for t in range(steps):
                g = xp[:, t] + h @ w_hh
                i, f, cell, o = (g[:, :hidden], g[:, hidden:2 * hidden], g[:, 2 * hidden:3 * hidden], g[:, 3 * hidden:])
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cell)
                h = _sigmoid(o) * np.tanh(c)
                out[:, t] = h
            x = out
        raw = np.maximum(h @ self.linear_w + self.linear_b, 0.0)
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)


_LOCK = threading.Lock()
_ENCODERS: dict[str, SpeakerEncoder] = {}


def load_encoder(path: Path | None = None) -> SpeakerEncoder:
    """The process-wide encoder (loaded on first use, ~0.1 s); `SpeakerModelMissing` when the weights are absent."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise SpeakerModelMissing(f"speaker model {str(path)!r} does not exist")
    key = str(path.resolve())
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = SpeakerEncoder(path)
        return _ENCODERS[key]
