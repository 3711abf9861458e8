"""Switchable BN against BN recalibration on the same subnets.

    python benchmarks/bn_modes.py                      # the shipped CIFAR-10 supernet
    python benchmarks/bn_modes.py --supernet runs/tiny --dataset digits --n 20

For each of N seeded random subnets (plus the four uniform ones) it measures validation and
test accuracy with (a) the switchable BN statistics kept during training and (b) statistics
recalibrated exactly on shuffled training batches, and reports mean accuracy and rank
agreement of each mode with the test accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from common import save
from scipy.stats import kendalltau

from supernet.evaluate import subnet_accuracy
from supernet.pretrained import load_default_data, resolve_supernet


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", default=None, help="supernet file or run folder (default: shipped)")
    p.add_argument("--dataset", default=None, help="dataset spec (default: the supernet's own)")
    p.add_argument("--n", type=int, default=30, help="random subnets besides the uniform ones")
    p.add_argument("--recal-batches", type=int, default=10, help="training batches of 128 for recalibration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, meta, path = resolve_supernet(a.supernet)
    data, note = load_default_data(meta, a.dataset, path)
    space = model.space
    rng = np.random.default_rng(a.seed)
    uniform = [space.uniform(i) for i in range(len(space.width_choices))]
    subnets = space.sample_unique(rng, a.n + len(uniform), uniform)
    rows, t0 = [], time.perf_counter()
    for s in subnets:
        row = {"arch": space.format(s)}
        for bn in ("switchable", "recal"):
            for split in ("val", "test"):
                row[f"{bn}_{split}"] = subnet_accuracy(model, s, data, split=split, bn=bn, n_batches=a.recal_batches,
                                                       seed=a.seed)
        rows.append(row)
        print(row, file=sys.stderr)
    res = {"supernet": str(path), "dataset": note, "n_subnets": len(rows), "recal_batches": a.recal_batches,
           "seconds": round(time.perf_counter() - t0, 1), "subnets": rows}
    for bn in ("switchable", "recal"):
        test = np.array([r[f"{bn}_test"] for r in rows])
        val = np.array([r[f"{bn}_val"] for r in rows])
        res[bn] = {"mean_test_acc": round(float(test.mean()), 4), "mean_val_acc": round(float(val.mean()), 4),
                   "uniform_test_acc": [round(float(x), 4) for x in test[: len(space.width_choices)]],
                   "kendall_tau_val_vs_test": round(float(kendalltau(val, test).statistic), 4)}
    gain = np.array([r["recal_test"] - r["switchable_test"] for r in rows])
    res["recal_minus_switchable_test_pp"] = {"mean": round(float(gain.mean() * 100), 2),
                                             "min": round(float(gain.min() * 100), 2),
                                             "max": round(float(gain.max() * 100), 2)}
    save("bn_modes", res, "python benchmarks/bn_modes.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
