"""Micro-benchmark ONNX graphs for ``dynnas profile``, and the seeded weights of the reference models.

Each :class:`Bench` is a chain of ``depth`` copies of one op of an op class of the latency model (conv,
depthwise conv, gemm, attention, norm, elementwise, pool, data movement, ``If``), built with
``onnx.helper``, with its FLOPs and bytes per op counted by hand. :func:`micro_benchmarks` is the suite
(a *tiny* chain per class, then the size sweeps), :func:`reference_bench` the graph every timing is
relative to, and :func:`randomize_weights` fills a reference model's weights with seeded random values.
Needs only onnx and numpy (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
COMPUTE_CLASSES = ("conv", "dwconv", "gemm", "attention")
MEMORY_CLASSES = ("norm", "elementwise", "pool", "data")
# Classes whose tiny op is one kernel: kernel_overhead is the median of their per-op cost.
SINGLE_KERNEL_CLASSES = ("conv", "dwconv", "gemm", "norm", "elementwise", "pool", "data")


# ---- micro-benchmark graphs -----------------------------------------------------------------------
@dataclass(frozen=True)
class Bench:
    """One micro-benchmark graph: ``depth`` copies of an op of ``op_class`` in a chain.

    ``flops`` and ``bytes`` are per op (``flops = 2 * MACs``; bytes = inputs + outputs + weights read or
    written, fp32); ``kernels`` is how many kernels one op launches (attention: 4).
    """

    key: str
    op_class: str
    label: str
    model: onnx.ModelProto = field(repr=False)
    depth: int
    flops: float
    bytes: float
    kernels: int = 1
    tiny: bool = False
    feeds: Mapping[str, np.ndarray] | None = field(default=None, repr=False)  # fixed inputs (else seeded random)
    kernel: int = 0  # the conv's kernel size (0: not a conv): op_rates are kept per class and kernel size


def _vi(name: str, shape: Sequence[int], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
           inits: Iterable[onnx.TensorProto] = (), name: str = "bench") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, [output], initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dynnas-profile")
    model.ir_version = 8
    return model


def _weight(rng: np.random.Generator, shape: Sequence[int], fan_in: int, name: str) -> onnx.TensorProto:
    w = rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(math.sqrt(2.0 / max(fan_in, 1)))
    return numpy_helper.from_array(w, name)


def conv_bench(rng: np.random.Generator, c: int, h: int, k: int, depth: int, *, depthwise: bool = False,
               tiny: bool = False) -> Bench:
    """``depth`` convs ``c -> c`` (``k x k``, stride 1, same padding, with bias) on ``1 x c x h x h``."""
    groups, cin = (c, 1) if depthwise else (1, c)
    nodes, inits = [], []
    for i in range(depth):
        inits += [_weight(rng, (c, cin, k, k), cin * k * k, f"w{i}"), numpy_helper.from_array(
            np.zeros(c, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [f"x{i}", f"w{i}", f"b{i}"], [f"x{i + 1}"], kernel_shape=[k, k],
                                      pads=[k // 2] * 4, group=groups))
    act = c * h * h
    macs = act * cin * k * k
    kind = "dwconv" if depthwise else "conv"
    label = f"{kind} {k}x{k} {c}ch {h}x{h}"
    return Bench(f"{kind}:{k}x{k}:{c}x{h}", kind, label,
                 _model(nodes, [_vi("x0", (1, c, h, h))], _vi(f"x{depth}", (1, c, h, h)), inits), depth,
                 2.0 * macs, 4.0 * (2 * act + c * cin * k * k + c), tiny=tiny, kernel=k)


def gemm_bench(rng: np.random.Generator, m: int, k: int, n: int, depth: int, *, tiny: bool = False) -> Bench:
    """``depth`` MatMuls with constant weights, alternately ``[m,k] x [k,n]`` and ``[m,n] x [n,k]``."""
    nodes, inits = [], []
    dims = (k, n)
    for i in range(depth):
        a, b = dims if i % 2 == 0 else dims[::-1]
        inits.append(_weight(rng, (a, b), a, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [f"x{i + 1}"]))
    out = n if depth % 2 else k
    return Bench(f"gemm:{m}x{k}x{n}", "gemm", f"gemm {m}x{k}x{n}",
                 _model(nodes, [_vi("x0", (m, k))], _vi(f"x{depth}", (m, out)), inits), depth,
                 2.0 * m * k * n, 4.0 * (m * k + k * n + m * n), tiny=tiny)


def attention_bench(rng: np.random.Generator, heads: int, tokens: int, dim: int, depth: int, *,
                    tiny: bool = False) -> Bench:
    """``depth`` attention blocks ``softmax(Q K^T / sqrt(d)) V`` (K given transposed); the output is the next Q."""
    nodes, inits = [], [numpy_helper.from_array(np.array(1.0 / math.sqrt(dim), np.float32), "scale")]
    for i in range(depth):
        nodes += [helper.make_node("MatMul", [f"q{i}", "kt"], [f"s{i}"]),
                  helper.make_node("Mul", [f"s{i}", "scale"], [f"z{i}"]),
                  helper.make_node("Softmax", [f"z{i}"], [f"p{i}"], axis=-1),
                  helper.make_node("MatMul", [f"p{i}", "v"], [f"q{i + 1}"])]
    qkv = heads * tokens * dim
    scores = heads * tokens * tokens
    shape = (1, heads, tokens, dim)
    inputs = [_vi("q0", shape), _vi("kt", (1, heads, dim, tokens)), _vi("v", shape)]
    return Bench(f"attention:{heads}x{tokens}x{dim}", "attention", f"attention {heads} heads x {tokens} tokens x {dim}",
                 _model(nodes, inputs, _vi(f"q{depth}", shape), inits), depth, 4.0 * scores * dim,
                 4.0 * (4 * qkv + 6 * scores), kernels=4, tiny=tiny)


def elementwise_bench(n: int, depth: int, *, tiny: bool = False) -> Bench:
    """``depth`` Adds ``x_{i+1} = x_i + y`` of ``n`` floats (3 streams: read 2, write 1)."""
    nodes = [helper.make_node("Add", [f"x{i}", "y"], [f"x{i + 1}"]) for i in range(depth)]
    mb = 4 * n / 2**20
    return Bench(f"elementwise:{n}:d{depth}", "elementwise", f"add {n} floats ({mb:.3g} MiB)",
                 _model(nodes, [_vi("x0", (n,)), _vi("y", (n,))], _vi(f"x{depth}", (n,))), depth, 0.0,
                 12.0 * n, tiny=tiny)


def norm_bench(rng: np.random.Generator, kind: str, shape: tuple[int, ...], depth: int, *,
               tiny: bool = False) -> Bench:
    """``depth`` LayerNormalization (last axis) or BatchNormalization (inference) nodes on ``shape``."""
    nodes, inits = [], []
    c = shape[-1] if kind == "layernorm" else shape[1]
    for i in range(depth):
        names = [f"g{i}", f"b{i}"] + ([f"m{i}", f"v{i}"] if kind == "batchnorm" else [])
        values = [np.ones(c), rng.standard_normal(c) * 0.1, np.zeros(c), np.ones(c)]
        inits += [numpy_helper.from_array(v.astype(np.float32), nm) for nm, v in zip(names, values, strict=False)]
        op = "LayerNormalization" if kind == "layernorm" else "BatchNormalization"
        attrs = {"axis": -1, "epsilon": 1e-5} if kind == "layernorm" else {"epsilon": 1e-5}
        nodes.append(helper.make_node(op, [f"x{i}", *names], [f"x{i + 1}"], **attrs))
    n = int(np.prod(shape))
    dims = "x".join(map(str, shape))
    return Bench(f"norm:{kind}:{dims}", "norm", f"{kind} {dims}",
                 _model(nodes, [_vi("x0", shape)], _vi(f"x{depth}", shape), inits), depth, 0.0,
                 4.0 * (2 * n + len(names) * c), tiny=tiny)


def _parallel(op: str, shape: tuple[int, ...], out: tuple[int, ...], depth: int, **attrs: object) -> onnx.ModelProto:
    """``depth`` copies of a one-input op, each on its own graph input (distinct inputs: onnxruntime's
    common-subexpression elimination would merge copies of one input, and consecutive Transposes cancel)."""
    nodes = [helper.make_node(op, [f"x{i}"] * (2 if op == "Concat" else 1), [f"y{i}"], **attrs) for i in range(depth)]
    graph = helper.make_graph(nodes, "bench", [_vi(f"x{i}", shape) for i in range(depth)],
                              [_vi(f"y{i}", out) for i in range(depth)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dynnas-profile")
    model.ir_version = 8
    return model


def pool_bench(kind: str, c: int, h: int, depth: int, *, tiny: bool = False) -> Bench:
    """``depth`` MaxPools 3x3 stride 1 (a chain), or ``depth`` GlobalAveragePools side by side, on ``1 x c x h x h``."""
    n = c * h * h
    if kind == "maxpool":
        nodes = [helper.make_node("MaxPool", [f"x{i}"], [f"x{i + 1}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
                 for i in range(depth)]
        model = _model(nodes, [_vi("x0", (1, c, h, h))], _vi(f"x{depth}", (1, c, h, h)))
        nbytes = 8.0 * n
    else:
        model, nbytes = _parallel("GlobalAveragePool", (1, c, h, h), (1, c, 1, 1), depth), 4.0 * (n + c)
    return Bench(f"pool:{kind}:{c}x{h}", "pool", f"{kind} {c}ch {h}x{h}", model, depth, 0.0, nbytes, tiny=tiny)


def data_bench(rng: np.random.Generator, kind: str, c: int, h: int, depth: int, *, tiny: bool = False) -> Bench:
    """Data movement, ``depth`` ops side by side: Transposes (swap the last two axes) or Concats of a
    ``1 x c x h x h`` tensor with itself, or Gathers of ``h`` random rows from a ``c x 768`` table."""
    n = c * h * h
    feeds = None
    if kind == "transpose":
        model, nbytes = _parallel("Transpose", (1, c, h, h), (1, c, h, h), depth, perm=[0, 1, 3, 2]), 8.0 * n
    elif kind == "concat":
        model, nbytes = _parallel("Concat", (1, c, h, h), (1, 2 * c, h, h), depth, axis=1), 16.0 * n
    else:  # gather: embedding lookups; the indices are inputs, so nothing is folded at session creation
        table = numpy_helper.from_array(rng.standard_normal((c, 768), dtype=np.float32), "table")
        nodes = [helper.make_node("Gather", ["table", f"idx{i}"], [f"y{i}"], axis=0) for i in range(depth)]
        graph = helper.make_graph(nodes, "bench", [_vi(f"idx{i}", (h,), TensorProto.INT64) for i in range(depth)],
                                  [_vi(f"y{i}", (h, 768)) for i in range(depth)], initializer=[table])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dynnas-profile")
        model.ir_version = 8
        feeds = {f"idx{i}": rng.integers(0, c, h).astype(np.int64) for i in range(depth)}
        nbytes = 8.0 * h * 768 + 8.0 * h
    label = f"{kind} {h} rows of {c}x768" if kind == "gather" else f"{kind} {c}ch {h}x{h}"
    return Bench(f"data:{kind}:{c}x{h}", "data", label, model, depth, 0.0, nbytes, tiny=tiny, feeds=feeds)


def if_bench(depth: int) -> Bench:
    """``depth`` ``If`` nodes on a boolean input; each branch runs one kernel on a 1-element tensor."""
    nodes = []
    for i in range(depth):
        then = helper.make_graph([helper.make_node("Relu", [f"x{i}"], [f"t{i}"])], f"then{i}", [], [_vi(f"t{i}", (1,))])
        other = helper.make_graph([helper.make_node("Neg", [f"x{i}"], [f"e{i}"])], f"else{i}", [], [_vi(f"e{i}", (1,))])
        nodes.append(helper.make_node("If", ["cond"], [f"x{i + 1}"], then_branch=then, else_branch=other))
    inputs = [_vi("cond", (), TensorProto.BOOL), _vi("x0", (1,))]
    return Bench("if:1", "if", "If with a 1-kernel branch", _model(nodes, inputs, _vi(f"x{depth}", (1,))), depth,
                 0.0, 8.0, kernels=1, tiny=True)


def reference_bench() -> onnx.ModelProto:
    """The graph every timing is relative to: two 3x3 convs (32 channels, 28x28) with ReLU (~29 MFLOP)."""
    rng = np.random.default_rng(12345)  # fixed: the reference is the same graph in every profile
    nodes, inits = [], []
    for i in range(2):
        inits += [_weight(rng, (32, 32, 3, 3), 288, f"w{i}"), numpy_helper.from_array(np.zeros(32, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [f"r{i}", f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], pads=[1] * 4),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i + 1}"])]
    return _model(nodes, [_vi("r0", (1, 32, 28, 28))], _vi("r2", (1, 32, 28, 28)), inits, name="reference")


def micro_benchmarks(quick: bool, seed: int = 0, *, max_tensor_bytes: float = 512e6) -> list[Bench]:
    """The micro-benchmark suite: a tiny chain per op class, then the size sweeps (fewer with ``quick``).

    ``max_tensor_bytes`` caps the largest elementwise tensor (the bandwidth probe) on small-memory boards.
    """
    rng = np.random.default_rng(seed)
    tiny_depth = 32 if quick else 64
    # Chains of 1-element Adds of several lengths: their intercept is the fixed cost of a session run.
    out = [elementwise_bench(1, d, tiny=True) for d in ((1, tiny_depth) if quick else (1, 16, tiny_depth, 128))]
    out += [conv_bench(rng, 4, 4, 3, tiny_depth, tiny=True), conv_bench(rng, 8, 4, 3, tiny_depth, depthwise=True,
                                                                        tiny=True),
            gemm_bench(rng, 1, 8, 8, tiny_depth, tiny=True), attention_bench(rng, 1, 4, 8, tiny_depth // 4, tiny=True),
            norm_bench(rng, "layernorm", (1, 8), tiny_depth, tiny=True),
            pool_bench("maxpool", 1, 4, tiny_depth, tiny=True),
            data_bench(rng, "transpose", 1, 4, tiny_depth, tiny=True), if_bench(tiny_depth)]
    if quick:
        convs = [(64, 28, 3), (128, 14, 3), (256, 14, 1)]
        dws = [(144, 28), (576, 7)]
        dws5 = [(480, 14)]
        gemms = [(1, 1024, 1024), (197, 768, 768), (512, 512, 512)]
        attns = [(12, 197, 64)]
        adds = [2**14, 2**20, 2**23]
        norms = [("layernorm", (197, 768)), ("batchnorm", (1, 64, 56, 56))]
        pools = [("maxpool", 64, 56), ("globalavgpool", 1280, 7)]
        datas = [("transpose", 64, 56), ("gather", 1000, 197)]
    else:
        convs = [(32, 112, 3), (64, 56, 3), (128, 28, 3), (256, 14, 3), (512, 7, 3), (64, 56, 1), (256, 14, 1),
                 (1024, 7, 1)]
        dws = [(32, 112), (144, 56), (192, 28), (576, 14), (960, 7)]
        dws5 = [(240, 28), (480, 14), (672, 14), (1152, 7)]  # EfficientNet's 5x5 depthwise stages
        gemms = [(1, 1280, 1000), (197, 768, 768), (197, 768, 3072), (512, 512, 512), (1024, 1024, 1024)]
        attns = [(12, 197, 64), (4, 784, 32), (8, 1024, 64)]
        adds = [2**14, 2**18, 2**21, 2**23, 2**25]
        norms = [("layernorm", (197, 768)), ("layernorm", (3136, 96)), ("batchnorm", (1, 64, 112, 112)),
                 ("batchnorm", (1, 256, 28, 28))]
        pools = [("maxpool", 64, 112), ("maxpool", 256, 28), ("globalavgpool", 1280, 7), ("globalavgpool", 64, 112)]
        datas = [("transpose", 64, 112), ("transpose", 256, 28), ("concat", 64, 56), ("gather", 30522, 512)]
    adds = [n for n in adds if 4 * n <= max_tensor_bytes] or adds[:1]
    out += [conv_bench(rng, c, h, k, 4) for c, h, k in convs]
    out += [conv_bench(rng, c, h, 3, 4, depthwise=True) for c, h in dws]
    out += [conv_bench(rng, c, h, 5, 4, depthwise=True) for c, h in dws5]
    out += [gemm_bench(rng, m, k, n, 2) for m, k, n in gemms]
    out += [attention_bench(rng, hh, t, d, 2) for hh, t, d in attns]
    out += [elementwise_bench(n, 4) for n in adds]
    out += [norm_bench(rng, kind, shape, 4) for kind, shape in norms]
    out += [pool_bench(kind, c, h, 4) for kind, c, h in pools]
    out += [data_bench(rng, kind, c, h, 4) for kind, c, h in datas]
    return out


# ---- reference models -----------------------------------------------------------------------------
def randomize_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """A copy of ``model`` whose float weights are seeded random values (variance-preserving scale).

    Normalisation parameters become an identity (scale 1, bias 0, mean 0, variance 1) so activations stay
    finite through deep nets; weights without data (``weights="shape-only"``) or larger than 64 values get
    ``N(0, 2 / fan_in)``, 1-D ones (biases) ``N(0, 0.01^2)``; small constants with data (clip bounds, scales)
    are kept.
    """
    rng = np.random.default_rng(seed)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    fixed: dict[str, float] = {}
    fan_in_axis: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            fixed.update({node.input[1]: 1.0, node.input[2]: 0.0, node.input[3]: 0.0, node.input[4]: 1.0})
        elif node.op_type == "LayerNormalization":
            fixed.update({name: v for name, v in zip(node.input[1:3], (1.0, 0.0), strict=False)})
        elif node.op_type == "MatMul" and len(node.input) > 1:
            fan_in_axis[node.input[1]] = 0
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            fan_in_axis[node.input[1]] = 1 if trans_b else 0
    for i, t in enumerate(model.graph.initializer):
        if t.data_type != TensorProto.FLOAT:
            continue
        dims = tuple(t.dims)
        size = int(np.prod(dims)) if dims else 1
        has_data = bool(t.raw_data) or len(t.float_data) > 0
        if t.name in fixed:
            arr = np.full(dims, fixed[t.name], np.float32)
        elif has_data and size <= 64:
            continue
        elif len(dims) <= 1:
            arr = (rng.standard_normal(dims, dtype=np.float32) * np.float32(0.01))
        else:
            fan_in = dims[fan_in_axis[t.name]] if t.name in fan_in_axis else int(np.prod(dims[1:]))
            if len(dims) == 3:  # embeddings (class token, positions): ViT's init scale
                arr = rng.standard_normal(dims, dtype=np.float32) * np.float32(0.02)
            else:
                arr = rng.standard_normal(dims, dtype=np.float32) * np.float32(math.sqrt(2.0 / max(fan_in, 1)))
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
    return model
