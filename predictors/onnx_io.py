"""ONNX in and out: export a module, run it, and time it with one fixed protocol.

The measurement protocol (style habit 10) is the same everywhere dynnas times a model on the
host: onnxruntime CPU execution provider, ``threads`` intra-op threads, one inter-op thread,
sequential execution, all graph optimisations on (as deployed), ``warmup`` untimed runs, then
``repeats`` timed runs summarised by their median and spread.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from supernet.checkpoint import atomic_write
from supernet.errors import ConfigError, OutputError

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
OPSET = 17


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


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """Serialise ``model`` (eval mode, weights embedded) to ONNX bytes with a dynamic batch axis.

    Uses the TorchScript exporter (``dynamo=False``): about 20x faster than the dynamo exporter
    for these small CNNs (0.3 s vs 6 s) and it folds BN into the convs.
    """
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    finally:
        model.train(was_training)
    return buf.getvalue()


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``model`` as one self-contained ONNX file (input ``image``, output ``logits``), atomically."""
    data = onnx_bytes(model, example)
    try:
        atomic_write(Path(path), lambda p: p.write_bytes(data))
    except OSError as e:
        raise OutputError(f"cannot write ONNX file '{path}' ({e.strerror}); pass a writable path.") from None


def session(model: Path | bytes, *, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session set up as the measurement protocol says."""
    if threads < 1:
        raise ConfigError(f"`threads` must be >= 1, but got {threads}.")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only
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


def _time(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], warmup: int, repeats: int,
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


def measure_latency(model: Path | bytes, input_shape: tuple[int, ...], *, threads: int = 1, warmup: int = 10,
                    repeats: int = 50, seed: int = 0) -> LatencyStats:
    """Time one inference of ``model`` on a seeded random input of ``input_shape`` (see module doc)."""
    _check(warmup, repeats)
    sess = session(model, threads=threads)
    return _time(sess, _feeds(sess, input_shape, seed), warmup, repeats, threads)


def measure_latencies(models: Mapping[str, tuple[Path | bytes, tuple[int, ...]]], *, rounds: int = 3,
                      threads: int = 1, warmup: int = 10, repeats: int = 50, seed: int = 0,
                      progress: Callable[[str, int, int], None] | None = None) -> tuple[dict[str, LatencyStats], float]:
    """Time many models in ``rounds`` interleaved passes; keep each model's least-disturbed round.

    ``models`` maps a key to ``(model, input_shape)``. Every pass times every model, in a new seeded
    order, with the protocol of :func:`measure_latency`; the pass with the lowest median is kept. Interleaving
    spreads a burst of load from other processes over all models instead of biasing one, and
    the minimum over passes estimates the latency of an otherwise idle machine. Returns the
    stats per key and the median ratio (slowest / fastest round median), a measure of the noise.
    """
    _check(warmup, repeats, rounds)
    sessions = {}
    for key, (model, shape) in models.items():
        sess = session(model, threads=threads)
        sessions[key] = (sess, _feeds(sess, shape, seed))
    best: dict[str, LatencyStats] = {}
    worst: dict[str, float] = {}
    total, done = rounds * len(sessions), 0
    keys = list(sessions)
    order_rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for i in order_rng.permutation(len(keys)):  # a new order each pass: no model always in one phase
            key = keys[i]
            sess, feeds = sessions[key]
            stats = _time(sess, feeds, warmup, repeats, threads)
            if key not in best or stats.median_ms < best[key].median_ms:
                best[key] = stats
            worst[key] = max(worst.get(key, 0.0), stats.median_ms)
            done += 1
            if progress is not None:
                progress("timing", done, total)
    spread = float(np.median([worst[k] / best[k].median_ms for k in best])) if best else 1.0
    return best, spread
