"""How well does each shipped device profile's roofline predict latencies it has not seen?

For every shipped profile with published calibration points, each point is predicted by the
roofline refitted (same priors) on the other points: leave-one-out (LOO). The table gives the
number of points, the median and maximum |LOO error| in percent, the in-sample fit's largest
|residual|, and the confidence (``low`` under ``LOW_CONFIDENCE_MIN_POINTS`` points or ``LOW_CONFIDENCE_MIN_MODELS``
distinct models). ``--loss
soft_l1`` refits with the robust loss instead of plain least squares. Measured profiles
(``host``) are listed without errors: their latency comes from this machine's own timings.

Run from the repository root (seconds)::

    .venv/bin/python benchmarks/device_fleet.py
    .venv/bin/python benchmarks/device_fleet.py --loss soft_l1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import save  # noqa: E402

from hw_profiles import list_profiles, load_profile  # noqa: E402
from predictors.profile_quality import (  # noqa: E402
    LOW_CONFIDENCE_MIN_MODELS,
    LOW_CONFIDENCE_MIN_POINTS,
    profile_quality,
)
from predictors.roofline import FIT_LOSSES  # noqa: E402


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def run(loss: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows = []
    for name in list_profiles():
        profile = load_profile(name)
        q = profile_quality(profile, loss=loss)
        rows.append({**q.to_dict(), "kind": profile.kind, "runtime": profile.runtime,
                     "models": sorted({p.model for p in profile.calibration})})
    header = f"{'device':<24} {'kind':<4} {'n':>2} {'LOO med %':>9} {'LOO max %':>9} {'fit max %':>9}  confidence"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['device']:<24} {r['kind']:<4} {r['n_points']:>2} {_fmt(r['loo_median_abs_pct']):>9} "
              f"{_fmt(r['loo_max_abs_pct']):>9} {_fmt(r['fit_max_abs_pct']):>9}  {r['confidence']}")
    return {"loss": loss, "low_confidence_min_points": LOW_CONFIDENCE_MIN_POINTS,
            "low_confidence_min_models": LOW_CONFIDENCE_MIN_MODELS,
            "seconds": round(time.perf_counter() - t0, 2), "profiles": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=FIT_LOSSES, default="linear", help="roofline fit loss (default: linear)")
    parser.add_argument("--name", default="device_fleet", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    result = run(args.loss)
    save(args.name, result, " ".join(["benchmarks/device_fleet.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
