"""Uniform subnets taken from a supernet against the same architectures trained alone.

    python benchmarks/supernet_vs_scratch.py                       # reduced CIFAR-10 budget
    python benchmarks/supernet_vs_scratch.py --dataset digits --preset tiny --train-limit 0

Both sides get the same data (a seeded subset of CIFAR-10 train), the same total epochs and
the same recipe; the supernet spreads its epochs over the progressive-shrinking stages, each
standalone net trains one width for all of them. Accuracy is on the test set with BN
recalibrated on training batches for both sides. Target (OFA, BigNAS): supernet >= standalone
- 0.5 pp at every width.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import save

from supernet.data import load_dataset
from supernet.evaluate import subnet_accuracy
from supernet.train import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cifar10:../shared/datasets/cifar10")
    p.add_argument("--preset", default="cifar-default")
    p.add_argument("--train-limit", type=int, default=10000, help="training images (0: all)")
    p.add_argument("--stage-epochs", default="2,1,1,1", help="supernet stages; standalone nets get the sum")
    p.add_argument("--widths", default="0.25,0.5,1.0", help="uniform widths to compare")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--n-random", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    stages = tuple(int(x) for x in a.stage_epochs.split(","))
    widths = [float(x) for x in a.widths.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    base = TrainConfig(preset=a.preset, dataset=a.dataset, stage_epochs=stages, n_random=a.n_random)
    data = load_dataset(a.dataset, resolution=base.arch().resolution, train_limit=a.train_limit or None)
    choices = base.arch().width_choices
    supernet_acc: dict[float, list[float]] = {w: [] for w in widths}
    scratch_acc: dict[float, list[float]] = {w: [] for w in widths}
    seconds = {"supernet": 0.0, "standalone": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            t = time.perf_counter()
            tr = Trainer(base.model_copy(update={"seed": seed}), Path(tmp) / f"super{seed}", data=data)
            tr.run()
            seconds["supernet"] += time.perf_counter() - t
            for w in widths:
                acc = subnet_accuracy(tr.model, tr.space.uniform(choices.index(w)), data, split="test", bn="recal")
                supernet_acc[w].append(acc)
                print(f"supernet seed {seed} width {w}: {acc:.4f}", file=sys.stderr)
            for w in widths:
                t = time.perf_counter()
                cfg = base.model_copy(update={"seed": seed, "width_choices": (w,), "stage_epochs": (sum(stages),)})
                alone = Trainer(cfg, Path(tmp) / f"alone{seed}-{w}", data=data)
                alone.run()
                seconds["standalone"] += time.perf_counter() - t
                acc = subnet_accuracy(alone.model, alone.space.largest(), data, split="test", bn="recal")
                scratch_acc[w].append(acc)
                print(f"standalone seed {seed} width {w}: {acc:.4f}", file=sys.stderr)
    rows = {}
    for w in widths:
        s, c = np.array(supernet_acc[w]) * 100, np.array(scratch_acc[w]) * 100
        rows[str(w)] = {"supernet_mean": round(float(s.mean()), 2), "supernet_std": round(float(s.std(ddof=1)) if len(s) > 1 else 0.0, 2),
                        "standalone_mean": round(float(c.mean()), 2), "standalone_std": round(float(c.std(ddof=1)) if len(c) > 1 else 0.0, 2),
                        "gap_pp": round(float(s.mean() - c.mean()), 2), "meets_target": bool(s.mean() >= c.mean() - 0.5)}
    res = {"dataset": a.dataset, "train_images": int(len(data.y_train)), "stage_epochs": list(stages),
           "standalone_epochs": sum(stages), "seeds": seeds, "bn": "recal", "accuracy_pct": rows,
           "all_meet_target": all(r["meets_target"] for r in rows.values()),
           "train_seconds": {k: round(v, 1) for k, v in seconds.items()}}
    save("supernet_vs_scratch", res, "python benchmarks/supernet_vs_scratch.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
