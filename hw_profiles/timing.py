"""Timing for ``dynnas profile``: models in onnxruntime sessions, timed against an interleaved reference.

:class:`Runner` holds one model in a session with fixed seeded inputs; :class:`RelativeTimer` times
models as :class:`Protocol` says and gives each a :class:`Timing`.

Timing protocol (as for the host lookup table): every measurement is taken *relative to a reference
graph* run in a block just before each block of the measured model, so a shared CPU's speed swings
hit both. A model's figure is the ratio of the ``RUN_PERCENTILE``-th percentile of its runs to that of the
reference runs interleaved with it, times the same percentile of every reference run of the whole profile:
figures are quoted at the machine's unhindered speed. Interference (other processes, a neighbour on the
host) only ever slows a run, so the low percentile is what reproduces: 8 repeated timings of MobileNetV3,
ResNet-18 and ResNet-50 at 2 threads (shared pool) on the dev VM varied by 3.8 / 3.5 / 1.6 % (coefficient of variation)
with it, against 5.0 / 6.9 / 6.3 % for the median over blocks of (model block median / reference block
median). Warm-up runs come first.

Threads: with more than one intra-op thread, each onnxruntime session's own pool spins its idle workers for
a while after a run, so two sessions run alternately fight each other's spinning threads. On the dev VM (2
cores, 2 threads), MobileNetV3 ran 3.9 ms interleaved with the reference against 2.0 ms alone, and a full
profile's leave-one-out errors were 12-88 % on 5 to 7 of its 8 reference models. ``dynnas profile`` therefore
runs every session of its process on one shared pool (:func:`share_thread_pool`), as one deployed session
runs: the same timings took 2.0 ms interleaved and 2.1 ms alone.
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
# so the ratios do not fully cancel it. The profile says so in its notes and the command warns. On the idle
# dev VM the spread is 1.3-1.7 (the 0.08 ms reference jitters) and those profiles reproduced their reference
# models within ±10 % on 23 of 24 leave-one-out rows; the runs whose sessions fought each other's thread
# pools (module doc) spread 2.15.
NOISY_SPREAD = 2.0
# The percentile of a model's runs (and of the reference's) that its figure is taken at (module doc).
RUN_PERCENTILE = 10


# ---- threads ------------------------------------------------------------------------------------
_shared_pool_threads: int | None = None  # the size of this process's shared pool, once made


def share_thread_pool(threads: int) -> None:
    """Run every later session of this process on one onnxruntime thread pool of ``threads`` threads (module
    doc). For a process that only times, such as ``dynnas profile``: once the pool exists, onnxruntime refuses
    sessions with their own pools and cannot resize it. A no-op for one thread or a pool of this size."""
    global _shared_pool_threads
    if threads <= 1 or _shared_pool_threads == threads:
        return
    if _shared_pool_threads is not None:
        raise ValueError(f"this process already times on a shared pool of {_shared_pool_threads} threads, and "
                         f"onnxruntime cannot resize it; time {threads} threads in a new process.")
    ort.set_global_thread_pool_sizes(threads, 1)
    _shared_pool_threads = threads


def thread_pool(threads: int) -> str:
    """How a timed session of ``threads`` threads runs: ``"single"``, ``"shared"`` or ``"own, no spinning"``."""
    if _shared_pool_threads is not None:
        return "shared"
    return "single" if threads <= 1 else "own, no spinning"


def measurement_options(threads: int) -> ort.SessionOptions:
    """Session options for timing: ``threads`` intra-op threads, one inter-op thread, sequential execution,
    all graph optimisations, fatal log messages only.

    On the process's shared pool (:func:`share_thread_pool`) if there is one; else, with several threads,
    the session's own pool with spinning off, so that it steals no cores from the next session timed (a
    few microseconds' wake-up per parallel kernel: slower than deployed, but the same for every session).
    """
    so = ort.SessionOptions()
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # fatal only: a failing model is reported from its exception
    if _shared_pool_threads is not None:
        if threads != _shared_pool_threads:
            raise ValueError(f"this process times every session on a shared pool of {_shared_pool_threads} "
                             f"threads, not {threads}; pass --threads {_shared_pool_threads} or time in a new process.")
        so.use_per_session_threads = False  # sizes (threads, 1 inter-op) were fixed when the pool was made
        return so
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if threads > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


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
    # the reference models (the calibration points): timed blocks per model, split over passes in a new seeded
    # order each, so that each model's blocks spread over the whole phase instead of one slow or fast stretch
    model_blocks: int = 3
    model_rounds: int = 1

    def split(self, blocks: int, rounds: int) -> list[int]:
        """``blocks`` spread over ``rounds`` passes (the first passes take the remainder)."""
        return [blocks // rounds + (1 if r < blocks % rounds else 0) for r in range(rounds)]


QUICK = Protocol(warmup_s=0.004, blocks=3, block_s=0.004, max_block=5, ref_block=3, rounds=1)
FULL = Protocol(warmup_s=0.05, blocks=10, block_s=0.03, max_block=9, ref_block=3, rounds=2, model_blocks=40,
                model_rounds=8)


# ---- timing ---------------------------------------------------------------------------------------
class Runner:
    """One model in an onnxruntime session with fixed seeded inputs; calling it runs the model once.

    CPU: ``session.run`` on numpy inputs. A GPU provider binds inputs and outputs on the device
    (``run_with_iobinding``, which waits for the device), so host copies are not timed.
    """

    def __init__(self, model: onnx.ModelProto | bytes, providers: Sequence[str], threads: int, seed: int,
                 feeds: Mapping[str, np.ndarray] | None = None) -> None:
        so = measurement_options(threads)
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
    """A model's latency relative to the interleaved reference: ``ratio`` is the ``RUN_PERCENTILE``-th
    percentile of the model's runs over that of the reference runs interleaved with them; ``ms = ratio *
    reference ms`` of the run. ``ratio_p10``/``ratio_p90`` spread the per-block ratios (block median over
    the preceding reference block's median)."""

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
        self._ref_beside: dict[str, list[float]] = {}
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
            self._ref_beside.setdefault(key, []).extend(tr.tolist())
            self.ref_runs.extend(tr.tolist())
            self.ref_blocks.append(r_med)

    @property
    def reference_ms(self) -> float:
        """The ``RUN_PERCENTILE``-th percentile of every reference run so far, in ms: the speed all figures
        are quoted at."""
        return 1e3 * float(np.percentile(self.ref_runs, RUN_PERCENTILE))

    @property
    def spread(self) -> float:
        """p90 / p10 of the reference's block medians: how much the machine's speed moved."""
        return float(np.percentile(self.ref_blocks, 90) / np.percentile(self.ref_blocks, 10))

    def timing(self, key: str) -> Timing:
        r = np.asarray(self._ratios[key])
        ratio = np.percentile(self._raw[key], RUN_PERCENTILE) / np.percentile(self._ref_beside[key], RUN_PERCENTILE)
        return Timing(float(ratio), float(np.percentile(r, 10)), float(np.percentile(r, 90)),
                      1e3 * float(np.median(self._raw[key])), len(r), len(self._raw[key]))
