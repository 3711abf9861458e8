"""Host latency from this machine's own onnxruntime measurements: a lookup table of blocks in context.

1. **Relative timing.** Every timing is taken against a reference model (the supernet's middle
   uniform-width subnet) interleaved a few milliseconds away (``onnx_io.measure_latencies``): a
   shared VM changes speed by up to 1.6x within a second, which moves plain medians but not the
   ratio to the reference. Latencies are stored as ratios, and as ms at the session's reference
   speed.
2. **Isolated LUT (the prior).** Every distinct *unit* of the search space (the stem, each block
   at each width choice, the tail; see :mod:`predictors.units`) becomes a small ONNX graph built
   with ``onnx.helper`` and is timed; the fixed cost of a session run (a one-``Identity`` graph)
   is subtracted. Units and not single kernels: onnxruntime fuses a block's residual add into
   its project conv and keeps a block's tensors in its blocked NCHWc layout, while a lone conv
   pays a layout reorder on each side.
3. **Fit to whole subnets.** ~60 seeded random subnets (plus the smallest and the largest) of a
   randomly initialised supernet (latency does not depend on weight values) are exported with
   the deployment exporter and timed whole. ``measured ≈ slope * lut_sum + intercept`` is fitted
   by robust least squares on relative error, then a per-(block, width) correction by ridge
   regression (penalty chosen by leave-one-out), so the table holds each block's cost *in
   context*. The result is still ``constant + sum_i table[i, width_i]``: one gather per subnet.

4. **Segment chains.** A dynamic subnet runs as a chain of graphs (:mod:`supernet.stages`, run by
   :class:`supernet.runtime.DynamicSession`): each stage is one more session call, and the hidden
   tensor leaves one graph's blocked layout and enters the next's. The reference, smallest and
   largest subnets are exported as chains for every exit mask and timed through the runtime along
   every path (leave at each exit, or run to the end), by the mean time per input (what a user
   measures: a chain's tail is heavier than one graph's). A non-negative least-squares fit gives, per
   exit position, the cost of *reaching* a cut (the stage output) and of *passing* it (one more
   call, the input), on top of the table's work: ``L_e = table work up to exit e, heads included,
   + Σ cuts on the way``. The search's expected latency is ``Σ p_e · L_e`` over these stages.

The measurements are cached as a versioned JSON file keyed by device and arch-config hash; the
fit is recomputed on load (deterministic), so a reloaded predictor predicts exactly what the
first one did.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from scipy.optimize import least_squares, nnls
from sklearn.linear_model import RidgeCV

from predictors.errors import CalibrationError, PredictorCacheError, check_header
from predictors.kernel_graphs import chain_graph, input_shape, null_graph
from predictors.kernels import exit_kernels, layer_kernels
from predictors.onnx_chain import exit_names, export_chain, timing_chain
from predictors.onnx_io import (
    measure_latencies,
    measure_latency,
    measure_over_inputs,
    onnx_bytes,
)
from predictors.units import UnitTable, arch_hash, unit_key
from supernet.checkpoint import read_json, write_json
from supernet.cost import CostedConfig
from supernet.errors import CheckpointError
from supernet.registry import extract, get_family
from supernet.runtime import DynamicSession
from supernet.space import SearchSpace, SubnetConfig
from supernet.stages import build_stages

FORMAT = "dynnas-latency-lut"
FORMAT_VERSION = 4  # 2: relative to an interleaved reference; 3: exit heads; 4: segment chains, no branch penalty
Progress = Callable[[str, int, int], None]


def host_info(threads: int) -> dict[str, Any]:
    """What makes measurements of this machine comparable: CPU model, onnxruntime, threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "onnxruntime": ort.__version__, "threads": threads}


def calibration_subnets(space: SearchSpace, n: int, seed: int) -> list[SubnetConfig]:
    """The smallest and largest subnets, then seeded unique random ones, ``n`` in all (fewer if the
    space is smaller)."""
    return space.sample_unique(np.random.default_rng(seed), n, [space.smallest(), space.largest()])


def _lut_units(arch_config: CostedConfig) -> dict[str, list]:
    """Every distinct unit the search space can hold, by its LUT key: stem, tail, term variants, exit heads."""
    terms = arch_config.cost_terms()
    out: dict[str, list] = {}
    for layers in (terms.stem, terms.tail, *(v for variants in terms.variants for v in variants)):
        if layers:
            ks = layer_kernels(layers)
            out.setdefault(unit_key(ks), ks)
    for e in range(len(arch_config.exit_blocks)):  # exit heads: timed alone (pool, linears, decision)
        ks = exit_kernels(arch_config, e)
        out.setdefault(unit_key(ks), ks)
    return out


def reference_subnet(space: SearchSpace) -> SubnetConfig:
    """The model every host timing is relative to: the middle uniform-width subnet."""
    return space.uniform((len(space.width_choices) - 1) // 2)


def random_supernet(arch_config: CostedConfig, seed: int) -> torch.nn.Module:
    """A randomly initialised supernet of ``arch_config``'s family (latency does not depend on weight values)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_family(arch_config.family).build(arch_config)


def subnet_onnx(supernet: torch.nn.Module, subnet: SubnetConfig) -> tuple[bytes, tuple[int, ...]]:
    """A subnet as deployed (ONNX bytes) and its batch-1 input shape: what ``measure_latencies`` takes."""
    c = supernet.config
    example = torch.zeros(1, c.in_channels, c.resolution, c.resolution)
    return onnx_bytes(extract(supernet, subnet), example), tuple(example.shape)


def exit_masks(n_exits: int) -> list[tuple[int, ...]]:
    """Every non-empty exit mask of ``n_exits`` heads."""
    return [m for m in itertools.product((0, 1), repeat=n_exits) if any(m)]


def chain_paths(mask: tuple[int, ...]) -> list[int | None]:
    """Where a sample can leave a chain cut at ``mask``'s exits: each enabled exit, then ``None`` (the end)."""
    return [*(e for e, bit in enumerate(mask) if bit), None]


def path_mixes(n_paths: int) -> list[tuple[float, ...]]:
    """How often each path of a chain is taken in one timing: each path alone, then two mixes (equal shares, and
    early-heavy) in which consecutive inputs switch paths, as real inputs do (a stage skipped by the previous
    input runs with colder caches)."""
    alone = [tuple(float(i == j) for i in range(n_paths)) for j in range(n_paths)]
    early = np.array([0.5 ** i for i in range(n_paths)])
    return [*alone, tuple([1.0 / n_paths] * n_paths), tuple((early / early.sum()).tolist())]


class _PathMix:
    """A chain run along a seeded random sequence of forced paths with given shares (one set of sessions)."""

    def __init__(self, folder: Path, threads: int, shares: Sequence[float], seed: int, n_inputs: int) -> None:
        base = DynamicSession(folder, threads=threads)
        n = base.n_stages
        # the same sessions, another forced exit each: only the thresholds differ
        self.paths = [base.with_thresholds([-math.inf if k == j else math.inf for k in range(n - 1)]).run
                      for j in range(n)]
        self.order = np.random.default_rng(seed).choice(n, size=n_inputs, p=np.asarray(shares) / np.sum(shares))
        self.i = 0

    def __call__(self, x: np.ndarray) -> Any:
        j = self.order[self.i % len(self.order)]
        self.i += 1
        return self.paths[j](x)


def measure_chains(supernet: torch.nn.Module, space: SearchSpace, subnets: Sequence[SubnetConfig],
                   reference: tuple[bytes, tuple[int, ...]], *, rounds: int, threads: int, seed: int,
                   progress: Progress | None = None) -> list[dict[str, Any]]:
    """Time ``subnets`` as segment chains through the runtime, for every exit mask, along each path and along
    mixes of paths (:func:`path_mixes`); then with each cascade scout first. Each timing is the mean time per
    input (what a user measures) relative to the interleaved reference (``measure_over_inputs``)."""
    n_exits = len(space.exit_positions)
    if not n_exits:
        return []
    shape = reference[1]
    n_inputs = 50 * rounds
    inputs = np.random.default_rng(seed).random((n_inputs, *shape[1:]), dtype=np.float32)
    out: list[dict[str, Any]] = []

    def time_mixes(folder: Path, row: dict[str, Any], paths: list[Any]) -> None:
        for k, shares in enumerate(path_mixes(len(paths))):
            run = _PathMix(folder, threads, shares, seed + k, n_inputs)
            t = measure_over_inputs(run, reference, inputs, threads=threads, seed=seed)
            out.append({**row, "paths": paths, "shares": list(shares), "ratio": t["ratio"],
                        "ratio_p10": t["ratio_p10"], "ratio_p90": t["ratio_p90"]})

    with tempfile.TemporaryDirectory(prefix="dynnas-chains-") as tmp:
        jobs = [(s, m) for s in subnets for m in exit_masks(n_exits)]
        n_scouts = min(2, len(space.width_choices) - 1)  # a width cascade's scouts: the narrowest uniform subnets
        total = len(jobs) + n_scouts * len(subnets)
        for i, (s, mask) in enumerate(jobs):
            folder = Path(tmp) / f"c{i}"
            folder.mkdir()
            timing_chain(extract(supernet, s), mask, shape, folder)
            time_mixes(folder, {"arch": space.format(dataclasses.replace(s, exits=mask))}, chain_paths(mask))
            if progress is not None:
                progress("timing segment chains", i + 1, total)
        off = (0,) * n_exits
        for j in range(n_scouts):
            scout = extract(supernet, space.uniform(j))
            for i, s in enumerate(subnets):
                folder = Path(tmp) / f"s{j}-{i}"
                folder.mkdir()
                stages = build_stages(extract(supernet, s), off, [None] * n_exits, scout=scout, scout_threshold=0.5)
                export_chain(stages, torch.zeros(shape), folder, normalisation={}, names=exit_names(n_exits, True),
                             classes=[])
                time_mixes(folder, {"arch": space.format(dataclasses.replace(s, exits=off)), "scout": j},
                           ["scout", None])
                if progress is not None:
                    progress("timing segment chains", len(jobs) + j * len(subnets) + i + 1, total)
    return out


def measure_host(device: str, arch_config: CostedConfig, *, seed: int = 0, n_calibration: int = 60, rounds: int = 5,
                 threads: int = 1, progress: Progress | None = None) -> dict[str, Any]:
    """Measure the LUT and the calibration subnets on this machine; return the cache document."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    lut_units = _lut_units(arch_config)
    models: dict[str, tuple[bytes, tuple[int, ...]]] = {"null": (null_graph(), (1, 1))}
    for key, ks in lut_units.items():
        models[f"unit:{key}"] = (chain_graph(ks, rng), input_shape(ks[0]))
    space = arch_config.space()
    subnets = calibration_subnets(space, n_calibration, seed)
    supernet = random_supernet(arch_config, seed)
    ref = reference_subnet(space)
    reference = subnet_onnx(supernet, ref)
    for i, s in enumerate(subnets):
        models[f"subnet:{space.format(s)}"] = subnet_onnx(supernet, s)
        if progress is not None:
            progress("exporting calibration subnets", i + 1, len(subnets))
    timed = measure_latencies(models, reference, rounds=rounds, threads=threads, seed=seed, progress=progress)
    chain_subnets = list(dict.fromkeys([ref, space.smallest(), space.largest()]))
    chains = measure_chains(supernet, space, chain_subnets, reference, rounds=rounds, threads=threads, seed=seed,
                            progress=progress)

    def entry(key: str) -> dict[str, float]:
        t = timed[key]
        return {"ratio": t.ratio, "ratio_p10": t.ratio_p10, "ratio_p90": t.ratio_p90, "median_ms": t.median_ms,
                "raw_median_ms": t.raw_median_ms}

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "device": device,
        "arch_hash": arch_hash(arch_config), "family": arch_config.family, "arch_config": arch_config.to_dict(),
        "host": host_info(threads),
        "protocol": {"batch": 1, "threads": threads, "warmup": 10, "repeats": 50, "block": 5, "rounds": rounds,
                     "statistic": "median over blocks of (model block median / preceding reference block median)",
                     "seed": seed},
        "reference": {"arch": space.format(ref), "ms": timed.reference_ms},
        "null": entry("null"),
        "lut": {key: entry(f"unit:{key}") for key in lut_units},
        "calibration": [{"arch": space.format(s), **entry(f"subnet:{space.format(s)}")} for s in subnets],
        "noise": {"machine_spread": timed.machine_spread, "load_average": list(os.getloadavg())},
        "chains": chains,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_s": time.perf_counter() - start,
    }


def check_document(doc: Any, path: Path, device: str, arch_config: CostedConfig) -> None:
    """Raise :class:`PredictorCacheError` unless ``doc`` is a complete LUT cache for this device and net."""
    def bad(why: str) -> PredictorCacheError:
        return PredictorCacheError(f"latency cache '{path}' {why}; delete it to re-measure.")

    check_header(doc, FORMAT, FORMAT_VERSION, "latency LUT", bad)
    if doc.get("device") != device or doc.get("arch_hash") != arch_hash(arch_config):
        raise bad(f"belongs to device {doc.get('device')!r} / arch {doc.get('arch_hash')!r}, not "
                  f"{device!r} / {arch_hash(arch_config)!r}")
    try:
        lut, cal = doc["lut"], doc["calibration"]
        missing = [k for k in _lut_units(arch_config) if k not in lut]
        values = [float(e["ratio"]) for e in lut.values()] + [float(r["ratio"]) for r in cal]
        values += [float(doc["null"]["ratio"]), float(doc["reference"]["ms"])]
        space = arch_config.space()
        for r in cal:
            space.parse(r["arch"])
        space.parse(doc["reference"]["arch"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"is corrupt ({e.__class__.__name__}: {str(e)[:60]})") from None
    if missing:
        raise bad(f"lacks {len(missing)} LUT entries, e.g. '{missing[0][:60]}'")
    if len(cal) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise bad("holds fewer than 2 calibration subnets or non-positive latencies")


def fit_correction(lut: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Robust fit of ``measured ≈ slope * lut + intercept`` on relative error (slope >= 0)."""
    if len(lut) < 2:
        raise CalibrationError(f"the linear correction needs >= 2 calibration subnets, but got {len(lut)}.")

    def rel(theta: np.ndarray) -> np.ndarray:
        return (theta[0] * lut + theta[1]) / measured - 1.0

    res = least_squares(rel, x0=np.array([1.0, 0.0]), loss="huber", f_scale=0.05,
                        bounds=([0.0, -np.inf], [np.inf, np.inf]))
    return float(res.x[0]), float(res.x[1])


RIDGE_ALPHAS = np.logspace(-4, 2, 13)


def one_hot(widths: np.ndarray, n_choices: int) -> np.ndarray:
    """``(n, n_blocks)`` width indices → ``(n, n_blocks * n_choices)`` indicator columns."""
    n, n_blocks = widths.shape
    x = np.zeros((n, n_blocks * n_choices))
    x[np.repeat(np.arange(n), n_blocks), (np.arange(n_blocks) * n_choices + widths).ravel()] = 1.0
    return x


def fit_block_residual(widths: np.ndarray, residual: np.ndarray, weight: np.ndarray,
                       n_choices: int) -> tuple[np.ndarray, float, float]:
    """Per-(term, variant) correction of the scaled LUT by weighted ridge; returns (table, constant, alpha)."""
    x = one_hot(widths, n_choices)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, residual, sample_weight=weight)
    return model.coef_.reshape(widths.shape[1], n_choices), float(model.intercept_), float(model.alpha_)


class HostLUTPredictor:
    """Latency on this machine: an in-context per-block table fitted to measured subnets (see module doc)."""

    def __init__(self, arch_config: CostedConfig, doc: dict[str, Any], *, cache_path: Path | None = None,
                 source: str = "measured"):
        self.device = str(doc["device"])
        self.doc = doc
        self.cache_path = cache_path
        self.source = source
        self.space = arch_config.space()
        self.reference = self.space.parse(doc["reference"]["arch"])
        self.reference_ms = float(doc["reference"]["ms"])
        null = float(doc["null"]["ratio"])
        self.lut = {k: max(float(e["ratio"]) - null, 0.0) for k, e in doc["lut"].items()}
        self.lut_table = UnitTable.build(arch_config, lambda ks: self.lut[unit_key(ks)])
        self.cal_subnets = [self.space.parse(r["arch"]) for r in doc["calibration"]]
        self.cal_ratio = np.array([float(r["ratio"]) for r in doc["calibration"]])
        self.slope, self.intercept = fit_correction(self.lut_table(self.cal_subnets), self.cal_ratio)
        self.table, self.alpha = self._fit(np.arange(len(self.cal_subnets)))
        self.n_exits = len(self.space.exit_positions)
        chains = doc.get("chains") or []
        self.cut_reach, self.cut_pass, self.chain_fit = self._fit_cuts([c for c in chains if "scout" not in c])
        self.scout_reach, self.scout_pass, self.scout_fit = self._fit_scouts([c for c in chains if "scout" in c])

    def _fit(self, rows: np.ndarray) -> tuple[UnitTable, float]:
        lut = self.lut_table
        prior = lut.with_values(self.slope * lut.constant + self.intercept, self.slope * lut.table,
                                self.slope * lut.stem, tuple(self.slope * h for h in lut.heads))
        subnets = [self.cal_subnets[i] for i in rows]
        y = self.cal_ratio[rows]
        choices = prior.choice_matrix(subnets)
        delta, constant, alpha = fit_block_residual(choices, y - prior(subnets), 1.0 / y ** 2, lut.table.shape[1])
        return prior.with_values(prior.constant + constant, prior.table + delta, prior.stem, prior.heads), alpha

    def predict_ratio(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted latency relative to the reference subnet (independent of the machine's momentary speed)."""
        return self.table(subnets)

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted batch-1, 1-thread onnxruntime latency of each subnet, in ms (at the calibration's speed)."""
        return self.reference_ms * self.table(subnets)

    def _fit_scouts(self, chains: list[dict[str, Any]]) -> tuple[float, float, dict[str, Any]]:
        """The cost of a scout stage beyond its whole-graph prediction (reaching its test) and of passing it (the
        subnet's first call after it), by NNLS on the timed scout chains (ratios)."""
        self.scout_scale = 1.0
        if not chains:
            return 0.0, 0.0, {"n_timings": 0}
        scouts = self.table([self.space.uniform(int(c["scout"])) for c in chains])
        mains = self.table([self.space.parse(c["arch"]) for c in chains])
        shares = np.array([c["shares"] for c in chains], dtype=np.float64)  # (scout, final) per timing
        final = shares[:, 1]
        measured = np.array([float(c["ratio"]) for c in chains])
        design = np.column_stack([scouts + final * mains, np.ones(len(chains)), final])
        w = 1.0 / measured
        theta, _ = nnls(design * w[:, None], measured * w)
        self.scout_scale = float(theta[0])
        err = design @ theta / measured - 1.0
        return float(theta[1]), float(theta[2]), {"n_timings": len(chains), "work_scale": self.scout_scale,
                                                  "rmse_pct": float(100 * np.sqrt(np.mean(err ** 2))),
                                                  "max_abs_pct": float(100 * np.abs(err).max())}

    def cascade_exit_ms(self, scouts: Sequence[SubnetConfig], mains: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, 1 + E + 1)`` ms of a width cascade as the runtime runs it: leave at the scout, then at each exit
        of the subnet that runs after it, then at its final classifier (the scout chains' fit)."""
        scout = self.scout_scale * self.table(scouts) + self.scout_reach
        after = self.predict_exit_ms(mains) / self.reference_ms
        static = np.asarray([not any(m.exits) for m in mains])
        after[static] *= self.scout_scale  # a static subnet after a scout runs as that chain's second stage
        return self.reference_ms * np.column_stack([scout, scout[:, None] + self.scout_pass + after])

    def _cut_matrix(self, subnets: Sequence[SubnetConfig], reach: np.ndarray, passing: np.ndarray) -> np.ndarray:
        """``(n, E + 1)`` cut costs of each path: the cuts reached on the way to each exit (and to the end)."""
        on = np.asarray([s.exits or (0,) * self.n_exits for s in subnets], dtype=np.float64).reshape(-1, self.n_exits)
        reached = np.cumsum(on * reach, axis=1)  # leaving at e pays the output of every cut up to e
        passed = np.cumsum(on * passing, axis=1) - on * passing  # and the calls of the cuts before e
        leave = np.where(on > 0, reached + passed, 0.0)
        final = (on * (reach + passing)).sum(axis=1)
        return np.column_stack([leave, final])

    def _fit_cuts(self, chains: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Per exit position, the cost of reaching a cut and of passing it (ratios), by NNLS on the chains."""
        zero = np.zeros(self.n_exits)
        self.chain_scale = 1.0
        if not chains or not self.n_exits:
            return zero, zero, {"n_timings": 0}
        subs = [self.space.parse(c["arch"]) for c in chains]
        base = self.table.exit_costs(subs)
        cuts = []
        for k in range(self.n_exits):  # the cut matrix is linear in (reach, pass): one column per parameter
            unit = np.zeros(self.n_exits)
            unit[k] = 1.0
            cuts.append(self._cut_matrix(subs, unit, zero))
        for k in range(self.n_exits):
            unit = np.zeros(self.n_exits)
            unit[k] = 1.0
            cuts.append(self._cut_matrix(subs, zero, unit))
        measured = np.array([float(c["ratio"]) for c in chains])
        design = np.zeros((len(chains), 1 + 2 * self.n_exits))
        for i, c in enumerate(chains):  # a timing mixes paths: its row is the share-weighted rows of its paths
            for leave, share in zip(c["paths"], c["shares"], strict=True):
                col = self.n_exits if leave is None else int(leave)
                design[i] += share * np.array([base[i, col], *(m[i, col] for m in cuts)])
        weight = 1.0 / measured  # relative error
        theta, _ = nnls(design * weight[:, None], measured * weight)
        self.chain_scale = float(theta[0])
        reach, passing = theta[1: 1 + self.n_exits], theta[1 + self.n_exits:]
        err = design @ theta / measured - 1.0
        return reach, passing, {"n_timings": len(chains), "work_scale": self.chain_scale,
                                "rmse_pct": float(100 * np.sqrt(np.mean(err ** 2))),
                                "max_abs_pct": float(100 * np.abs(err).max()),
                                "within_10pct": float(np.mean(np.abs(err) <= 0.10))}

    def predict_exit_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)`` ms of leaving at each exit, then at the final classifier, as the segment runtime runs it.

        For a subnet with exits: the table's work up to there (heads on the way included, see
        ``UnitTable.exit_costs``) times the fitted ``chain_scale`` (a chain's mean time per input runs
        above one graph's median), plus, for every enabled exit on the way, the measured cost of its
        cut: the stage's output, and the next stage's call when the sample goes on. A subnet without
        exits is one graph, costed by the table alone.
        """
        costs = self.table.exit_costs(subnets)
        if len(subnets) and self.n_exits:
            dynamic = np.asarray([any(s.exits) for s in subnets])[:, None]
            chain = self.chain_scale * costs + self._cut_matrix(subnets, self.cut_reach, self.cut_pass)
            costs = np.where(dynamic, chain, costs)  # a static subnet is one graph: the table as calibrated
        return self.reference_ms * costs

    def speed_now(self, arch_config: CostedConfig, *, seconds: float = 1.5, threads: int = 1,
                  seed: int = 0) -> dict[str, Any]:
        """Time the reference subnet now (about ``seconds``) against its latency at calibration.

        ``drift`` = now / at calibration; ms at the machine's current speed are ``drift`` times the
        predictor's ms (which stay in calibration-speed units, so a search's figures do not depend on
        the moment it ran: same seed, same result).
        """
        model, shape = subnet_onnx(random_supernet(arch_config, seed), self.reference)
        probe = measure_latency(model, shape, threads=threads, warmup=10, repeats=20, seed=seed)
        repeats = int(min(2000, max(50, seconds * 1e3 / max(probe.median_ms, 1e-3))))
        repeats -= repeats % 5
        stats = measure_latency(model, shape, threads=threads, warmup=5, repeats=max(repeats, 5), seed=seed)
        return {"reference_arch": self.space.format(self.reference), "reference_ms_at_calibration": self.reference_ms,
                "reference_ms_now": stats.median_ms, "drift": stats.median_ms / self.reference_ms,
                "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "repeats": stats.repeats,
                "note": "predicted host ms are at the calibration's speed; multiply by drift for the speed now"}

    def loo_ratio(self) -> np.ndarray:
        """Leave-one-out predictions of the calibration subnets' ratios (the honest calibration error)."""
        n = len(self.cal_subnets)
        out = np.empty(n)
        for i in range(n):
            rows = np.delete(np.arange(n), i)
            table, _ = self._fit(rows)
            out[i] = table([self.cal_subnets[i]])[0]
        return out

    def describe(self) -> dict[str, Any]:
        err = self.loo_ratio() / self.cal_ratio - 1.0
        lut_err = (self.slope * self.lut_table(self.cal_subnets) + self.intercept) / self.cal_ratio - 1.0
        d = self.doc
        measured_ms = self.reference_ms * self.cal_ratio
        return {
            "method": "block-lut",
            "method_detail": "per-block table in context: isolated-unit LUT prior + ridge fit to measured subnets, "
                             "all timed relative to an interleaved reference subnet",
            "device": self.device,
            "source": self.source,
            "cache": str(self.cache_path) if self.cache_path else None,
            "host": d["host"],
            "protocol": d["protocol"],
            "params": {"slope": self.slope, "intercept_ratio": self.intercept, "ridge_alpha": self.alpha,
                       "chain_scale": self.chain_scale,
                       "reference_arch": d["reference"]["arch"], "reference_ms": self.reference_ms,
                       "null_ratio": float(d["null"]["ratio"]), "lut_entries": len(self.lut),
                       "cut_reach_ratio": self.cut_reach.tolist(), "cut_pass_ratio": self.cut_pass.tolist()},
            "chain_fit": self.chain_fit,
            "scout_fit": {**self.scout_fit, "reach_ratio": self.scout_reach, "pass_ratio": self.scout_pass},
            "quality": {
                "n_calibration": len(err),
                "loo_within_10pct": float(np.mean(np.abs(err) <= 0.10)),
                "loo_within_5pct": float(np.mean(np.abs(err) <= 0.05)),
                "loo_rmse_pct": float(100 * np.sqrt(np.mean(err ** 2))),
                "loo_max_abs_pct": float(100 * np.abs(err).max()),
                "isolated_lut_rmse_pct": float(100 * np.sqrt(np.mean(lut_err ** 2))),
                "machine_spread": d["noise"]["machine_spread"],
                "load_average": d["noise"]["load_average"],
            },
            "measured_range_ms": [float(measured_ms.min()), float(measured_ms.max())],
            "build_s": d.get("build_s"),
            "created": d.get("created"),
        }


def measure_relative(pred: HostLUTPredictor, reference: tuple[bytes, tuple[int, ...]], model: Path | bytes, *,
                     rounds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time one exported model with the host predictor's own protocol, against its reference subnet.

    ``reference`` is ``subnet_onnx(supernet, pred.reference)`` (built once for many models).
    ``at_calibration_speed_ms`` (ratio x the reference's latency when the predictor was built) is
    the figure to compare with ``pred.predict_ms``: a plain median also carries the machine's
    momentary speed, which on a shared VM moves it by tens of percent.
    """
    timed = measure_latencies({"model": (model, reference[1])}, reference, rounds=rounds, seed=seed)
    t = timed["model"]
    return {"ratio": t.ratio, "reference_arch": pred.space.format(pred.reference),
            "reference_ms_at_calibration": pred.reference_ms, "at_calibration_speed_ms": t.ratio * pred.reference_ms,
            "at_calibration_speed_p10_ms": t.ratio_p10 * pred.reference_ms,
            "at_calibration_speed_p90_ms": t.ratio_p90 * pred.reference_ms,
            "session_ms": t.median_ms, "machine_spread": timed.machine_spread, "rounds": rounds}


def measure_expected_relative(pred: HostLUTPredictor, reference: tuple[bytes, tuple[int, ...]], model: Path | bytes,
                              inputs: np.ndarray, *, passes: int = 1, seed: int = 0) -> dict[str, Any]:
    """Expected latency of an early-exit model over real inputs, relative to the predictor's reference
    (:func:`predictors.onnx_io.measure_over_inputs`); ms at the calibration's speed and at this session's."""
    t = measure_over_inputs(model, reference, inputs, passes=passes, seed=seed)
    return {**t, "reference_arch": pred.space.format(pred.reference), "reference_ms_at_calibration": pred.reference_ms,
            "at_calibration_speed_ms": t["ratio"] * pred.reference_ms,
            "at_calibration_speed_p10_ms": t["ratio_p10"] * pred.reference_ms,
            "at_calibration_speed_p90_ms": t["ratio_p90"] * pred.reference_ms,
            "statistic": "mean over inputs of (batch-1 time / preceding reference block median)"}


def cache_path(cache_dir: Path, device: str, arch_config: CostedConfig) -> Path:
    return Path(cache_dir) / f"{device}-{arch_config.family}-{arch_hash(arch_config)}.json"


def host_predictor(device: str, arch_config: CostedConfig, cache_dir: Path, *, seed: int = 0, n_calibration: int = 60,
                   rounds: int = 5, threads: int = 1, progress: Progress | None = None) -> HostLUTPredictor:
    """Load the cached measurements for (device, arch) or measure them now and cache them.

    A cache written on another CPU, onnxruntime version or thread count, or by an older dynnas
    (lower format version), is stale: it is re-measured and replaced. A corrupt cache, or one
    from a newer dynnas, raises :class:`PredictorCacheError`.
    """
    path = cache_path(cache_dir, device, arch_config)
    if path.exists():
        try:
            doc = read_json(path, "latency cache")
        except CheckpointError as e:
            raise PredictorCacheError(str(e)) from None
        older = (isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("format_version"), int)
                 and doc["format_version"] < FORMAT_VERSION)
        if not older:
            check_document(doc, path, device, arch_config)
            if doc["host"] == host_info(threads):
                return HostLUTPredictor(arch_config, doc, cache_path=path, source="cache")
    doc = measure_host(device, arch_config, seed=seed, n_calibration=n_calibration, rounds=rounds, threads=threads,
                       progress=progress)
    predictor = HostLUTPredictor(arch_config, doc, cache_path=path, source="measured")
    try:
        write_json(path, doc)
    except OSError as e:
        predictor.cache_path = None
        predictor.source = f"measured (not cached: {e.strerror})"
    return predictor
