"""What exits and the width cascade add to the front, per device, at an equal search budget.

For each device, three searches of the same supernet run through the code path of
``dynnas search`` (:func:`nas.problem.setup_problem`, :func:`nas.driver.run_search`), each with
the same algorithm, budget and seed:

* ``widths``: ``--exits off`` (static networks, the space before issue 7);
* ``exits``: widths × exit masks (``--cascade off``);
* ``exits+cascade``: widths × exit masks × scouts (when the accuracy data has scouts).

Every front is scored in one common hypervolume box, the box of the largest space's problem
(uniform widths with exits off and with every exit on), so the numbers compare. Also reported:
each front's expected-latency span and its fastest point at or above the accuracy of the
uniform α=0.75 subnet.

Run from the repository root (a few minutes; host needs its latency table, cached after the first run)::

    .venv/bin/python benchmarks/exit_hypervolume.py --devices jetson-orin,host --budget 600
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hw_profiles import load_profile
from nas.driver import run_search
from nas.pareto import hypervolume
from nas.problem import setup_problem
from supernet.checkpoint import load_supernet, write_json
from supernet.pretrained import DEFAULT_SUPERNET

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"widths": {"exits": False, "cascade": False}, "exits": {"exits": True, "cascade": False},
            "exits+cascade": {"exits": True, "cascade": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    ap.add_argument("--devices", default="jetson-orin,host")
    ap.add_argument("--algorithm", default="nsga2")
    ap.add_argument("--budget", type=int, default=600)
    ap.add_argument("--max-accuracy-drop", type=float, default=0.5, help="points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "exit_hypervolume.json")
    args = ap.parse_args()
    model, meta = load_supernet(args.supernet)
    out = {"supernet": str(args.supernet), "algorithm": args.algorithm, "budget": args.budget, "seed": args.seed,
           "max_accuracy_drop_pp": args.max_accuracy_drop, "devices": {}}
    for device in args.devices.split(","):
        profile = load_profile(device)
        problems = {name: setup_problem(args.supernet, model, meta, profile, bn="recal", seed=args.seed,
                                        max_accuracy_drop=args.max_accuracy_drop / 100, **kw).problem
                    for name, kw in VARIANTS.items()}
        largest = max(problems.values(), key=lambda p: p.space.size)
        box = largest.hv_box
        ref_acc = float(largest.baselines.accuracy[-2])  # uniform α = 0.75 (exits off)
        rows = {}
        for name, problem in problems.items():
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                res = run_search(problem, args.algorithm, args.budget, args.seed, Path(tmp))
            front = res.pareto()
            F = np.column_stack([-front["accuracy"].to_numpy(), front["latency_ms"].to_numpy()])
            fast = front[front["accuracy"] >= ref_acc]
            rows[name] = {"space_size": problem.space.size, "hypervolume_common_box": hypervolume(F, box),
                          "front_size": len(front),
                          "front_latency_ms": [float(front["latency_ms"].min()), float(front["latency_ms"].max())],
                          "front_accuracy": [float(front["accuracy"].min()), float(front["accuracy"].max())],
                          "fastest_at_alpha075_accuracy_ms": float(fast["latency_ms"].min()) if len(fast) else None,
                          "front_archs": front["arch"].tolist()[:12], "seconds": time.perf_counter() - t0}
            print(f"{device} {name}: HV {rows[name]['hypervolume_common_box']:.3f}, front "
                  f"{rows[name]['front_latency_ms'][0]:.4g}-{rows[name]['front_latency_ms'][1]:.4g} ms, "
                  f"≥ α0.75 acc at {rows[name]['fastest_at_alpha075_accuracy_ms']}", file=sys.stderr, flush=True)
        out["devices"][device] = {"box": box.to_dict(), "alpha075_accuracy": ref_acc, "variants": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
