"""ONNX in and out: export a module, run it, and time it with one fixed protocol.

The measurement protocol (style habit 10) is the same everywhere dynnas times a model on the
host: onnxruntime CPU execution provider, ``threads`` intra-op threads, one inter-op thread,
sequential execution, all graph optimisations on (as deployed), ``warmup`` untimed runs, then
``repeats`` timed runs summarised by their median and spread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from hw_profiles.timing import measurement_options
from predictors.onnx_graph import OPSET
from supernet.checkpoint import atomic_write
from supernet.errors import ConfigError, OutputError

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Summary of ``repeats`` timed runs, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    threads: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _used_names(graph: onnx.GraphProto, used: set[str]) -> None:
    """Every tensor name read by a node of ``graph`` or of its subgraphs (``If`` branches, loop bodies)."""
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _used_names(attr.g, used)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _used_names(g, used)
    used.update(o.name for o in graph.output)


def _prune_graph(graph: onnx.GraphProto, used: set[str]) -> int:
    keep = [t for t in graph.initializer if t.name in used]
    gone = {t.name for t in graph.initializer} - {t.name for t in keep}
    removed = len(gone)
    if removed:
        del graph.initializer[:]
        graph.initializer.extend(keep)
        inputs = [i for i in graph.input if i.name not in gone]
        del graph.input[:]
        graph.input.extend(inputs)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                removed += _prune_graph(attr.g, used)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    removed += _prune_graph(g, used)
    return removed


def clean_onnx(data: bytes) -> bytes:
    """``data`` without initializers that no node reads (in any subgraph): onnxruntime warns about each one
    on every load ("Removing initializer ... It is not used by any node"). Returns ``data`` itself when clean."""
    proto = onnx.load_from_string(data)
    used: set[str] = set()
    _used_names(proto.graph, used)
    if not _prune_graph(proto.graph, used):
        return data
    return proto.SerializeToString()


def module_onnx_bytes(model: nn.Module, examples: tuple[torch.Tensor, ...], input_names: list[str],
                      output_names: list[str]) -> bytes:
    """Serialise ``model`` (eval mode, weights embedded, unused initializers pruned) to ONNX bytes, every
    input and output with a dynamic batch axis.

    Uses the TorchScript exporter (``dynamo=False``): about 20x faster than the dynamo exporter
    for these small CNNs (0.3 s vs 6 s) and it folds BN into the convs.
    """
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, examples, buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes={n: {0: "batch"} for n in (*input_names, *output_names)})
    finally:
        model.train(was_training)
    return clean_onnx(buf.getvalue())


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """Serialise ``model`` to ONNX bytes with a dynamic batch axis: input ``image``, output ``logits``."""
    return module_onnx_bytes(model, (example,), [INPUT_NAME], [OUTPUT_NAME])


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``model`` as one self-contained ONNX file (input ``image``, output ``logits``), atomically."""
    data = onnx_bytes(model, example)
    try:
        atomic_write(Path(path), lambda p: p.write_bytes(data))
    except OSError as e:
        raise OutputError(f"cannot write ONNX file '{path}' ({e.strerror}); pass a writable path.") from None


def session_options(threads: int = 1, *, level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                    profile_prefix: str | None = None) -> ort.SessionOptions:
    """The measurement protocol's session options: ``threads`` intra-op threads, one inter-op thread,
    sequential execution, graph optimisations at ``level``; with ``profile_prefix``, onnxruntime's profiler on."""
    if threads < 1:
        raise ConfigError(f"`threads` must be >= 1, but got {threads}.")
    so = measurement_options(threads)
    so.graph_optimization_level = level
    so.log_severity_level = 3  # errors only
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def session(model: Path | bytes, *, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session set up as the measurement protocol says."""
    so = session_options(threads)
    src = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(model).is_file():
        raise ConfigError(f"ONNX file '{model}' does not exist; export it first.")
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_onnx(model: Path | bytes | ort.InferenceSession, x: np.ndarray, *, batch_size: int = 256,
             threads: int = 1) -> np.ndarray:
    """Outputs of the model's first output for every row of ``x`` (float32 NCHW), in batches."""
    sess = model if isinstance(model, ort.InferenceSession) else session(model, threads=threads)
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    outs = [sess.run(None, {name: x[i: i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _feeds(sess: ort.InferenceSession, input_shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    feeds = {}
    for i, inp in enumerate(sess.get_inputs()):
        static = all(isinstance(d, int) for d in inp.shape)
        shape = tuple(inp.shape) if i > 0 and static else tuple(input_shape)  # extra inputs: their own shape
        feeds[inp.name] = np.random.default_rng(seed + i).random(shape, dtype=np.float32)
    return feeds


def _time(sess: Any, feeds: Any, warmup: int, repeats: int,
          threads: int) -> LatencyStats:
    run = sess.run
    for _ in range(warmup):
        run(None, feeds)
    times = np.empty(repeats)
    for r in range(repeats):
        t0 = time.perf_counter()
        run(None, feeds)
        times[r] = time.perf_counter() - t0
    times *= 1e3
    return LatencyStats(median_ms=float(np.median(times)), p10_ms=float(np.percentile(times, 10)),
                        p90_ms=float(np.percentile(times, 90)), mean_ms=float(times.mean()), repeats=repeats,
                        threads=threads)


def _check(warmup: int, repeats: int, rounds: int = 1) -> None:
    if repeats < 1 or warmup < 0 or rounds < 1:
        raise ConfigError(f"need repeats >= 1, warmup >= 0 and rounds >= 1, but got {repeats=}, {warmup=}, {rounds=}.")


def measure_latency(model: Path | bytes | Callable[[np.ndarray], object], input_shape: tuple[int, ...], *,
                    threads: int = 1, warmup: int = 10, repeats: int = 50, seed: int = 0) -> LatencyStats:
    """Time one inference of ``model`` (ONNX, or a callable taking one input array) on a seeded random input
    of ``input_shape`` (see module doc)."""
    _check(warmup, repeats)
    if callable(model):
        x = np.random.default_rng(seed).random(tuple(input_shape), dtype=np.float32)
        return _time(_CallableRun(model), x, warmup, repeats, threads)
    sess = session(model, threads=threads)
    return _time(sess, _feeds(sess, input_shape, seed), warmup, repeats, threads)


@dataclass(frozen=True, slots=True)
class RelativeTiming:
    """One model's latency measured against an interleaved reference model.

    ``ratio`` is the median over paired blocks of (model block median / adjacent reference block
    median); ``median_ms`` is ``ratio`` times the reference's median over the whole session, i.e.
    the model's latency at the session's typical machine speed; ``raw_median_ms`` is the plain
    median of the model's own runs, for comparison.
    """

    ratio: float
    ratio_p10: float
    ratio_p90: float
    median_ms: float
    raw_median_ms: float
    blocks: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TimingSession:
    """What :func:`measure_latencies` measured: per-model timings plus how the machine behaved."""

    timings: dict[str, RelativeTiming]
    reference_ms: float  # median of every reference run in the session
    machine_spread: float  # p90 / p10 of the reference's block medians: how much the machine's speed moved

    def __getitem__(self, key: str) -> RelativeTiming:
        return self.timings[key]


class _CallableRun:
    """A callable model behind ``InferenceSession.run``'s signature (``run(None, x)``)."""

    def __init__(self, fn: Callable[[np.ndarray], object]) -> None:
        self.fn = fn

    def run(self, _names: None, x: np.ndarray) -> object:
        return self.fn(x)


def measure_latencies(models: Mapping[str, tuple[Path | bytes, tuple[int, ...]]],
                      reference: tuple[Path | bytes, tuple[int, ...]], *, rounds: int = 5, threads: int = 1,
                      warmup: int = 10, repeats: int = 50, block: int = 5, seed: int = 0,
                      progress: Callable[[str, int, int], None] | None = None) -> TimingSession:
    """Time many models against one reference model that runs interleaved with each of them.

    ``models`` maps a key to ``(model, input_shape)``. A shared or virtualised CPU changes speed
    by up to 1.6x over tenths of a second (measured on the dev VM), so a model's plain median
    depends on *when* it was timed: two sessions agreed within ±10 % on only half of 240
    subnets. The speed change hits the model and a reference timed a few milliseconds apart
    alike, so their ratio is stable (the same 240 subnets agreed within ±5 % on all of them).
    Protocol: ``rounds`` passes over all models in a new seeded order each; in each pass a model
    gets ``warmup`` untimed runs, then ``repeats`` timed runs in blocks of ``block``, each
    block preceded by a block of reference runs; a block's statistic is its median (the first,
    cache-cold run of a block does not move it).
    """
    _check(warmup, repeats, rounds)
    if block < 1 or repeats % block:
        raise ConfigError(f"`repeats` ({repeats}) must be a positive multiple of `block` ({block}).")
    ref_sess = session(reference[0], threads=threads)
    ref_feeds = _feeds(ref_sess, reference[1], seed)
    sessions = {}
    for key, (model, shape) in models.items():
        sess = session(model, threads=threads)
        sessions[key] = (sess, _feeds(sess, shape, seed))
    for _ in range(warmup):
        ref_sess.run(None, ref_feeds)
    n_blocks = repeats // block
    ratios: dict[str, list[float]] = {k: [] for k in sessions}
    raw: dict[str, list[float]] = {k: [] for k in sessions}
    ref_runs: list[float] = []
    ref_blocks: list[float] = []
    tm = np.empty(block)
    tr = np.empty(block)
    clock = time.perf_counter
    total, done = rounds * len(sessions), 0
    keys = list(sessions)
    order_rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for i in order_rng.permutation(len(keys)):  # a new order each pass: no model always in one phase
            key = keys[i]
            sess, feeds = sessions[key]
            for _ in range(warmup):
                sess.run(None, feeds)
            for _ in range(n_blocks):
                for j in range(block):
                    t0 = clock()
                    ref_sess.run(None, ref_feeds)
                    tr[j] = clock() - t0
                for j in range(block):
                    t0 = clock()
                    sess.run(None, feeds)
                    tm[j] = clock() - t0
                r_med = float(np.median(tr))
                ratios[key].append(float(np.median(tm)) / r_med)
                raw[key].extend(tm.tolist())
                ref_runs.extend(tr.tolist())
                ref_blocks.append(r_med)
            done += 1
            if progress is not None:
                progress("timing", done, total)
    reference_ms = 1e3 * float(np.median(ref_runs)) if ref_runs else float("nan")
    timings = {}
    for key in keys:
        r = np.asarray(ratios[key])
        ratio = float(np.median(r))
        timings[key] = RelativeTiming(ratio=ratio, ratio_p10=float(np.percentile(r, 10)),
                                      ratio_p90=float(np.percentile(r, 90)), median_ms=ratio * reference_ms,
                                      raw_median_ms=1e3 * float(np.median(raw[key])), blocks=len(r))
    spread = float(np.percentile(ref_blocks, 90) / np.percentile(ref_blocks, 10)) if ref_blocks else 1.0
    return TimingSession(timings, reference_ms, spread)


def measure_over_inputs(model: Path | bytes | Callable[[np.ndarray], object],
                        reference: tuple[Path | bytes, tuple[int, ...]], inputs: np.ndarray, *,
                        threads: int = 1, warmup: int = 10, block: int = 5, passes: int = 1,
                        seed: int = 0) -> dict[str, float | int]:
    """Expected latency of an input-dependent model (early exits): every input of ``inputs`` timed at
    batch 1, in blocks of ``block`` inputs, each block preceded by a block of reference runs.

    ``model`` is an ONNX model, or a callable taking one batch-1 input (e.g. a segment chain's
    ``supernet.runtime.DynamicSession.run``). The statistic is the mean over all inputs of (input time /
    the preceding reference block's median), i.e. the expected latency relative to the reference:
    the same protocol as :func:`measure_latencies`, with the model's input taken from the data.
    """
    _check(warmup, block, passes)
    ref_sess = session(reference[0], threads=threads)
    ref_feeds = _feeds(ref_sess, reference[1], seed)
    if callable(model):
        call = model
    else:
        sess = session(model, threads=threads)
        name = sess.get_inputs()[0].name

        def call(xi: np.ndarray) -> object:
            return sess.run(None, {name: xi})
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    for i in range(min(warmup, len(x))):
        call(x[i: i + 1])
        ref_sess.run(None, ref_feeds)
    clock = time.perf_counter
    ratios, raw, ref_all = [], [], []
    tr = np.empty(block)
    for _ in range(passes):
        for start in range(0, len(x), block):
            for j in range(block):
                t0 = clock()
                ref_sess.run(None, ref_feeds)
                tr[j] = clock() - t0
            r_med = float(np.median(tr))
            ref_all.extend(tr.tolist())
            for i in range(start, min(start + block, len(x))):
                xi = x[i: i + 1]
                t0 = clock()
                call(xi)
                dt = clock() - t0
                ratios.append(dt / r_med)
                raw.append(dt)
    ratio = float(np.mean(ratios))
    reference_ms = 1e3 * float(np.median(ref_all))
    return {"ratio": ratio, "ratio_p10": float(np.percentile(ratios, 10)), "ratio_p90": float(np.percentile(ratios, 90)),
            "session_ms": ratio * reference_ms, "raw_mean_ms": 1e3 * float(np.mean(raw)), "reference_ms": reference_ms,
            "n_inputs": int(len(x)), "passes": passes, "threads": threads}


def export_branching_onnx(model: nn.Module, example: torch.Tensor, path: Path, *,
                          output_names: tuple[str, ...] = (OUTPUT_NAME, "exit_index")) -> None:
    """Write a model with data-dependent branches (``torch.cond`` → ONNX ``If``) as one self-contained file.

    Uses the dynamo exporter (the TorchScript one cannot trace ``torch.cond``); the input shape is
    fixed to ``example``'s (batch 1 for an early-exit model). About 5-15 s per model on a CPU.
    """
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), \
                    contextlib.redirect_stderr(devnull):
                program = torch.onnx.export(model, (example,), dynamo=True, opset_version=18, optimize=True,
                                            input_names=[INPUT_NAME], output_names=list(output_names),
                                            external_data=False, verbose=False)
            proto = program.model_proto
    finally:
        model.train(was_training)
    data = clean_onnx(proto.SerializeToString())
    onnx.checker.check_model(onnx.load_from_string(data))
    try:
        atomic_write(Path(path), lambda p: p.write_bytes(data))
    except OSError as e:
        raise OutputError(f"cannot write ONNX file '{path}' ({e.strerror}); pass a writable path.") from None


def export_multi_output_onnx(model: nn.Module, example: torch.Tensor, path: Path, output_names: list[str]) -> None:
    """Write a model with several outputs (every exit's logits) with a dynamic batch axis, self-contained."""
    data = module_onnx_bytes(model, (example,), [INPUT_NAME], list(output_names))
    try:
        atomic_write(Path(path), lambda p: p.write_bytes(data))
    except OSError as e:
        raise OutputError(f"cannot write ONNX file '{path}' ({e.strerror}); pass a writable path.") from None

