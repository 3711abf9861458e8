"""Timing for ``dynnas profile``: models in onnxruntime sessions, timed against an interleaved reference.

:class:`Runner` holds one model in a session with fixed seeded inputs; :class:`RelativeTimer` times
models as :class:`Protocol` says and gives each a :class:`Timing`.

Timing protocol (as for the host lookup table): every measurement is taken *relative to a reference
graph* run in a block just before each block of the measured model, so a shared CPU's speed swings
hit both; a model's figure is the median over blocks of (its block median / the reference block's
median), times the reference's median over the whole run. Warm-up runs come first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

# A reference graph whose block medians spread more than this (p90 / p10) ran on a busy machine: other
# processes shared the cores, and multi-threaded kernels slow down more than the reference under contention,
# so the ratios do not cancel it. The profile says so in its notes and the command warns.
NOISY_SPREAD = 1.25


# ---- protocol -------------------------------------------------------------------------------------
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
