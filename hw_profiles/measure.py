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

Timing protocol: every figure is relative to an interleaved reference graph (see :mod:`hw_profiles.timing`).

One module per job: :mod:`hw_profiles.benches` builds the micro-benchmark graphs, :mod:`hw_profiles.timing`
runs and times them, :mod:`hw_profiles.machine` reads the machine's facts, :mod:`hw_profiles.measured` holds the
settings and results (value objects) and :mod:`hw_profiles.profile_doc` makes and writes the profile document.
This module holds the fit and :func:`measure_profile`; import each name from the module that defines it.

Example::

    result = measure_profile(ProfileSettings(name="my-board", threads=4), reference_graph)
    write_profile(Path("my-board.yaml"), result)
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hw_profiles.benches import (
    COMPUTE_CLASSES,
    SINGLE_KERNEL_CLASSES,
    Bench,
    micro_benchmarks,
    randomize_weights,
    reference_bench,
)
from hw_profiles.machine import _rapl_energy_uj, _rapl_power, machine_info
from hw_profiles.measured import (
    MeasuredProfile,
    MeasurementError,
    MicroFit,
    ProfileSettings,
    ReferenceResult,
)
from hw_profiles.profile_doc import profile_document
from hw_profiles.reference import REFERENCE_MODELS
from hw_profiles.timing import (
    RelativeTimer,
    Runner,
    share_thread_pool,
)

Progress = Callable[[str, int, int], None]


# ---- settings -------------------------------------------------------------------------------------
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


# ---- fit ------------------------------------------------------------------------------------------
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
    groups: dict[str, list[dict[str, Any]]] = {}
    kernel_of = {b.key: b.kernel for b in benches}
    for r in rows:
        if r["tiny"] or r["op_class"] == "if":
            continue
        groups.setdefault(r["op_class"], []).append(r)
        if kernel_of[r["key"]]:
            groups.setdefault(f"{r['op_class']}-k{kernel_of[r['key']]}", []).append(r)
    rates = {key: {"rate": float(np.median([r["rate"] for r in rs])), "unit": rs[0]["rate_unit"],
                   "labels": [r["label"] for r in rs]} for key, rs in groups.items()}
    # Bandwidth: the elementwise sizes whose three streams overflow the caches (>= 48 MiB moved per op),
    # else the largest one measured; the median of their byte rates.
    adds = sorted((r for r in rows if r["op_class"] == "elementwise" and not r["tiny"]), key=lambda r: r["bytes"])
    big = [r for r in adds if r["bytes"] >= 48 * 2**20] or adds[-1:]
    return MicroFit(a, overhead, kernel_overhead, best, rates, best[peak_class]["rate"], peak_class,
                    float(np.median([r["rate"] for r in big])), [r["label"] for r in big], rows)


# ---- the whole measurement ------------------------------------------------------------------------
def reference_order(names: Iterable[str] | None = None) -> list[str]:
    """Reference models from the smallest to the largest by MACs (by default those ``dynnas profile`` times)."""
    names = [n for n, m in REFERENCE_MODELS.items() if m.profiled] if names is None else list(names)
    return sorted(names, key=lambda n: (REFERENCE_MODELS[n].macs.value, n))


def measure_profile(settings: ProfileSettings, reference_graph: Callable[[str], onnx.ModelProto], *,
                    models: Sequence[str] | None = None, progress: Progress | None = None,
                    benches: Sequence[Bench] | None = None) -> MeasuredProfile:
    """Run the micro-benchmarks and time the reference models; return the results and the profile document.

    ``reference_graph(name)`` builds a reference model's ONNX graph at its own resolution, batch 1 (its
    weights are replaced by seeded random ones here). ``models`` defaults to every reference model, or the two
    smallest with ``settings.quick``; a model whose graph cannot be built here (``ImportError``) is skipped
    and the next smallest taken in quick mode. ``benches`` replaces the micro-benchmark suite (tests).

    With several threads, every later onnxruntime session of this process runs on one shared thread pool of
    that size (:func:`hw_profiles.timing.share_thread_pool`): call it in a process that times nothing else.
    """
    start = time.perf_counter()
    share_thread_pool(settings.threads)
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
    total, done = len(benches) * p.rounds, 0
    for blocks in p.split(p.blocks, p.rounds):
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
    built, skipped, seconds_of = {}, {}, {}
    for name in candidates:
        if len(built) >= wanted:
            break
        report("building reference models", len(built), wanted)
        t0 = time.perf_counter()
        try:
            graph = reference_graph(name)
        except ImportError as e:
            skipped[name] = f"its graph cannot be built here ({' '.join(str(e).split())})"
            continue
        try:
            run = Runner(randomize_weights(graph, settings.seed), settings.providers, settings.threads, settings.seed)
            del graph
            built[name] = (run, run.outputs_finite())
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types; name it and go on
            skipped[name] = f"onnxruntime cannot run its graph ({_first_line(e)})"
            continue
        seconds_of[name] = time.perf_counter() - t0
    names = list(built)
    total, done = len(names) * p.model_rounds, 0
    for blocks in p.split(p.model_blocks, p.model_rounds):
        for i in order_rng.permutation(len(names)):
            t0 = time.perf_counter()
            timer.measure(f"reference:{names[i]}", built[names[i]][0], blocks)
            seconds_of[names[i]] += time.perf_counter() - t0
            done += 1
            report("timing reference models", done, total)
    results = [(n, built[n][1], seconds_of[n]) for n in names]
    del built
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
