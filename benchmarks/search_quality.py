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
found (so the ratio is <= 1), plus, when the space is small enough, the exact front from
enumerating every subnet. Also reported: wall time and candidates per second. Progress goes
to stdout: one line per finished run, and one every ``--progress-s`` seconds within long runs.

Examples::

    python benchmarks/search_quality.py                                   # the shipped supernet, jetson-orin
    python benchmarks/search_quality.py --supernet runs/tiny --budgets 20,50 --seeds 0,1 \\
        --reference-budget 200 --reference-seeds 0 --out /tmp/search_quality_tiny.json
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--algorithms", default="all", help="comma list or 'all'")
    p.add_argument("--budgets", default="100,300,1000", help="evaluation budgets to compare at")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the benchmark runs")
    p.add_argument("--reference-budget", type=int, default=3000, help="evaluations of each long reference run")
    p.add_argument("--reference-seeds", default="100,101", help="seeds of the long reference runs")
    p.add_argument("--exhaustive-limit", type=int, default=300_000,
                   help="enumerate the whole space for the reference when it has at most this many subnets")
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


def fronts_F(results: list[Any]) -> np.ndarray:
    """Objectives ``(-acc, lat)`` of the Pareto rows of some results (as ``hypervolume_combined`` in run.json)."""
    from nas.driver import pareto_rows

    rows = [pareto_rows(r.evaluations) for r in results]
    if not rows:
        return np.zeros((0, 2))
    return np.vstack([np.column_stack([-d["accuracy"].to_numpy(float), d["latency_ms"].to_numpy(float)]) for d in rows])


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


def exhaustive_F(problem: Any, batch: int = 20_000) -> np.ndarray:
    """Objectives of every feasible subnet of the space (for small spaces), in batches."""
    import itertools

    space = problem.space
    out = []
    combos = itertools.product(*[range(c) for c in space.cardinalities])
    done, start = 0, time.perf_counter()
    while chunk := list(itertools.islice(combos, batch)):
        ev = problem.evaluate([space.decode(c) for c in chunk])
        out.append(ev.F[ev.feasible])
        done += len(chunk)
        print(f"    ... exhaustive: {done}/{space.size} subnets, {time.perf_counter() - start:.0f}s", flush=True)
    return np.vstack(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from hw_profiles import load_profile
    from nas.algorithms import resolve_algorithms
    from nas.driver import run_search
    from nas.pareto import hypervolume, non_dominated
    from nas.problem import setup_problem
    from nas.runfolder import jsonable, now_iso, versions
    from supernet.checkpoint import sha256, write_json
    from supernet.pretrained import resolve_supernet

    algorithms = resolve_algorithms(args.algorithms)
    budgets, seeds, ref_seeds = ints(args.budgets), ints(args.seeds), ints(args.reference_seeds)
    profile = load_profile(args.device)
    model, meta, path = resolve_supernet(args.supernet)
    file = path / "supernet.safetensors" if path.is_dir() else path
    setup = setup_problem(file, model, meta, profile, bn=args.bn, seed=args.seed, latency_budget_ms=args.latency_budget,
                          accuracy_samples=args.accuracy_samples)
    problem = setup.problem
    problem.check_feasible()
    box = problem.hv_box
    print(f"{file.name} on {profile.name}: {problem.space.size} subnets, algorithms {algorithms}, "
          f"budgets {budgets}, seeds {seeds}; reference {args.reference_budget} x seeds {ref_seeds}", flush=True)

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

    parts = [fronts_F(reference), fronts_F(list(runs.values()))]
    exhaustive = problem.space.size <= args.exhaustive_limit
    if exhaustive:
        parts.append(exhaustive_F(problem))
    F = np.vstack(parts)
    front = F[non_dominated(F)]
    ref_hv = hypervolume(front, box)

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
    doc = {
        "format": FORMAT, "format_version": 1, "created": now_iso(), "versions": versions(),
        "command": "python benchmarks/search_quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": profile.name,
        # the run of (algorithm A, budget B, seed S) is this CLI search; its run.json hypervolume[A] equals
        # results[A][B].hypervolume.per_seed[i] (same predictors when --seed == S; see the module docstring)
        "cli_equivalent": ("dynnas search --device " + args.device
                           + (f" --supernet {args.supernet}" if args.supernet is not None else "")
                           + f" --bn {args.bn} --algorithm A --budget B --seed S --top 0"
                           + (f" --latency-budget {args.latency_budget:g}" if args.latency_budget is not None else "")),
        "supernet": {"path": str(file.resolve()), "sha256": sha256(file), "space_size": problem.space.size},
        "predictors": {"accuracy": problem.accuracy.quality, "latency": problem.latency.describe()},
        "hv_reference": box.to_dict(),
        "reference_front": {"hypervolume": ref_hv, "n_points": int(len(front)), "exhaustive": exhaustive,
                            "long_runs": {"budget": args.reference_budget, "seeds": ref_seeds,
                                          "hypervolume": {r.algorithm + f"-seed{r.seed}": r.hypervolume
                                                          for r in reference}}},
        "results": results,
    }
    doc = jsonable(doc)
    write_json(args.out, doc)
    print(f"\nreference front: {len(front)} points, HV {ref_hv:.4f}{' (exhaustive)' if exhaustive else ''}")
    print(f"{'algorithm':>10} " + " ".join(f"{'HV/ref@' + str(b):>14}" for b in budgets) + f" {'evals/s':>9}")
    for alg in algorithms:
        cells = [results[alg][str(b)]["hv_relative"] for b in budgets]
        speed = results[alg][str(budgets[-1])]["evals_per_s"]["mean"]
        print(f"{alg:>10} " + " ".join(f"{c['mean']:>8.4f}±{c['std']:<5.3f}" for c in cells) + f" {speed:>9.0f}")
    print(f"wrote {args.out}")
    return json.loads(json.dumps(doc))


if __name__ == "__main__":
    main()
