"""Wall time per epoch: progressive shrinking (sandwich steps) against the largest net alone.

    python benchmarks/training_cost.py                    # cifar-default preset, 45,000 images/epoch
    python benchmarks/training_cost.py --preset tiny --images 1294

Times real optimiser steps on random CIFAR-shaped batches (the data does not change the
cost) for each stage of the shipped recipe, and extrapolates to an epoch. When the shipped
supernet is present, the epoch times recorded in its training history are reported too.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import save

from supernet.pretrained import DEFAULT_SUPERNET
from supernet.registry import get_family, get_preset


def step_time(model, subnets_fn, x, y, steps: int, warmup: int = 3) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for sub in subnets_fn():
            F.cross_entropy(model(x, sub), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cifar-default")
    p.add_argument("--images", type=int, default=45000, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-random", type=int, default=1, help="random subnets per sandwich step (shipped recipe: 1)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    arch = get_preset("cnn", a.preset)
    model = get_family("cnn").build(arch).to(memory_format=torch.channels_last).train()
    space = model.space
    rng = np.random.default_rng(a.seed)
    x = torch.rand(a.batch_size, arch.in_channels, arch.resolution, arch.resolution).to(memory_format=torch.channels_last)
    y = torch.randint(0, arch.num_classes, (a.batch_size,))
    steps_per_epoch = a.images // a.batch_size
    n = len(space.width_choices)
    stages = {"largest_alone": step_time(model, lambda: [space.largest()], x, y, a.steps)}
    for stage in range(1, n):
        widths = tuple(range(n - 1 - stage, n))
        stages[f"stage{stage + 1}_sandwich"] = step_time(
            model, lambda w=widths: [space.largest(), space.uniform(w[0])] + [space.sample(rng, w) for _ in range(a.n_random)],
            x, y, a.steps)
    per_epoch = {k: round(v * steps_per_epoch, 1) for k, v in stages.items()}
    res = {"preset": a.preset, "images_per_epoch": a.images, "batch_size": a.batch_size, "n_random": a.n_random,
           "seconds_per_step": {k: round(v, 4) for k, v in stages.items()},
           "seconds_per_epoch": per_epoch,
           "ratio_to_largest_alone": {k: round(v / stages["largest_alone"], 2) for k, v in stages.items()}}
    if DEFAULT_SUPERNET.exists() and a.preset == "cifar-default":
        from supernet.checkpoint import load_supernet

        _, meta = load_supernet(DEFAULT_SUPERNET)
        res["shipped_run_epoch_seconds"] = [{"epoch": h["epoch"], "stage": h["stage"], "seconds": h["seconds"]}
                                            for h in meta["history"]]
    save("training_cost", res, "python benchmarks/training_cost.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
