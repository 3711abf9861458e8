"""Search quality: hypervolume of each algorithm at several budgets, relative to a reference front.

For every algorithm, budget and seed one search runs through the same code path as
``dynnas search``: :func:`nas.problem.setup_problem` builds the problem (so the same predictors
and the same hypervolume box, :class:`nas.pareto.HVBox` from the uniform-width subnets) and
:func:`nas.driver.run_search` runs it (so NSGA-II sizes its population from the budget exactly as
``--budget`` does, and the hypervolume is the driver's). The run of ``--seeds S`` at budget ``B``
is therefore the search of ``dynnas search --device D --algorithm A --budget B --seed S`` and its
``hypervolume`` equals that run.json's ``hypervolume[A]`` (tests/nas/test_search_quality.py
checks this). One deliberate difference: the benchmark fits the predictors once, with
``--seed`` (default 0), and keeps that problem for every search seed, whereas the CLI's
``--seed`` seeds both; they coincide when the predictor seed equals the search seed, and on the
shipped supernet also otherwise (seeds 0-2 all select ridge-pairwise, which is refitted on all
data without randomness, so the predictions and the box do not depend on the seed).

Each final hypervolume is divided by the hypervolume of a *reference front*: the non-dominated
union of long runs of every algorithm over several seeds, plus everything the benchmark runs
found (so the ratio is <= 1), plus, with two objectives, the exact front from enumerating every
subnet when the space has at most ``--exhaustive-limit`` subnets or a probe of its first 5,000
estimates the whole enumeration at most ``--exhaustive-seconds`` (the predictions are batched
and the running 2-D front is a sort plus a running minimum, so the shipped 3.1 M-subnet space
with exits and cascade takes about 3 minutes on one core). With three objectives
(``--objectives accuracy,latency,energy|memory``; ``--algorithms all`` is then what the
algorithm registry allows at three: no NSGA-II) the reference is the union of runs only, marked
not exact in the JSON, and the hypervolume is the problem's 3-D one in the box run.json stores.
``--exits`` and ``--cascade`` mean what they mean for ``dynnas search``. Also reported: wall
time and candidates per second. Progress goes to stdout: one line per finished run, and one
every ``--progress-s`` seconds within long runs.

Examples::

    python benchmarks/search_quality.py                                   # the shipped supernet, jetson-orin
    python benchmarks/search_quality.py --supernet runs/tiny --budgets 20,50 --seeds 0,1 \\
        --reference-budget 200 --reference-seeds 0 --out /tmp/search_quality_tiny.json
    python benchmarks/search_quality.py --objectives accuracy,latency,energy --budgets 100,300,1000 \\
        --reference-budget 2000 --out benchmarks/results/search_quality_energy.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMAT = "dynnas-benchmark-search-quality"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--supernet", type=Path, default=None, help="supernet file or run folder (default: the shipped one)")
    p.add_argument("--device", default="jetson-orin", help="device profile name or YAML path (default jetson-orin)")
    p.add_argument("--algorithms", default="all",
                   help="comma list or 'all' (with three objectives: those that handle three)")
    p.add_argument("--objectives", default="accuracy,latency",
                   help="accuracy,latency (default), accuracy,latency,energy or accuracy,latency,memory")
    p.add_argument("--exits", choices=("auto", "on", "off"), default="auto",
                   help="early exits, as `dynnas search --exits`: auto (searched when the supernet has heads), on, off")
    p.add_argument("--cascade", choices=("auto", "off"), default="auto",
                   help="width cascade, as `dynnas search --cascade`: auto (when the accuracy data has scouts) or off")
    p.add_argument("--budgets", default="100,300,1000", help="evaluation budgets to compare at")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the benchmark runs")
    p.add_argument("--reference-budget", type=int, default=3000, help="evaluations of each long reference run")
    p.add_argument("--reference-seeds", default="100,101", help="seeds of the long reference runs")
    p.add_argument("--exhaustive-limit", type=int, default=300_000,
                   help="two objectives: enumerate the whole space for the reference when it has at most this "
                        "many subnets")
    p.add_argument("--exhaustive-seconds", type=float, default=300.0,
                   help="two objectives: also enumerate a larger space when its estimated time (measured "
                        "candidates/s on a probe) is at most this many seconds; 0 turns that off")
    p.add_argument("--exhaustive-chunk", type=int, default=50_000, help="subnets per chunk of the enumeration")
    p.add_argument("--latency-budget", type=float, default=None, help="latency constraint in ms (optional)")
    p.add_argument("--bn", default="recal", help="BN mode of the accuracy data: recal or switchable")
    p.add_argument("--accuracy-samples", type=int, default=400, help="subnets measured if no accuracy cache exists")
    p.add_argument("--seed", type=int, default=0, help="seed of the predictors (accuracy model selection)")
    p.add_argument("--progress-s", type=float, default=30.0, help="print a progress line this often within a run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_quality.json")
    return p.parse_args(argv)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def stats(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "per_seed": [float(v) for v in a]}


def fronts_F(results: list[Any], n_obj: int = 2) -> np.ndarray:  # noqa: N802 - pymoo's name
    """Minimised objectives ``(-acc, lat[, third])`` of the Pareto rows of some results (as
    ``hypervolume_combined`` in run.json)."""
    from nas.driver import objective_matrix, pareto_rows

    rows = [objective_matrix(pareto_rows(r.evaluations, r.objectives), r.objectives) for r in results]
    return np.vstack(rows) if rows else np.zeros((0, n_obj))


class Ticker:
    """A ``run_search`` progress callback that prints a line at most every ``every_s`` seconds."""

    def __init__(self, label: str, every_s: float) -> None:
        self.label, self.every_s = label, every_s
        self.start = self.last = time.perf_counter()

    def __call__(self, algorithm: str, n_evals: int, budget: int, hypervolume: float) -> None:
        now = time.perf_counter()
        if self.every_s > 0 and now - self.last >= self.every_s and n_evals < budget:
            self.last = now
            rate = n_evals / max(now - self.start, 1e-9)
            print(f"    ... {self.label}: {n_evals}/{budget} evals, HV {hypervolume:.4f}, {now - self.start:.0f}s, "
                  f"{rate:.1f} evals/s", flush=True)


def front_2d(F: np.ndarray) -> np.ndarray:  # noqa: N803 - pymoo's name
    """Indices of the non-dominated rows of a two-objective ``F`` (minimised): exact, O(n log n).

    Sorted by (f1, f0), a row is dominated iff some row before its group of equal rows has an f0
    no larger (a running minimum). Equal rows do not dominate each other, so every copy stays and
    the order is by f1 then f0, as in :func:`nas.pareto.non_dominated` (which is quadratic-ish in
    the worst case; this one handles a 50k chunk in milliseconds).
    """
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((F[:, 0], F[:, 1]))
    s = F[order]
    before = np.concatenate([[np.inf], np.minimum.accumulate(s[:-1, 0])])  # least f0 of the rows before i
    new = np.concatenate([[True], np.any(s[1:] != s[:-1], axis=1)])
    first = np.maximum.accumulate(np.where(new, np.arange(len(s)), 0))  # first row of i's group of equal rows
    return order[s[:, 0] < before[first]]


def encodings(space: Any, start: int, stop: int) -> np.ndarray:
    """Encodings ``start`` … ``stop - 1`` of the mixed-radix product of the space's cardinalities (last gene
    fastest), less those with an increasing token schedule (``decode`` would repair them into duplicates)."""
    codes = np.stack(np.unravel_index(np.arange(start, stop, dtype=np.int64), space.cardinalities), axis=1)
    n = space.n_token_positions
    if n > 1:
        a = space.gene_names.index("t0")
        codes = codes[np.all(np.diff(codes[:, a:a + n], axis=1) <= 0, axis=1)]
    return codes


def exact_front_2d(problem: Any, *, limit: int, seconds: float, chunk: int = 50_000, probe: int = 5_000,
                   progress_s: float = 30.0) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The exact front of a two-objective problem: every subnet evaluated, in chunks.

    The first ``probe`` encodings measure the rate; the rest follow only when the space has at
    most ``limit`` subnets or the estimated time (encodings / measured rate) is at most
    ``seconds``; otherwise this returns ``(None, info)`` with the estimate. A running
    non-dominated set is kept (:func:`front_2d` within a chunk, :func:`nas.pareto.non_dominated`
    on the small merged set), so memory stays that of one chunk. MACs are not computed: they are
    reported, never optimised, and cost about three times the predictors.

    Example::

        front, info = exact_front_2d(problem, limit=300_000, seconds=300)
        info["candidates_per_s"], info["estimated_s"]
    """
    from nas.pareto import non_dominated
    from supernet.errors import ConfigError

    if problem.n_obj != 2:
        raise ConfigError(f"the exact front by enumeration is two-objective, but the problem has {problem.n_obj} "
                          "objectives; use the union of long runs as the reference.")
    if chunk < 1 or probe < 1:
        raise ConfigError(f"chunk and probe must be >= 1 encoding, but got {chunk=} and {probe=}.")
    space = problem.space
    fast = dataclasses.replace(problem, macs=lambda subs: np.zeros(len(subs), dtype=np.int64))  # same F and G
    total = math.prod(space.cardinalities)  # encodings; above space.size when token schedules are repaired
    info: dict[str, Any] = {"method": "enumeration in chunks, running 2-D non-dominated set", "size": space.size,
                            "encodings": total, "limit": limit, "seconds_limit": seconds, "chunk": chunk,
                            "probe": min(probe, total)}
    if total >= 2**62:
        info.update(done=False, reason=f"{total} encodings do not fit a 64-bit index")
        return None, info
    front = np.zeros((0, 2))
    done = n_subnets = n_feasible = 0
    start = last = time.perf_counter()
    while done < total:
        stop = min(total, done + (probe if done == 0 else chunk))
        subs = [space.decode(c) for c in encodings(space, done, stop)]
        ev = fast.evaluate(subs)
        F = ev.F[ev.feasible]
        merged = np.vstack([front, F[front_2d(F)]])
        front = merged[non_dominated(merged)]
        n_subnets, n_feasible, done = n_subnets + len(subs), n_feasible + len(F), stop
        now = time.perf_counter()
        if info.get("estimated_s") is None:
            rate = done / max(now - start, 1e-9)
            info.update(probe_s=now - start, probe_candidates_per_s=n_subnets / max(now - start, 1e-9),
                        estimated_s=total / rate)
            go = space.size <= limit or info["estimated_s"] <= seconds
            print(f"    exact front: probe {n_subnets} subnets at {info['probe_candidates_per_s']:.0f}/s, "
                  f"{space.size} subnets estimated at {info['estimated_s']:.0f}s"
                  + ("" if go else f" > --exhaustive-seconds {seconds:g}: skipped"), flush=True)
            if not go:
                info.update(done=False, reason=f"estimated {info['estimated_s']:.0f}s > --exhaustive-seconds "
                                               f"{seconds:g} and {space.size} subnets > --exhaustive-limit {limit}")
                return None, info
        elif progress_s > 0 and now - last >= progress_s:
            last = now
            print(f"    ... exact front: {done}/{total} encodings, {now - start:.0f}s, front {len(front)}", flush=True)
    elapsed = time.perf_counter() - start
    info.update(done=True, candidates=n_subnets, feasible=n_feasible, seconds=elapsed,
                candidates_per_s=n_subnets / max(elapsed, 1e-9), n_points=int(len(front)))
    return front, info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from hw_profiles import load_profile
    from nas.algorithms import resolve_algorithms
    from nas.driver import run_search
    from nas.pareto import hypervolume, non_dominated
    from nas.problem import parse_objectives, setup_problem
    from nas.runfolder import now_iso, versions
    from reports.run_folder import jsonable
    from supernet.checkpoint import sha256, write_json
    from supernet.errors import ConfigError
    from supernet.pretrained import resolve_supernet

    objectives = parse_objectives(args.objectives)
    algorithms = resolve_algorithms(args.algorithms, len(objectives))  # the registry says who handles three
    budgets, seeds, ref_seeds = ints(args.budgets), ints(args.seeds), ints(args.reference_seeds)
    profile = load_profile(args.device)
    model, meta, path = resolve_supernet(args.supernet)
    file = path / "supernet.safetensors" if path.is_dir() else path
    if args.exits == "on" and not model.space.exit_positions:
        raise ConfigError(f"supernet '{file}' has no exit heads, so --exits on cannot search exits; train heads "
                          f"with `dynnas train --init-from {file} --exit-epochs 3` or pass --exits auto or off.")
    use_exits = bool(model.space.exit_positions) and args.exits != "off"  # as `dynnas search` (batch 1)
    setup = setup_problem(file, model, meta, profile, bn=args.bn, seed=args.seed, latency_budget_ms=args.latency_budget,
                          accuracy_samples=args.accuracy_samples, exits=use_exits, cascade=args.cascade == "auto",
                          objectives=objectives)
    problem = setup.problem
    problem.check_feasible()
    box = problem.hv_box
    names = [o.name for o in problem.objectives]
    print(f"{file.name} on {profile.name}: {problem.space.size} subnets, objectives {names}, algorithms {algorithms}, "
          f"budgets {budgets}, seeds {seeds}; reference {args.reference_budget} x seeds {ref_seeds}", flush=True)

    # the exact front first: its probe says at once whether the enumeration runs and how long it takes
    if problem.n_obj == 2:
        exact, enumeration = exact_front_2d(problem, limit=args.exhaustive_limit, seconds=args.exhaustive_seconds,
                                            chunk=args.exhaustive_chunk, progress_s=args.progress_s)
    else:
        exact, enumeration = None, {"done": False, "reason": f"{problem.n_obj} objectives: no exact enumeration "
                                                             "(the 2-D front is exact and cheap, a 3-D one is not)"}

    runs: dict[tuple[str, int, int], Any] = {}
    reference: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="dynnas-sq-") as tmp:
        for alg in algorithms:
            for s in ref_seeds:
                r = run_search(problem, alg, args.reference_budget, s, Path(tmp) / f"ref-{alg}-{s}",
                               Ticker(f"reference {alg} seed {s}", args.progress_s))
                reference.append(r)
                print(f"reference {alg} seed {s}: HV {r.hypervolume:.4f} in {r.seconds:.1f}s", flush=True)
            for b in budgets:
                for s in seeds:
                    r = run_search(problem, alg, b, s, Path(tmp) / f"{alg}-{b}-{s}",
                                   Ticker(f"{alg} budget {b} seed {s}", args.progress_s))
                    runs[(alg, b, s)] = r
                    print(f"{alg:>7} budget {b:>5} seed {s}: HV {r.hypervolume:.4f}, {r.seconds:.1f}s, "
                          f"{r.n_evals / max(r.seconds, 1e-9):.0f} evals/s", flush=True)

    parts = [fronts_F(reference, problem.n_obj), fronts_F(list(runs.values()), problem.n_obj)]
    exhaustive = exact is not None
    if exhaustive:
        parts.append(exact)
    F = np.vstack(parts)
    front = np.unique(F[non_dominated(F)], axis=0)  # a subnet found by several runs counts once
    ref_hv = hypervolume(front, box)
    method = ("union of the long runs and every benchmark run"
              + (f", plus the exact front of all {problem.space.size} subnets" if exhaustive
                 else " (not exact: a lower bound of the true front's hypervolume, so ratios may read high)"))

    results: dict[str, Any] = {}
    for alg in algorithms:
        results[alg] = {}
        for b in budgets:
            rs = [runs[(alg, b, s)] for s in seeds]
            results[alg][str(b)] = {
                "hv_relative": stats([r.hypervolume / ref_hv if ref_hv > 0 else float("nan") for r in rs]),
                "hypervolume": stats([r.hypervolume for r in rs]),
                "wall_s": stats([r.seconds for r in rs]),
                "evals_per_s": stats([r.n_evals / max(r.seconds, 1e-9) for r in rs]),
                "n_evals": stats([float(r.n_evals) for r in rs]),
                "n_distinct": stats([float(r.evaluations["subnet_id"].nunique()) for r in rs]),
                "stopped_early": [r.stopped_early for r in rs],
            }
    cli_extra = ((f" --objectives {args.objectives}" if len(objectives) > 2 else "")
                 + (f" --exits {args.exits}" if args.exits != "auto" else "")
                 + (f" --cascade {args.cascade}" if args.cascade != "auto" else ""))
    doc = {
        "format": FORMAT, "format_version": 1, "created": now_iso(), "versions": versions(),
        "command": "python benchmarks/search_quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "objective_names": names, "algorithms_resolved": algorithms, "exits_searched": use_exits,
                     "cascade_scouts": problem.space.n_cascade},
        "device": profile.name,
        # the run of (algorithm A, budget B, seed S) is this CLI search; its run.json hypervolume[A] equals
        # results[A][B].hypervolume.per_seed[i] (same predictors when --seed == S; see the module docstring)
        "cli_equivalent": ("dynnas search --device " + args.device
                           + (f" --supernet {args.supernet}" if args.supernet is not None else "")
                           + f" --bn {args.bn} --algorithm A --budget B --seed S --top 0"
                           + (f" --latency-budget {args.latency_budget:g}" if args.latency_budget is not None else "")
                           + cli_extra),
        "supernet": {"path": str(file.resolve()), "sha256": sha256(file), "space_size": problem.space.size},
        "objectives": [{"name": o.name, "direction": o.direction, "unit": o.unit} for o in problem.objectives],
        "exits": {"searched": bool(problem.space.exit_positions), "positions": list(problem.space.exit_positions),
                  "cascade_scouts": problem.space.n_cascade},
        "predictors": {"accuracy": problem.accuracy.quality, "latency": problem.latency.describe()},
        "hv_reference": problem.hv_reference(),  # the box run.json stores (3-D with three objectives)
        "reference_front": {"hypervolume": ref_hv, "n_points": int(len(front)), "exhaustive": exhaustive,
                            "exact": exhaustive, "method": method, "enumeration": enumeration,
                            "long_runs": {"budget": args.reference_budget, "seeds": ref_seeds,
                                          "hypervolume": {r.algorithm + f"-seed{r.seed}": r.hypervolume
                                                          for r in reference}}},
        "results": results,
    }
    doc = jsonable(doc)
    write_json(args.out, doc)  # atomic: temp file beside it, then rename
    print(f"\nreference front: {len(front)} points, HV {ref_hv:.4f}; {method}")
    print(f"{'algorithm':>10} " + " ".join(f"{'HV/ref@' + str(b):>14}" for b in budgets) + f" {'evals/s':>9}")
    for alg in algorithms:
        cells = [results[alg][str(b)]["hv_relative"] for b in budgets]
        speed = results[alg][str(budgets[-1])]["evals_per_s"]["mean"]
        print(f"{alg:>10} " + " ".join(f"{c['mean']:>8.4f}±{c['std']:<5.3f}" for c in cells) + f" {speed:>9.0f}")
    print(f"wrote {args.out}")
    return json.loads(json.dumps(doc))


if __name__ == "__main__":
    main()
