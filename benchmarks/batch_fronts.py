"""How the accuracy-latency front changes with the batch size, per published device.

On a launch-bound device (a Jetson's GPU at these tiny CIFAR subnets) a kernel costs its launch
overhead whatever its size, so at batch 1 the widths barely change latency and the front favours
wide subnets; at a large batch the work term takes over and narrow layers pay. On a compute-bound
CPU the per-image latency hardly depends on the batch. This script shows it through the code path
of ``dynnas search --batch B --exits off`` (:func:`nas.problem.setup_problem`): the same random
static subnets of the shipped supernet are costed at each batch size; per batch it reports the
Pareto front in per-image latency, how many of the batch-1 front's subnets stay Pareto-optimal,
and the fastest subnet at or above the accuracy of the uniform alpha=0.75 subnet. A figure of the
fronts (per-image latency relative to the batch-1 fastest subnet) goes beside the JSON.

    .venv/bin/python benchmarks/batch_fronts.py --devices jetson-orin,raspberry-pi-5,xeon-8481c --batches 1,8,32,128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import RESULTS, save  # noqa: E402

from hw_profiles import load_profile  # noqa: E402
from nas.pareto import non_dominated  # noqa: E402
from nas.problem import setup_problem  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.pretrained import DEFAULT_SUPERNET  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    ap.add_argument("--devices", default="jetson-orin,raspberry-pi-5,xeon-8481c")
    ap.add_argument("--batches", default="1,8,32,128")
    ap.add_argument("--samples", type=int, default=20000, help="random static subnets costed at every batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="batch_fronts")
    a = ap.parse_args()
    t0 = time.perf_counter()
    model, meta = load_supernet(a.supernet)
    batches = [int(b) for b in a.batches.split(",")]
    rng = np.random.default_rng(a.seed)
    shared = None
    devices: dict[str, dict] = {}
    fig, axes = plt.subplots(1, len(a.devices.split(",")), figsize=(5 * len(a.devices.split(",")), 4), squeeze=False)
    for ax, device in zip(axes[0], a.devices.split(","), strict=True):
        profile = load_profile(device)
        rows: dict[str, dict] = {}
        subnets = None
        ref_front: set[int] = set()
        base = None
        for b in batches:
            setup = setup_problem(a.supernet, model, meta, profile, bn="recal", seed=a.seed, exits=False, batch=b,
                                  shared=shared)
            shared, problem = setup.shared, setup.problem
            if subnets is None:
                subnets = problem.space.sample_unique(rng, a.samples,
                                                      [problem.space.uniform(i) for i in range(len(problem.space.width_choices))])
            ev = problem.evaluate(subnets)
            per_image = ev.latency_ms / b
            front = non_dominated(np.column_stack([-ev.accuracy, per_image]))
            idx = set(int(i) for i in front)
            if b == batches[0]:
                ref_front, base = idx, float(per_image.min())
            levels = len(problem.space.width_choices)
            target = float(ev.accuracy[levels - 2])  # uniform alpha = 0.75 (the 4 uniform subnets come first)
            ok = np.flatnonzero(ev.accuracy >= target)
            fastest = int(ok[np.argmin(per_image[ok])])
            order = np.argsort(per_image[front])
            mean_width = [float(np.mean([problem.space.width_choices[w] for w in subnets[i].widths])) for i in front]
            rows[str(b)] = {
                "front_size": len(front),
                "kept_from_batch1_front": len(idx & ref_front) / max(1, len(ref_front)),
                "per_image_ms_fastest": float(per_image.min()),
                "per_image_ms_largest": float(per_image[levels - 1]),
                "largest_over_smallest": float(per_image[levels - 1] / per_image[0]),
                "fastest_at_uniform075_accuracy": {"arch": problem.space.format(subnets[fastest]),
                                                  "per_image_ms": float(per_image[fastest]),
                                                  "vs_uniform075": float(per_image[fastest] / per_image[levels - 2])},
                "front_mean_width": float(np.mean(mean_width)),
            }
            ax.plot(per_image[front][order] / base, ev.accuracy[front][order] * 100, drawstyle="steps-post",
                    label=f"batch {b}")
        devices[device] = {"precision": profile.default_precision, "batches": rows}
        ax.set_xscale("log")
        ax.set_title(f"{device} ({profile.default_precision})")
        ax.set_xlabel("per-image latency / fastest at batch 1")
        ax.set_ylabel("predicted accuracy (%)")
        ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{a.name}.png"
    fig.savefig(png.with_suffix(".tmp.png"), dpi=90)
    png.with_suffix(".tmp.png").replace(png)
    save(a.name, {"supernet": str(a.supernet), "samples": a.samples, "seed": a.seed, "batches": batches,
                  "devices": devices, "figure": str(png.relative_to(RESULTS.parent.parent)),
                  "seconds": time.perf_counter() - t0}, " ".join(sys.argv))


if __name__ == "__main__":
    main()
