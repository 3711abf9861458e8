"""Kernels as tiny ONNX graphs, built directly with ``onnx.helper`` (no torch exporter).

Used to measure a latency lookup table. A graph holds exactly the nodes onnxruntime runs for
a chain of kernels in a deployed subnet: convs with BN folded into their bias and their
activation after them (ReLU6 = ``Clip(0, 6)``), a residual ``Add`` of the chain's own input
(which onnxruntime fuses into the conv before it, as in the full model), ``GlobalAveragePool``,
``Flatten`` and ``Gemm``. A chain of one kernel is that kernel alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from predictors.errors import CalibrationError
from predictors.kernels import Kernel

OPSET = 17
_ACTS = {"relu": "Relu", "hswish": "HardSwish", "hsigmoid": "HardSigmoid"}


def input_shape(k: Kernel) -> tuple[int, ...]:
    """Shape of the input tensor of kernel ``k``."""
    return (k.batch, k.cin) if k.op == "linear" else (k.batch, k.cin, k.h_in, k.h_in)


def _out_shape(k: Kernel) -> tuple[int, ...]:
    return (k.batch, k.cout) if k.op == "linear" else (k.batch, k.cout, k.h_out, k.h_out)


class _Graph:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.nodes, self.inits, self.n = rng, [], [], 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def init(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def act(self, act: str, x: str) -> str:
        if act == "none":
            return x
        if act == "relu6":
            return self.node("Clip", [x, self.init(np.array(0.0)), self.init(np.array(6.0))])
        if act not in _ACTS:
            raise CalibrationError(f"no ONNX graph for activation '{act}'; known: none, relu6, {', '.join(_ACTS)}.")
        return self.node(_ACTS[act], [x])

    def kernel(self, k: Kernel, x: str, earlier: list[tuple[str, tuple[int, ...]]], rank: int) -> tuple[str, int]:
        """Append kernel ``k`` on tensor ``x`` (of rank ``rank``); return the output and its rank.

        ``earlier`` lists the chain's earlier tensors with their shapes: a residual add takes the
        latest one of its shape (the block input), or a constant when there is none.
        """
        if k.op in ("conv", "dwconv"):
            w = self.init(self.rng.normal(0.0, 0.1, (k.cout, k.cin // k.groups, k.kernel, k.kernel)))
            b = self.init(self.rng.normal(0.0, 0.1, k.cout))
            p = k.kernel // 2
            y = self.node("Conv", [x, w, b], kernel_shape=[k.kernel, k.kernel], strides=[k.stride, k.stride],
                          pads=[p, p, p, p], group=k.groups)
            return self.act(k.act, y), 4
        if k.op == "add":
            same = [name for name, shape in earlier if shape == _out_shape(k)]
            other = same[-1] if same else self.init(self.rng.random(_out_shape(k)), "r")
            return self.node("Add", [x, other]), 4
        if k.op == "pool" and k.h_out > 1:
            size = k.h_in // k.h_out
            return self.node("AveragePool", [x], kernel_shape=[size, size], strides=[size, size]), 4
        if k.op == "pool":
            return self.node("GlobalAveragePool", [x]), 4
        if k.op == "decide":  # softmax → max → compare with a threshold, as an exported exit does
            p = self.node("ReduceMax", [self.node("Softmax", [x], axis=1)], axes=[1], keepdims=0)
            return self.node("GreaterOrEqual", [self.node("ReduceMin", [p], keepdims=0), self.init(np.array(0.5))]), 0
        if k.op == "linear":
            if rank != 2:
                x = self.node("Flatten", [x], axis=1)
            w = self.init(self.rng.normal(0.0, 0.1, (k.cout, k.cin)))
            b = self.init(self.rng.normal(0.0, 0.1, k.cout))
            return self.act(k.act, self.node("Gemm", [x, w, b], transB=1)), 2
        raise CalibrationError(f"no ONNX graph for kernel op '{k.op}' ({k.name}); the host LUT supports "
                               "conv, dwconv, add, pool and linear.")


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dynnas")
    model.ir_version = 8
    return model.SerializeToString()


def chain_graph(kernels: Sequence[Kernel], rng: np.random.Generator) -> bytes:
    """Serialised ONNX model running ``kernels`` one after the other (random weights: latency does
    not depend on them)."""
    if not kernels:
        raise CalibrationError("a kernel chain needs at least one kernel, but got none.")
    g = _Graph(rng)
    first = kernels[0]
    x, rank = "x", len(input_shape(first))
    earlier: list[tuple[str, tuple[int, ...]]] = []
    for k in kernels:
        y, rank = g.kernel(k, x, earlier, rank)
        earlier.append((x, input_shape(k)))
        x = y
    if x == "x":
        x = g.node("Identity", [x])
    out_shape = _out_shape(kernels[-1]) if rank == 4 or kernels[-1].op == "linear" else None
    out_type = TensorProto.BOOL if kernels[-1].op == "decide" else TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "+".join(k.shape_key for k in kernels),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape(first)))],
        [helper.make_tensor_value_info(x, out_type, list(out_shape) if out_shape else None)],
        initializer=g.inits,
    )
    return _model(graph)


def kernel_graph(k: Kernel, rng: np.random.Generator) -> bytes:
    """Serialised ONNX model of kernel ``k`` alone."""
    return chain_graph([k], rng)


def null_graph() -> bytes:
    """A one-``Identity`` graph on one float: times the fixed cost of a session run."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "null",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])])
    return _model(graph)
