"""Kernels as tiny ONNX graphs, built directly with ``onnx.helper`` (no torch exporter).

Used to measure a latency lookup table. A graph holds exactly the nodes onnxruntime runs for
a chain of kernels in a deployed subnet: convs with BN folded into their bias and their
activation after them (ReLU6 = ``Clip(0, 6)``), a residual ``Add`` of the chain's own input
(which onnxruntime fuses into the conv before it, as in the full model), ``GlobalAveragePool``,
``Flatten`` and ``Gemm``. Token-wise kernels (a transformer's) run on ``(batch, tokens, channels)``
tensors: ``LayerNormalization``, ``MatMul`` + bias (+ the erf form of GELU), multi-head attention
as ``Reshape``/``Transpose``/``MatMul``/``Softmax`` and token reduction as ``TopK``/``GatherElements``
(pruning) or bipartite matching with ``ScatterElements(reduction="add")`` (merging). A chain of
one kernel is that kernel alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from predictors.errors import CalibrationError
from predictors.kernels import Kernel
from predictors.onnx_graph import OPSET

_ACTS = {"relu": "Relu", "hswish": "HardSwish", "hsigmoid": "HardSigmoid"}


TOKEN_OPS = frozenset({"attention", "norm", "act", "reduce"})


def _tokenwise(k: Kernel) -> bool:
    """A kernel on a (batch, tokens, channels) tensor (a transformer's), not on an NCHW map."""
    return k.op in TOKEN_OPS or (k.op in ("linear", "add") and k.rows > 1)


def input_shape(k: Kernel) -> tuple[int, ...]:
    """Shape of the input tensor of kernel ``k``."""
    if k.op == "attention":  # the fused q, k, v projections, or k and v when fewer queries ask (CLS only)
        return (k.batch, k.rows, (3 if k.h_out == k.rows else 2) * k.cin)
    if _tokenwise(k):
        return (k.batch, k.rows, k.cin)
    return (k.batch, k.cin) if k.op == "linear" else (k.batch, k.cin, k.h_in, k.h_in)


def _out_shape(k: Kernel) -> tuple[int, ...]:
    if k.op == "reduce":
        return (k.batch, k.h_out, k.cin)
    if k.op == "attention":
        return (k.batch, k.h_out, k.cout)
    if _tokenwise(k):
        return (k.batch, k.rows, k.cout)
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

    def const(self, values: list[int] | np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def gelu(self, x: str) -> str:
        """x * 0.5 * (1 + erf(x / sqrt 2)): the pattern onnxruntime fuses into one Gelu kernel."""
        e = self.node("Erf", [self.node("Div", [x, self.init(np.array(np.sqrt(2.0)))])])
        return self.node("Mul", [self.node("Mul", [x, self.node("Add", [e, self.init(np.array(1.0))])]),
                                 self.init(np.array(0.5))])

    def attention(self, k: Kernel, x: str, history: list[tuple[str, tuple[int, ...]]]) -> str:
        """softmax(q kᵀ / sqrt d) v over ``groups`` heads, from the fused (B, T, 3·h·d) projections; with
        fewer queries (``h_out``) than keys, from (B, T, 2·h·d) keys and values and the latest (B, Q, h·d)
        tensor of the chain as the queries."""
        b, t, h, nq = k.batch, k.rows, k.groups, k.h_out
        d = k.cin // h
        if nq == t:
            qkv = self.node("Transpose", [self.node("Reshape", [x, self.const([b, t, 3, h, d])])], perm=[2, 0, 3, 1, 4])
            q, kk, v = (self.node("Gather", [qkv, self.const(np.array(i))], axis=0) for i in range(3))
        else:
            kv = self.node("Transpose", [self.node("Reshape", [x, self.const([b, t, 2, h, d])])], perm=[2, 0, 3, 1, 4])
            kk, v = (self.node("Gather", [kv, self.const(np.array(i))], axis=0) for i in range(2))
            src = [name for name, shape in history if shape == (b, nq, h * d)]
            q_in = src[-1] if src else self.init(self.rng.random((b, nq, h * d)), "r")
            q = self.node("Transpose", [self.node("Reshape", [q_in, self.const([b, nq, h, d])])], perm=[0, 2, 1, 3])
        scores = self.node("Mul", [self.node("MatMul", [q, self.node("Transpose", [kk], perm=[0, 1, 3, 2])]),
                                   self.init(np.array(1.0 / np.sqrt(d)))])
        out = self.node("MatMul", [self.node("Softmax", [scores], axis=-1), v])
        return self.node("Reshape", [self.node("Transpose", [out], perm=[0, 2, 1, 3]), self.const([b, nq, h * d])])

    def token_input(self, k: Kernel, x: str, history: list[tuple[str, tuple[int, ...]]],
                    want: tuple[int, ...]) -> str:
        """The tensor a token-wise kernel reads: the chain's current one when its shape fits, else the latest
        earlier tensor of the right shape (k/v projections read the norm output, not the query), else the
        first tokens of the current one (a CLS-only query)."""
        have = history[-1][1]
        if have == want:
            return x
        for name, shape in reversed(history):
            if shape == want:
                return name
        if len(have) == 4 and have[1] == want[2] and have[2] * have[3] in (want[1], want[1] - 1):
            # a conv map becomes tokens (a patch embedding): flatten, transpose, and a CLS token in front
            b, c, n = have[0], have[1], have[2] * have[3]
            x = self.node("Transpose", [self.node("Reshape", [x, self.const([b, c, n])])], perm=[0, 2, 1])
            if want[1] == n + 1:
                x = self.node("Concat", [self.init(self.rng.random((b, 1, c)), "cls"), x], axis=1)
            return x
        if len(have) == 3 and have[0] == want[0] and have[2] == want[2] and have[1] > want[1]:
            return self.node("Slice", [x, self.const([0]), self.const([want[1]]), self.const([1])])
        raise CalibrationError(f"kernel '{k.name}' reads a {want} tensor but the chain holds {have}.")

    def reduce(self, k: Kernel, x: str) -> str:
        """Token reduction from ``h_in`` to ``h_out`` tokens, CLS (token 0) kept.

        ``topk``: scores, TopK, a gather of the kept tokens and one fused token (a weighted sum of all);
        ``tome``: bipartite matching (cosine similarities of alternate tokens, ArgMax, TopK of the best
        edges) and a scatter-add of the merged tokens into their partners. The real subnet's scores come
        from its attention; these graphs have the same ops and shapes.
        """
        b, t_in, t_out, c = k.batch, k.h_in, k.h_out, k.cin
        cls = self.node("Slice", [x, self.const([0]), self.const([1]), self.const([1])])
        rest = self.node("Slice", [x, self.const([1]), self.const([t_in]), self.const([1])])
        n = t_in - 1
        if k.variant == "tome":
            a = self.node("Slice", [rest, self.const([0]), self.const([n]), self.const([1]), self.const([2])])
            bb = self.node("Slice", [rest, self.const([1]), self.const([n]), self.const([1]), self.const([2])])
            na = (n + 1) // 2
            r = min(t_in - t_out, na)
            unit = self.node("Div", [a, self.node("ReduceL2", [a], axes=[-1], keepdims=1)])
            sim = self.node("MatMul", [unit, self.node("Transpose", [bb], perm=[0, 2, 1])])
            best = self.node("ReduceMax", [sim], axes=[-1], keepdims=0)
            partner = self.node("ArgMax", [sim], axis=-1, keepdims=0)
            order = self.name("t")
            self.nodes.append(helper.make_node("TopK", [best, self.const([na])], [self.name("t"), order], axis=-1))
            src_idx = self.node("Slice", [order, self.const([0]), self.const([r]), self.const([1])])
            keep_idx = self.node("Slice", [order, self.const([r]), self.const([na]), self.const([1])])

            def take(tokens: str, idx: str, m: int) -> str:
                full = self.node("Expand", [self.node("Unsqueeze", [idx, self.const([-1])]), self.const([b, m, c])])
                return self.node("GatherElements", [tokens, full], axis=1)

            src = take(a, src_idx, r)
            dst = self.node("GatherElements", [partner, src_idx], axis=1)
            dst_full = self.node("Expand", [self.node("Unsqueeze", [dst, self.const([-1])]), self.const([b, r, c])])
            merged = self.name("t")
            self.nodes.append(helper.make_node("ScatterElements", [bb, dst_full, src], [merged], axis=1,
                                               reduction="add"))
            kept = take(a, keep_idx, na - r)
            return self.node("Concat", [cls, kept, merged], axis=1)
        keep = t_out - 2 if t_out - 2 >= 1 and t_out < t_in else t_out - 1  # a fused token when tokens are dropped
        score = self.node("ReduceSum", [rest, self.const([-1])], keepdims=0)
        idx = self.name("t")
        self.nodes.append(helper.make_node("TopK", [score, self.const([keep])], [self.name("t"), idx], axis=-1))
        full = self.node("Expand", [self.node("Unsqueeze", [idx, self.const([-1])]), self.const([b, keep, c])])
        kept = self.node("GatherElements", [rest, full], axis=1)
        parts = [cls, kept]
        if keep == t_out - 2:
            weights = self.node("Softmax", [self.node("Unsqueeze", [score, self.const([1])])], axis=-1)
            parts.append(self.node("MatMul", [weights, rest]))
        return self.node("Concat", parts, axis=1)

    def act(self, act: str, x: str) -> str:
        if act == "none":
            return x
        if act == "gelu":
            return self.gelu(x)
        if act == "relu6":
            return self.node("Clip", [x, self.init(np.array(0.0)), self.init(np.array(6.0))])
        if act not in _ACTS:
            raise CalibrationError(f"no ONNX graph for activation '{act}'; known: none, relu6, {', '.join(_ACTS)}.")
        return self.node(_ACTS[act], [x])

    def kernel(self, k: Kernel, x: str, earlier: list[tuple[str, tuple[int, ...]]], rank: int,
               history: list[tuple[str, tuple[int, ...]]] | None = None) -> tuple[str, int]:
        """Append kernel ``k`` on tensor ``x`` (of rank ``rank``); return the output and its rank.

        ``earlier`` lists the chain's earlier kernel inputs with their shapes: a residual add takes the
        latest one of its shape (the block input), or a constant when there is none. ``history`` lists
        every tensor of the chain so far (inputs and outputs) for token-wise kernels that read an
        earlier tensor.
        """
        history = history if history is not None else [(x, input_shape(k))]
        if k.op in ("conv", "dwconv"):
            w = self.init(self.rng.normal(0.0, 0.1, (k.cout, k.cin // k.groups, k.kernel, k.kernel)))
            b = self.init(self.rng.normal(0.0, 0.1, k.cout))
            p = max(0, -(-((k.h_out - 1) * k.stride + k.kernel - k.h_in) // 2))  # k // 2, or 0 for a patch embedding
            y = self.node("Conv", [x, w, b], kernel_shape=[k.kernel, k.kernel], strides=[k.stride, k.stride],
                          pads=[p, p, p, p], group=k.groups)
            return self.act(k.act, y), 4
        if k.op == "add":
            same = [name for name, shape in earlier if shape == _out_shape(k)]
            other = same[-1] if same else self.init(self.rng.random(_out_shape(k)), "r")
            return self.node("Add", [x, other]), (3 if _tokenwise(k) else 4)
        if k.op == "pool" and k.h_out > 1:
            size = k.h_in // k.h_out
            return self.node("AveragePool", [x], kernel_shape=[size, size], strides=[size, size]), 4
        if k.op == "pool":
            return self.node("GlobalAveragePool", [x]), 4
        if k.op == "decide":  # softmax → max → compare with a threshold, as an exported exit does
            p = self.node("ReduceMax", [self.node("Softmax", [x], axis=1)], axes=[1], keepdims=0)
            return self.node("GreaterOrEqual", [self.node("ReduceMin", [p], keepdims=0), self.init(np.array(0.5))]), 0
        if k.op == "attention":
            return self.attention(k, x, history), 3
        if k.op == "norm":
            scale, bias = self.init(np.ones(k.cin)), self.init(np.zeros(k.cin))
            return self.node("LayerNormalization", [x, scale, bias], axis=-1), 3
        if k.op == "act":
            return self.act(k.act if k.act != "none" else "gelu", x), rank
        if k.op == "reduce":
            return self.reduce(k, x), 3
        if k.op == "linear" and rank == 3:
            w = self.init(self.rng.normal(0.0, 0.1, (k.cin, k.cout)))
            b = self.init(self.rng.normal(0.0, 0.1, k.cout))
            return self.act(k.act, self.node("Add", [self.node("MatMul", [x, w]), b])), 3
        if k.op == "linear":
            if rank != 2:
                x = self.node("Flatten", [x], axis=1)
            w = self.init(self.rng.normal(0.0, 0.1, (k.cout, k.cin)))
            b = self.init(self.rng.normal(0.0, 0.1, k.cout))
            return self.act(k.act, self.node("Gemm", [x, w, b], transB=1)), 2
        raise CalibrationError(f"no ONNX graph for kernel op '{k.op}' ({k.name}); the host LUT supports "
                               "conv, dwconv, add, pool, linear, attention, norm, act and reduce.")


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
    history: list[tuple[str, tuple[int, ...]]] = [(x, input_shape(first))]
    for k in kernels:
        have = history[-1][1]
        on_map = k.op == "act" and len(have) == 4  # an activation after a conv (a stem's GELU)
        one_token = len(have) == 3 and not _tokenwise(k) and k.op in ("linear", "add", "pool", "decide")
        if one_token:  # the CLS token of a transformer: picked (``pool``), then normed and classified
            if k.op == "pool":
                x = g.token_input(k, x, history, (have[0], 1, have[2]))
                history.append((x, (have[0], 1, have[2])))
                earlier.append((x, history[-1][1]))
                continue
            want = (k.batch, 1, k.cin)
            x = g.token_input(k, x, history, want) if k.op != "decide" else x
            y, rank = g.kernel(k, x, earlier, 3, history)
            earlier.append((x, want))
            history.append((y, (k.batch, 1, k.cout)))
            x = y
            continue
        if _tokenwise(k) and not on_map:
            x = g.token_input(k, x, history, input_shape(k))
        y, rank = g.kernel(k, x, earlier, rank, history)
        earlier.append((x, have if on_map else input_shape(k)))
        history.append((y, have if on_map else _out_shape(k)))
        x = y
    if x == "x":
        x = g.node("Identity", [x])
    out_shape = history[-1][1] if rank in (3, 4) or kernels[-1].op == "linear" else None
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
