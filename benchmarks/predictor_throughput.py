"""How many candidates per second does a search cost through the predictors?

For each shipped supernet (``--supernets cnn,vit``) and device (``--devices``), builds the search problem
exactly as ``dynnas search`` does (:func:`nas.problem.setup_problem`: accuracy predictor with exit rates,
latency predictor of the device with its exit and cascade terms, memory and energy when asked), then
times :meth:`nas.problem.SearchProblem.evaluate` on seeded random subnets:

* ``population``: batches of 100, as NSGA-II asks (the search's own rate, MACs included);
* ``bulk``: one batch of ``--n`` subnets (the enumeration of a reference front).

Decoding the random genomes into subnets is timed apart (``decode_per_s``; the search does it too, so
``population_per_s_with_decode`` is what an NSGA-II generation costs end to end). Target (issue 8):
>= 10,000 candidates/s through the predictors (``population_per_s``). Single thread, as the search runs.

Run from the repository root (about a minute; CPU-heavy, run nothing else)::

    .venv/bin/python benchmarks/predictor_throughput.py
    .venv/bin/python benchmarks/predictor_throughput.py --supernets cnn --devices host --n 2000   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from common import save  # noqa: E402

POPULATION = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernets", default="cnn,vit", help="shipped supernets (names or paths), comma-separated")
    p.add_argument("--devices", default="jetson-orin,raspberry-pi-5,host", help="device profiles, comma-separated")
    p.add_argument("--objectives", default="accuracy,latency", help="as dynnas search --objectives")
    p.add_argument("--n", type=int, default=20_000, help="random subnets per (supernet, device)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _rate(n: int, seconds: float) -> float:
    return n / max(seconds, 1e-9)


def measure(problem: Any, n: int, seed: int) -> dict[str, Any]:
    """Candidates/s of ``problem.evaluate`` over ``n`` seeded random genomes, in populations and in bulk."""
    space = problem.space
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, c, size=n) for c in space.cardinalities])
    t0 = time.perf_counter()
    subs = [space.decode(c) for c in codes]
    decode_s = time.perf_counter() - t0
    problem.evaluate(subs[:POPULATION])  # warm caches (LUT tables, predictor features) once
    t0 = time.perf_counter()
    for i in range(0, n, POPULATION):
        problem.evaluate(subs[i:i + POPULATION])
    pop_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = problem.evaluate(subs)
    bulk_s = time.perf_counter() - t0
    return {"n": n, "distinct": len({space.subnet_id(s) for s in subs}), "decode_per_s": _rate(n, decode_s),
            "population": POPULATION, "population_per_s": _rate(n, pop_s), "bulk_per_s": _rate(n, bulk_s),
            "population_per_s_with_decode": _rate(n, pop_s + decode_s),
            "feasible": float(np.mean(ev.feasible)), "space_size": int(space.size)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from hw_profiles import load_profile
    from nas.problem import parse_objectives, setup_problem
    from supernet.pretrained import resolve_supernet

    objectives = parse_objectives(args.objectives)
    rows: dict[str, Any] = {}
    start = time.perf_counter()
    for name in [s.strip() for s in args.supernets.split(",") if s.strip()]:
        model, meta, path = resolve_supernet(name)
        file = path / "supernet.safetensors" if path.is_dir() else path
        shared = None
        for device in [d.strip() for d in args.devices.split(",") if d.strip()]:
            profile = load_profile(device)
            setup = setup_problem(file, model, meta, profile, bn="recal", seed=args.seed, objectives=objectives,
                                  exits=bool(model.space.exit_positions), shared=shared)
            shared = setup.shared
            row = measure(setup.problem, args.n, args.seed)
            row.update(family=meta.get("family"), latency_predictor=type(setup.problem.latency).__name__)
            rows[f"{meta.get('family')}/{profile.name}"] = row
            print(f"{meta.get('family')} on {profile.name}: {row['population_per_s']:,.0f} candidates/s in populations "
                  f"of {POPULATION}, {row['bulk_per_s']:,.0f}/s in bulk, decode {row['decode_per_s']:,.0f}/s",
                  flush=True)
    least = min(r["population_per_s"] for r in rows.values())
    with_decode = min(r["population_per_s_with_decode"] for r in rows.values())
    result = {"objectives": [o.name for o in objectives], "rows": rows, "min_population_per_s": least,
              "min_population_per_s_with_decode": with_decode, "target_per_s": 10_000, "met": bool(least >= 10_000),
              "seconds": time.perf_counter() - start}
    save("predictor_throughput", result, " ".join(["benchmarks/predictor_throughput.py", *(argv or sys.argv[1:])]))
    print(f"slowest: {least:,.0f} candidates/s through the predictors ({with_decode:,.0f}/s with the genome "
          f"decoding), target 10,000: {'met' if least >= 10_000 else 'MISSED'}")
    return result


if __name__ == "__main__":
    main()
