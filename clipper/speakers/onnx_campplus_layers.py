"""Generic builders for writing a torch network's inference graph as ONNX nodes straight from its state dict.

Why: the speaker networks' weights ship as torch state dicts, and torch (the usual `torch.onnx.export` route) is
not a run-time dependency. `GraphBuilder` keeps the node and initializer lists while a model module walks its
state dict; BatchNorm layers that directly follow a convolution are folded into it here, in float64, so the
graph has fewer nodes and no precision is lost to a second rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OPSET = 17
IR_VERSION = 8  # the lowest IR that carries opset 17: onnxruntime builds of the last years all read it
BN_EPS = 1e-5  # torch's BatchNorm default


class GraphBuilder:
    """Accumulates nodes and constant tensors; every method returns the name of the tensor it produced."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray | Sequence[int] | Sequence[float] | float | int, hint: str = "c") -> str:
        """A constant tensor (ints become int64, floats float32)."""
        from onnx import numpy_helper

        array = np.asarray(value)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, **attrs) -> str:
        from onnx import helper

        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    # -- weights ---------------------------------------------------------------------------------------------

    def bn_affine(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """`prefix`'s inference BatchNorm as `x * scale + shift` (float64); affine=False layers have no weight."""
        mean = self.weights[f"{prefix}.running_mean"].astype(np.float64)
        var = self.weights[f"{prefix}.running_var"].astype(np.float64)
        gamma = self.weights.get(f"{prefix}.weight", np.ones_like(mean)).astype(np.float64)
        beta = self.weights.get(f"{prefix}.bias", np.zeros_like(mean)).astype(np.float64)
        scale = gamma / np.sqrt(var + BN_EPS)
        return scale, beta - mean * scale

    def _conv_params(self, conv: str, bn: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        weight = self.weights[f"{conv}.weight"].astype(np.float64)
        bias = self.weights.get(f"{conv}.bias")
        bias = None if bias is None else bias.astype(np.float64)
        if bn is not None:
            scale, shift = self.bn_affine(bn)
            weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
            bias = shift + (scale * bias if bias is not None else 0.0)
        return weight, bias

    # -- layers ----------------------------------------------------------------------------------------------

    def conv(self, x: str, conv: str, bn: str | None = None, *, stride: Sequence[int] | int = 1,
             pad: Sequence[int] | int = 0, dilation: int = 1, relu: bool = False) -> str:
        """torch `Conv1d`/`Conv2d` named `conv` (symmetric padding), optionally followed by BatchNorm `bn` (folded
        in) and ReLU."""
        weight, bias = self._conv_params(conv, bn)
        spatial = weight.ndim - 2
        strides = [stride] * spatial if isinstance(stride, int) else list(stride)
        pads = [pad] * spatial if isinstance(pad, int) else list(pad)
        inputs = [x, self.const(weight, "w")] + ([self.const(bias, "b")] if bias is not None else [])
        out = self.op("Conv", inputs, "conv", kernel_shape=list(weight.shape[2:]), strides=strides,
                      pads=pads + pads, dilations=[dilation] * spatial)
        return self.op("Relu", [out]) if relu else out

    def linear(self, x: str, conv: str, bn: str | None = None, *, relu: bool = False) -> str:
        """A 1x1 `Conv1d` applied to a (B, C) tensor (torch unsqueezes a time axis of 1) as one Gemm."""
        weight, bias = self._conv_params(conv, bn)
        matrix = weight.reshape(weight.shape[0], -1)
        bias = np.zeros(matrix.shape[0]) if bias is None else bias
        out = self.op("Gemm", [x, self.const(matrix, "w"), self.const(bias, "b")], "gemm", transB=1)
        return self.op("Relu", [out]) if relu else out

    def batchnorm(self, x: str, bn: str, *, relu: bool = False) -> str:
        """Inference BatchNorm over axis 1 of any rank as a BatchNormalization node (onnxruntime fuses it)."""
        scale, shift = self.bn_affine(bn)
        zeros, ones = np.zeros_like(scale), np.ones_like(scale)
        out = self.op("BatchNormalization", [x, self.const(scale), self.const(shift), self.const(zeros),
                                             self.const(ones)], "bn", epsilon=0.0)
        return self.op("Relu", [out]) if relu else out

    def dim(self, x: str, axis: int) -> str:
        """The (1,)-shaped int64 size of `x` along `axis`."""
        return self.op("Shape", [x], "dim", start=axis, end=axis + 1)

    # -- output ----------------------------------------------------------------------------------------------

    def model_bytes(self, inputs: Sequence, outputs: Sequence, name: str, doc: str = "") -> bytes:
        """The serialized, checked ModelProto; `inputs`/`outputs` are `helper.make_tensor_value_info`s."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, list(inputs), list(outputs), initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clipper",
                                  doc_string=doc)
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model.SerializeToString()
