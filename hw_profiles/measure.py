"""Measure a device profile on the machine it runs on: micro-benchmarks per op class, then reference models.

``dynnas profile`` runs this on a target device and brings back a profile YAML with the schema of
the shipped ones (``measured: true``). It needs only onnx, onnxruntime, numpy, pyyaml and pydantic:
no torch, so it runs where only an inference runtime is installed (a Jetson, a Pi, a phone board).

1. **Micro-benchmarks.** Small ONNX graphs built with ``onnx.helper`` for each op class of the latency
   model (conv, depthwise conv, gemm, attention, norm, elementwise, pool, data movement, ``If``),
   each a chain of ``depth`` copies of one op, swept over sizes, plus a *tiny* chain per class
   (almost no work per op). ``t_op = (t_graph - a) / depth`` where ``a`` is the fixed cost of one
   session run (the intercept of the tiny elementwise chains over their length).
2. **Fit.** Per class, the tiny op's ``t_op`` is its per-kernel overhead ``o_class``; a sized op's
   work time is ``t_op - o_class``. Compute classes give FLOP/s (``flops / work``), memory classes
   bytes/s. The profile's ``peak_compute`` is the best FLOP/s of any class and size,
   ``memory_bandwidth`` the elementwise byte rate at the sizes beyond the caches, and
   ``kernel_overhead`` the median of ``o_class`` over the single-kernel classes.
3. **Reference models** (graphs given by the caller, see ``nas/cmd_profile.py``), their weights
   replaced by seeded random values, are timed at batch 1: they become the profile's calibration
   points, to which the latency predictors fit their roofline.

Timing protocol (as for the host lookup table): every measurement is taken *relative to a reference
graph* run in a block just before each block of the measured model, so a shared CPU's speed swings
hit both; a model's figure is the median over blocks of (its block median / the reference block's
median), times the reference's median over the whole run. Warm-up runs come first.

Example::

    result = measure_profile(ProfileSettings(name="my-board", threads=4), reference_graph)
    write_profile(Path("my-board.yaml"), result)
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import yaml
from onnx import TensorProto, helper, numpy_helper

from hw_profiles.errors import ProfileError
from hw_profiles.reference import REFERENCE_MODELS
from hw_profiles.schema import SCHEMA_VERSION, DeviceProfile

OPSET = 17
# --provider names and the onnxruntime execution providers they stand for (first = the one asked for).
PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
COMPUTE_CLASSES = ("conv", "dwconv", "gemm", "attention")
MEMORY_CLASSES = ("norm", "elementwise", "pool", "data")
# Classes whose tiny op is one kernel: kernel_overhead is the median of their per-op cost.
SINGLE_KERNEL_CLASSES = ("conv", "dwconv", "gemm", "norm", "elementwise", "pool", "data")
POWER_MODE = "measured"
# A reference graph whose block medians spread more than this (p90 / p10) ran on a busy machine: other
# processes shared the cores, and multi-threaded kernels slow down more than the reference under contention,
# so the ratios do not cancel it. The profile says so in its notes and the command warns.
NOISY_SPREAD = 1.25
Progress = Callable[[str, int, int], None]


class MeasurementError(ProfileError):
    """A profile cannot be measured or written as asked (bad provider, threads or output path)."""


# ---- settings and protocol ------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """How long each model is timed. A block of ``ref_block`` reference runs precedes each block of the
    model; a model block holds as many runs as fit in ``block_s`` (1 to ``max_block``)."""

    warmup_s: float  # untimed runs until this long has passed (at least one run)
    blocks: int  # timed blocks per model (split over ``rounds`` passes for the micro-benchmarks)
    block_s: float
    max_block: int
    ref_block: int
    rounds: int  # passes over the micro-benchmarks, each in a new seeded order


QUICK = Protocol(warmup_s=0.004, blocks=3, block_s=0.004, max_block=5, ref_block=3, rounds=1)
FULL = Protocol(warmup_s=0.05, blocks=10, block_s=0.03, max_block=9, ref_block=3, rounds=2)


@dataclass(frozen=True, kw_only=True)
class ProfileSettings:
    """What ``dynnas profile`` was asked for; validated on construction."""

    name: str
    provider: str = "cpu"
    threads: int = 1
    quick: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or self.threads < 1:
            raise MeasurementError(f"--threads must be >= 1, but got {self.threads}; pass e.g. --threads "
                                   f"{default_threads()} (this machine's CPUs).")
        check_provider(self.provider)

    @property
    def protocol(self) -> Protocol:
        return QUICK if self.quick else FULL

    @property
    def providers(self) -> tuple[str, ...]:
        return PROVIDERS[self.provider]


def default_threads() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_provider(provider: str) -> tuple[str, ...]:
    """The execution providers for ``--provider``; an error naming the known names or those this build has."""
    if provider not in PROVIDERS:
        import difflib

        match = difflib.get_close_matches(provider, list(PROVIDERS), n=1, cutoff=0.5)
        hint = f"; did you mean '{match[0]}'?" if match else "."
        raise MeasurementError(f"unknown provider '{provider}'{hint} Known: {', '.join(PROVIDERS)}.")
    wanted = PROVIDERS[provider][0]
    available = ort.get_available_providers()
    if wanted not in available:
        ours = [k for k, v in PROVIDERS.items() if v[0] in available]
        others = [p for p in available if p not in {v[0] for v in PROVIDERS.values()}]
        names = ", ".join([f"{k} ({PROVIDERS[k][0]})" for k in ours] + others)
        raise MeasurementError(
            f"provider '{provider}' needs {wanted}, which this onnxruntime {ort.__version__} build does not have; "
            f"available: {names}. Pass --provider {ours[0] if ours else 'cpu'}, or install an onnxruntime build "
            f"with {wanted} (e.g. onnxruntime-gpu).")
    return PROVIDERS[provider]


def check_out_path(path: Path) -> None:
    """Fail before any measurement when a profile cannot be written to ``path``; leaves nothing behind.

    The file must end in ``.yaml``/``.yml`` (so ``--device FILE`` reads it as a file) and its folder must
    exist or be creatable, and take a new file: a real temp file is made and removed (``os.access`` says
    yes to root, and on ``/proc``, where creating a file then fails).
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise MeasurementError(f"--out '{path}' must end in .yaml or .yml (so `--device {path.stem}.yaml` reads it "
                               "as a file); pass e.g. --out my-board.yaml.")
    if path.is_dir():
        raise MeasurementError(f"--out '{path}' is a folder; pass a file path, e.g. --out {path / 'profile.yaml'}.")
    missing, p = [], path.parent
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise MeasurementError(f"--out '{path}' cannot be created: '{p}' is a file, not a folder; pass a path in a "
                               "writable folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MeasurementError(f"--out '{path}' is not writable ({e.strerror or e}); pass a path in a writable "
                               "folder.") from None
    finally:
        for d in missing:  # created only for the probe: the real write creates them again
            try:
                d.rmdir()
            except OSError:
                pass


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
                 2.0 * macs, 4.0 * (2 * act + c * cin * k * k + c), tiny=tiny)


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


# ---- timing ---------------------------------------------------------------------------------------
class Runner:
    """One model in an onnxruntime session with fixed seeded inputs; calling it runs the model once.

    CPU: ``session.run`` on numpy inputs. A GPU provider binds inputs and outputs on the device
    (``run_with_iobinding``, which waits for the device), so host copies are not timed.
    """

    def __init__(self, model: onnx.ModelProto | bytes, providers: Sequence[str], threads: int, seed: int,
                 feeds: Mapping[str, np.ndarray] | None = None) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 4  # fatal only: a failing model is reported from its exception
        data = model if isinstance(model, bytes) else model.SerializeToString()
        self.session = ort.InferenceSession(data, so, providers=list(providers))
        rng = np.random.default_rng(seed)
        self.feeds = {}
        for inp in self.session.get_inputs():
            shape = tuple(int(d) for d in inp.shape)
            if feeds is not None and inp.name in feeds:
                self.feeds[inp.name] = np.asarray(feeds[inp.name])
            elif inp.type == "tensor(bool)":
                self.feeds[inp.name] = np.array(True)
            else:
                self.feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
        self.on_device = providers[0] != "CPUExecutionProvider"
        if self.on_device:
            self.binding = self.session.io_binding()
            for name, value in self.feeds.items():
                self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
            for out in self.session.get_outputs():
                self.binding.bind_output(out.name, "cuda")
            self._run = lambda: self.session.run_with_iobinding(self.binding)
        else:
            run, feeds = self.session.run, self.feeds
            self._run = lambda: run(None, feeds)

    def __call__(self) -> None:
        self._run()

    def outputs_finite(self) -> bool:
        """Whether one run's outputs hold only finite numbers (random weights gave a sane network)."""
        outs = self.session.run(None, self.feeds)
        return all(np.isfinite(o).all() for o in outs if np.issubdtype(np.asarray(o).dtype, np.floating))


@dataclass(frozen=True)
class Timing:
    """A model's latency relative to the interleaved reference: ``ratio`` is the median over blocks of
    (model block median / preceding reference block median); ``ms = ratio * reference ms`` of the run."""

    ratio: float
    ratio_p10: float
    ratio_p90: float
    raw_median_ms: float
    blocks: int
    runs: int

    def ms(self, reference_ms: float) -> float:
        return self.ratio * reference_ms


class RelativeTimer:
    """Times models against one reference runner, keeping every reference run of the whole profile."""

    def __init__(self, reference: Runner, protocol: Protocol) -> None:
        self.reference, self.protocol = reference, protocol
        self.ref_runs: list[float] = []
        self.ref_blocks: list[float] = []
        self._ratios: dict[str, list[float]] = {}
        self._raw: dict[str, list[float]] = {}
        self._block: dict[str, int] = {}
        self._warmup(reference)

    def _warmup(self, run: Runner) -> float:
        """Untimed runs for ``warmup_s`` (at least 2); the last run's seconds."""
        clock, end = time.perf_counter, time.perf_counter() + self.protocol.warmup_s
        n, dt = 0, 0.0
        while n < 2 or clock() < end:
            t0 = clock()
            run()
            dt = clock() - t0
            n += 1
        return dt

    def measure(self, key: str, run: Runner, blocks: int) -> None:
        """Warm ``run`` up, then time ``blocks`` blocks of it, each after a block of reference runs."""
        p, clock = self.protocol, time.perf_counter
        last = self._warmup(run)
        if key not in self._block:  # the block size is fixed on first sight: a model's runs fill ~block_s
            self._block[key] = int(min(p.max_block, max(1, math.ceil(p.block_s / max(last, 1e-9)))))
        n = self._block[key]
        tr, tm = np.empty(p.ref_block), np.empty(n)
        ref = self.reference
        for _ in range(blocks):
            for j in range(p.ref_block):
                t0 = clock()
                ref()
                tr[j] = clock() - t0
            for j in range(n):
                t0 = clock()
                run()
                tm[j] = clock() - t0
            r_med = float(np.median(tr))
            self._ratios.setdefault(key, []).append(float(np.median(tm)) / r_med)
            self._raw.setdefault(key, []).extend(tm.tolist())
            self.ref_runs.extend(tr.tolist())
            self.ref_blocks.append(r_med)

    @property
    def reference_ms(self) -> float:
        """Median of every reference run so far, in ms: the speed all figures are quoted at."""
        return 1e3 * float(np.median(self.ref_runs))

    @property
    def spread(self) -> float:
        """p90 / p10 of the reference's block medians: how much the machine's speed moved."""
        return float(np.percentile(self.ref_blocks, 90) / np.percentile(self.ref_blocks, 10))

    def timing(self, key: str) -> Timing:
        r = np.asarray(self._ratios[key])
        return Timing(float(np.median(r)), float(np.percentile(r, 10)), float(np.percentile(r, 90)),
                      1e3 * float(np.median(self._raw[key])), len(r), len(self._raw[key]))


# ---- fit ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MicroFit:
    """What the micro-benchmarks give: the session's fixed cost, per-class overheads and rates."""

    session_us: float  # fixed cost of one session run (a)
    overhead_us: dict[str, float]  # per-kernel cost of a tiny op of each class (o_class); "if": per If node
    kernel_overhead_us: float  # median of overhead_us over SINGLE_KERNEL_CLASSES
    best: dict[str, dict[str, Any]]  # class -> best rate (FLOP/s or B/s) with the bench that reached it
    peak_flops: float  # max over compute classes
    peak_class: str
    bandwidth: float  # elementwise bytes/s beyond the caches
    bandwidth_sizes: list[str]
    rows: list[dict[str, Any]]  # one per bench


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Robust line ``y = a + b x``: the median of pairwise slopes, then the median intercept."""
    slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(len(x)) for j in range(i + 1, len(x)) if x[j] != x[i]]
    b = float(np.median(slopes))
    return float(np.median(y - b * x)), b


def fit_micro(benches: Sequence[Bench], ms: Mapping[str, float]) -> MicroFit:
    """Fit the session cost, per-class overheads, peak FLOP/s and bandwidth from per-bench latencies (ms)."""
    chains = [b for b in benches if b.op_class == "elementwise" and b.tiny]
    x = np.array([b.depth for b in chains], float)
    y = np.array([ms[b.key] * 1e3 for b in chains])  # us
    a, slope = _theil_sen(x, y)
    a = max(a, 0.0)
    overhead: dict[str, float] = {"elementwise": max(slope, 1e-3)}
    for b in benches:
        if b.tiny and b.op_class != "elementwise":
            overhead[b.op_class] = max((ms[b.key] * 1e3 - a) / b.depth / b.kernels, 1e-3)
    kernel_overhead = float(np.median([overhead[c] for c in SINGLE_KERNEL_CLASSES if c in overhead]))
    rows, best = [], {}
    for b in benches:
        t_op_us = (ms[b.key] * 1e3 - a) / b.depth
        row = {"key": b.key, "op_class": b.op_class, "label": b.label, "tiny": b.tiny, "depth": b.depth,
               "graph_ms": ms[b.key], "op_us": t_op_us, "flops": b.flops, "bytes": b.bytes}
        if not b.tiny:
            work_s = max(t_op_us - b.kernels * overhead.get(b.op_class, kernel_overhead), 1e-3) * 1e-6
            compute = b.op_class in COMPUTE_CLASSES
            row["rate"] = (b.flops if compute else b.bytes) / work_s
            row["rate_unit"] = "FLOP/s" if compute else "B/s"
            if b.op_class not in best or row["rate"] > best[b.op_class]["rate"]:
                best[b.op_class] = {"rate": row["rate"], "unit": row["rate_unit"], "label": b.label}
        rows.append(row)
    measured = [c for c in COMPUTE_CLASSES if c in best]
    if not measured or not any(r["op_class"] == "elementwise" and not r["tiny"] for r in rows):
        raise MeasurementError("the micro-benchmarks need at least one sized compute op and one sized elementwise "
                               "op besides the tiny chains; add them to the suite.")
    peak_class = max(measured, key=lambda c: best[c]["rate"])
    # Bandwidth: the elementwise sizes whose three streams overflow the caches (>= 48 MiB moved per op),
    # else the largest one measured; the median of their byte rates.
    adds = sorted((r for r in rows if r["op_class"] == "elementwise" and not r["tiny"]), key=lambda r: r["bytes"])
    big = [r for r in adds if r["bytes"] >= 48 * 2**20] or adds[-1:]
    return MicroFit(a, overhead, kernel_overhead, best, best[peak_class]["rate"], peak_class,
                    float(np.median([r["rate"] for r in big])), [r["label"] for r in big], rows)


# ---- the whole measurement ------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceResult:
    model: str
    resolution: int
    ms: float
    timing: Timing
    finite: bool
    seconds: float


@dataclass(frozen=True)
class MeasuredProfile:
    """Everything one ``measure_profile`` call measured, and the profile document made from it."""

    settings: ProfileSettings
    machine: dict[str, Any]
    micro: MicroFit
    references: list[ReferenceResult]
    skipped: dict[str, str]  # reference model -> why it was not timed
    reference_ms: float
    spread: float
    seconds: float
    document: dict[str, Any]

    @property
    def profile(self) -> DeviceProfile:
        return DeviceProfile.model_validate(self.document)


def reference_order(names: Iterable[str] | None = None) -> list[str]:
    """Reference models from the smallest to the largest by MACs."""
    names = list(REFERENCE_MODELS) if names is None else list(names)
    return sorted(names, key=lambda n: (REFERENCE_MODELS[n].macs.value, n))


def measure_profile(settings: ProfileSettings, reference_graph: Callable[[str], onnx.ModelProto], *,
                    models: Sequence[str] | None = None, progress: Progress | None = None,
                    benches: Sequence[Bench] | None = None) -> MeasuredProfile:
    """Run the micro-benchmarks and time the reference models; return the results and the profile document.

    ``reference_graph(name)`` builds a reference model's ONNX graph at its own resolution, batch 1 (its
    weights are replaced by seeded random ones here). ``models`` defaults to every reference model, or the two
    smallest with ``settings.quick``; a model whose graph cannot be built here (``ImportError``) is skipped
    and the next smallest taken in quick mode. ``benches`` replaces the micro-benchmark suite (tests).
    """
    start = time.perf_counter()
    machine = machine_info(settings)
    p = settings.protocol
    benches = list(benches) if benches is not None else micro_benchmarks(
        settings.quick, settings.seed, max_tensor_bytes=min(512e6, machine["memory_bytes"] / 32))
    timer = RelativeTimer(Runner(reference_bench(), settings.providers, settings.threads, settings.seed), p)
    report = progress or (lambda stage, done, total: None)
    runners = {}
    for i, b in enumerate(benches):
        report("building micro-benchmarks", i, len(benches))
        runners[b.key] = Runner(b.model, settings.providers, settings.threads, settings.seed + i, b.feeds)
    report("building micro-benchmarks", len(benches), len(benches))
    order_rng = np.random.default_rng(settings.seed)
    per_round = [p.blocks // p.rounds + (1 if r < p.blocks % p.rounds else 0) for r in range(p.rounds)]
    total, done = len(benches) * p.rounds, 0
    for blocks in per_round:
        for i in order_rng.permutation(len(benches)):
            b = benches[i]
            timer.measure(b.key, runners[b.key], blocks)
            done += 1
            report("timing micro-benchmarks", done, total)
    del runners
    energy = _rapl_energy_uj()
    t_energy = time.perf_counter()
    candidates = reference_order(models) if models is not None else reference_order()
    wanted = 2 if settings.quick and models is None else len(candidates)
    results, skipped = [], {}
    for name in candidates:
        if len(results) >= wanted:
            break
        report("timing reference models", len(results), wanted)
        t0 = time.perf_counter()
        try:
            graph = reference_graph(name)
        except ImportError as e:
            skipped[name] = f"its graph cannot be built here ({' '.join(str(e).split())})"
            continue
        try:
            run = Runner(randomize_weights(graph, settings.seed), settings.providers, settings.threads, settings.seed)
            del graph
            finite = run.outputs_finite()
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types; name it and go on
            skipped[name] = f"onnxruntime cannot run its graph ({_first_line(e)})"
            continue
        timer.measure(f"reference:{name}", run, p.blocks)
        del run
        results.append((name, finite, time.perf_counter() - t0))
    report("timing reference models", wanted, wanted)
    power = _rapl_power(energy, t_energy)
    ref_ms = timer.reference_ms
    micro = fit_micro(benches, {b.key: timer.timing(b.key).ms(ref_ms) for b in benches})
    refs = [ReferenceResult(n, REFERENCE_MODELS[n].resolution, timer.timing(f"reference:{n}").ms(ref_ms),
                            timer.timing(f"reference:{n}"), finite, secs) for n, finite, secs in results]
    if not refs:
        raise MeasurementError(f"no reference model could be timed ({'; '.join(f'{k}: {v}' for k, v in skipped.items())}"
                               "); a measured profile needs at least one calibration point.")
    machine = {**machine, "power_w": power}
    seconds = time.perf_counter() - start
    doc = profile_document(settings, machine, micro, refs, skipped, ref_ms, timer.spread, seconds)
    return MeasuredProfile(settings, machine, micro, refs, skipped, ref_ms, timer.spread, seconds, doc)


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- machine facts --------------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _nvidia_smi(query: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out else None


def machine_info(settings: ProfileSettings) -> dict[str, Any]:
    """CPU (or GPU) model, clock, memory and versions, each with where it was read."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu = ""
    for key in ("model name", "Hardware", "Model"):
        for line in cpuinfo.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                cpu = line.split(":", 1)[1].strip()
                break
        if cpu:
            break
    cpu_src = "/proc/cpuinfo" if cpu else "platform.processor()"
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    clock, clock_src = None, ""
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    if khz.isdigit():
        clock, clock_src = int(khz) / 1e3, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq (maximum clock)"
    else:
        mhz = [float(line.split(":", 1)[1]) for line in cpuinfo.splitlines() if line.startswith("cpu MHz")]
        if mhz:
            clock, clock_src = max(mhz), "/proc/cpuinfo 'cpu MHz' (the highest core's clock while profiling)"
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), None)
    if mem_kb is not None:
        memory_bytes, mem_src = mem_kb * 1024.0, f"/proc/meminfo MemTotal {mem_kb} kB"
    else:
        memory_bytes = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        mem_src = "os.sysconf SC_PAGE_SIZE * SC_PHYS_PAGES"
    info: dict[str, Any] = {
        "cpu": cpu, "cpu_source": cpu_src, "cpu_clock_mhz": clock, "cpu_clock_source": clock_src,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "memory_bytes": memory_bytes,
        "memory_source": mem_src, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
        "numpy": np.__version__, "provider": settings.providers[0], "threads": settings.threads,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if settings.provider != "cpu":
        gpu = _nvidia_smi("name,memory.total,clocks.max.sm,power.limit")
        parts = [s.strip() for s in gpu.split(",")] if gpu else []
        info["gpu"] = parts[0] if parts else "GPU (nvidia-smi not found)"
        info["gpu_memory_mib"] = _float(parts[1]) if len(parts) > 1 else None
        info["gpu_clock_mhz"] = _float(parts[2]) if len(parts) > 2 else None
        info["gpu_power_limit_w"] = _float(parts[3]) if len(parts) > 3 else None
    return info


def _float(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


_RAPL = Path("/sys/class/powercap/intel-rapl:0")


def _rapl_energy_uj() -> int | None:
    text = _read(str(_RAPL / "energy_uj")).strip()
    return int(text) if text.isdigit() else None


def _rapl_power(start_uj: int | None, t0: float) -> float | None:
    """Average package power (W) since ``start_uj`` from the RAPL counter, or None where none is readable."""
    end = _rapl_energy_uj()
    dt = time.perf_counter() - t0
    if start_uj is None or end is None or dt <= 0:
        return None
    delta = end - start_uj
    if delta < 0:  # the counter wrapped
        wrap = _read(str(_RAPL / "max_energy_range_uj")).strip()
        delta += int(wrap) if wrap.isdigit() else 0
    return delta * 1e-6 / dt if delta > 0 else None


# ---- the profile document -------------------------------------------------------------------------
def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (a float, as the schema wants)."""
    return float(f"{x:.{digits}g}")


def _slug(text: str) -> str:
    import re

    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def profile_name(out: Path, name: str | None) -> str:
    """The profile's ``name``: ``name``, else the file stem as a lowercase slug (``My Board.yaml`` → ``my-board``)."""
    slug = _slug(name if name is not None else Path(out).stem)
    if not slug:
        raise MeasurementError(f"cannot make a profile name from {name or Path(out).stem!r}; pass --name, e.g. "
                               "--name my-board (lowercase letters, digits and dashes).")
    if name is not None and slug != name:
        raise MeasurementError(f"--name must be a lowercase slug like 'my-board', but got {name!r}; "
                               f"e.g. --name {slug}.")
    return slug


def profile_document(settings: ProfileSettings, machine: Mapping[str, Any], micro: MicroFit,
                     refs: Sequence[ReferenceResult], skipped: Mapping[str, str], reference_ms: float, spread: float,
                     seconds: float) -> dict[str, Any]:
    """The profile as a plain mapping with the schema of ``hw_profiles/*.yaml`` (validated by the caller)."""
    gpu = settings.provider != "cpu"
    where = machine.get("gpu") if gpu else machine["cpu"]
    measured_by = (f"measured by dynnas profile on {where}, onnxruntime {machine['onnxruntime']} "
                   f"({machine['provider']}), {_threads(settings.threads)}, {machine['date']}")
    mode = "quick" if settings.quick else "full"
    proto = settings.protocol
    timing = (f"{mode} run; every graph timed against an interleaved reference graph (two 3x3 convs, 32ch 28x28) in "
              f"{proto.blocks} blocks, median of (block median / reference block median) x the reference's median "
              f"{reference_ms:.4f} ms over the run")
    best = micro.best

    def rate(c: str) -> str:
        if c not in best:
            return f"{c} -"
        b = best[c]
        return f"{c} {b['rate'] / 1e9:.4g} G{b['unit']} ({b['label']})"

    per_class = "; ".join(rate(c) for c in COMPUTE_CLASSES)
    per_mem = "; ".join(rate(c) for c in MEMORY_CLASSES)
    overheads = ", ".join(f"{c} {v:.3g}" for c, v in micro.overhead_us.items() if c != "if")
    peak = {"value": _sig(micro.peak_flops / 1e12), "unit": "TFLOP/s",
            "source": f"{measured_by}: {timing}",
            "derived": (f"peak_fp32 = max over op classes and sizes of FLOPs / (t_op - o_class) = {rate(micro.peak_class)}, "
                        f"where t_op = (t_graph - {micro.session_us:.3g} us session cost) / depth; "
                        f"best per class: {per_class}")}
    bandwidth = {"value": _sig(micro.bandwidth / 1e9), "unit": "GB/s", "source": f"{measured_by}: {timing}",
                 "derived": (f"bandwidth = median over {', '.join(micro.bandwidth_sizes)} of 12 B x n / (t_op - o_elementwise) "
                             f"(Add of two n-float tensors: read 2, write 1); best per memory-bound class (in cache "
                             f"where small): {per_mem}")}
    overhead = {"value": _sig(micro.kernel_overhead_us), "unit": "us", "source": f"{measured_by}: {timing}",
                "derived": (f"kernel_overhead = median over op classes of o_class = (t_graph - t_session) / depth of a "
                            f"chain of ops doing almost no work; o_class (us): {overheads}; t_session = "
                            f"{micro.session_us:.3g} us, the intercept of 1-element Add chains over their length")}
    if gpu and machine.get("gpu_memory_mib"):
        memory = {"value": _sig(machine["gpu_memory_mib"] * 2**20 / 1e9), "unit": "GB",
                  "source": f"nvidia-smi memory.total {machine['gpu_memory_mib']:g} MiB",
                  "derived": "memory_size = MiB * 1048576 B / 1e9"}
    else:
        memory = {"value": _sig(machine["memory_bytes"] / 1e9), "unit": "GB", "source": machine["memory_source"],
                  "derived": "memory_size = bytes / 1e9" + (" (host memory: the GPU's was not readable)" if gpu else "")}
    mode_entry = _power_mode(settings, machine)
    points = []
    for r in refs:
        t = r.timing
        points.append({
            "model": r.model, "resolution": r.resolution, "batch": 1, "precision": "fp32",
            "latency_ms": {"value": _sig(r.ms, 5), "unit": "ms", "source": f"{measured_by}: {timing}",
                           "derived": (f"latency_ms = ratio {t.ratio:.5g} x reference {reference_ms:.5g} ms")},
            "statistic": "median",
            "runtime": f"onnxruntime-{machine['onnxruntime']}-{settings.provider}",
            "power_mode": POWER_MODE, "source": measured_by,
            "notes": (f"{t.blocks} blocks, {t.runs} timed runs; ratio p10-p90 {t.ratio_p10:.4g}-{t.ratio_p90:.4g}; "
                      f"plain median {t.raw_median_ms:.4g} ms; seeded random weights (seed {settings.seed})"
                      + ("" if r.finite else "; WARNING: outputs were not finite")),
        })
    skipped_note = ("; not timed: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())) if skipped else ""
    if_note = f"; an If node with a 1-kernel branch costs {micro.overhead_us['if']:.3g} us" if "if" in micro.overhead_us else ""
    notes = (f"Made by `dynnas profile --provider {settings.provider} --threads {settings.threads}"
             f"{' --quick' if settings.quick else ''} --seed {settings.seed}` in {seconds:.0f} s ({mode} run). "
             f"The machine's speed spread (p90/p10 of the reference's block medians) was {spread:.3g}"
             + (f" (over {NOISY_SPREAD}: the machine was busy; remeasure on an idle one). " if spread > NOISY_SPREAD
                else ". ") +
             f"Per-class best rates: {per_class}; {per_mem}. Per-kernel cost of tiny ops (us): {overheads}{if_note}. "
             f"A session run costs {micro.session_us:.3g} us on top of its kernels{skipped_note}. The latency "
             "predictors fit their roofline (efficiencies, overhead) to the calibration points of this file.")
    provider_list = ", ".join(repr(x) for x in settings.providers)
    deploy = (f"python -c \"import onnxruntime as ort; so = ort.SessionOptions(); so.intra_op_num_threads = "
              f"{settings.threads}; sess = ort.InferenceSession('{{onnx}}', so, providers=[{provider_list}]); "
              "print('inputs:', [i.name for i in sess.get_inputs()])\"")
    runtime = {"cpu": "onnxruntime-cpu", "cuda": "onnxruntime-cuda", "tensorrt": "onnxruntime-tensorrt"}
    return {
        "schema_version": SCHEMA_VERSION,
        "name": settings.name,
        "display_name": f"{where} ({_threads(settings.threads)}, onnxruntime {machine['provider']}, measured)",
        "kind": "gpu" if gpu else "cpu",
        "runtime": runtime[settings.provider],
        "default_precision": "fp32",
        "measured": True,
        "peak_compute": {"fp32": peak},
        "memory_bandwidth": bandwidth,
        "memory_size": memory,
        "power_modes": [mode_entry],
        "default_power_mode": POWER_MODE,
        "kernel_overhead": overhead,
        "calibration": points,
        "deploy": deploy,
        "notes": notes,
    }


def _power_mode(settings: ProfileSettings, machine: Mapping[str, Any]) -> dict[str, Any]:
    gpu = settings.provider != "cpu"
    power = machine.get("power_w")
    if power:
        power_q = {"value": _sig(power, 3), "unit": "W",
                   "source": f"RAPL package energy counter ({_RAPL}/energy_uj) while the reference models ran",
                   "derived": "power_w = delta energy_uj * 1e-6 / delta seconds"}
    elif gpu and machine.get("gpu_power_limit_w"):
        power_q = {"value": _sig(machine["gpu_power_limit_w"], 3), "unit": "W",
                   "source": "nvidia-smi power.limit (the board's power limit, not a measured draw)"}
    else:
        power_q = {"value": 1.0, "unit": "W",
                   "source": ("NOT MEASURED: no power sensor was readable here (no RAPL powercap counter, no "
                              "nvidia-smi); 1 W is a placeholder for the schema's required field, unused by the "
                              "latency predictors; replace it with a meter reading")}
    clock, clock_src = machine.get("cpu_clock_mhz"), machine.get("cpu_clock_source", "")
    if clock:
        cpu_clock = {"value": _sig(clock, 5), "unit": "MHz", "source": clock_src}
    else:
        cpu_clock = {"value": 1000.0, "unit": "MHz",
                     "source": ("NOT MEASURED: neither cpufreq nor /proc/cpuinfo gives a clock here; 1000 MHz is a "
                                "placeholder (with one power mode the clock only labels it: compute_scale is 1)")}
    engine = cpu_clock
    if gpu and machine.get("gpu_clock_mhz"):
        engine = {"value": _sig(machine["gpu_clock_mhz"], 5), "unit": "MHz", "source": "nvidia-smi clocks.max.sm"}
    units = {"value": float(settings.threads), "unit": "count",
             "source": f"--threads {settings.threads}: onnxruntime intra-op threads used for every timing"}
    return {"name": POWER_MODE, "power_w": power_q, "gpu_clock_mhz": engine, "cpu_clock_mhz": cpu_clock,
            "compute_units": units,
            "notes": "The machine as it ran dynnas profile; for kind cpu, gpu_clock_mhz is the core clock."}


class _PlainDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes a repeated value out again instead of as an ``&anchor``/``*alias``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def profile_yaml(result: MeasuredProfile) -> str:
    """The profile file's text: a comment header, then the document as block YAML."""
    m, s = result.machine, result.settings
    head = [f"# Measured by `dynnas profile` on {m.get('gpu') or m['cpu']} ({m['machine']}, {m['cpu_count']} CPUs),",
            f"# onnxruntime {m['onnxruntime']} {m['provider']}, {_threads(s.threads)}, {m['date']}, "
            f"{'quick' if s.quick else 'full'} run of {result.seconds:.0f} s.",
            "# Every number below comes from this run (or names where it was read); see each source/derived."]
    body = yaml.dump(result.document, Dumper=_PlainDumper, sort_keys=False, width=110, allow_unicode=True,
                     default_flow_style=False)
    return "\n".join(head) + "\n" + body


def write_profile(path: Path, result: MeasuredProfile) -> DeviceProfile:
    """Write the profile atomically (temp file beside ``path``, checked with the loader, then ``os.replace``)."""
    from hw_profiles.loader import load_profile

    path = Path(path)
    text = profile_yaml(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        profile = load_profile(Path(tmp))  # what a later `--device FILE` will read
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return profile
