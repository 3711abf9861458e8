"""Uniform subnets taken from a supernet against the same architectures trained alone.

    python benchmarks/supernet_vs_scratch.py                       # reduced CIFAR-10 budget
    python benchmarks/supernet_vs_scratch.py --dataset digits --preset tiny --train-limit 0
    python benchmarks/supernet_vs_scratch.py --family vit --preset cifar-vit --optimizer adamw --lr 1e-3 \\
        --weight-decay 0.05 --warmup-epochs 1 --widths 0.5,1.0 --seeds 0 --stage-epochs 4,2,2,2 \\
        --stem-ablation cifar-vit-patch4 --name supernet_vs_scratch_vit

For a ViT, the standalone net at uniform level i has that level's MLP width *and* head count
(head choices restricted to it). ``--stem-ablation PRESET`` also trains the largest architecture of
PRESET (e.g. the same ViT without its conv stem) alone with the same recipe and epochs, and times
both largest nets in onnxruntime (1 thread, batch 1): whether the stem pays at this budget.

Both sides get the same data (a seeded subset of CIFAR-10 train), the same total epochs and
the same recipe; the supernet spreads its epochs over the progressive-shrinking stages, each
standalone net trains one width for all of them. Accuracy is on the test set with BN
recalibrated on training batches for both sides. Target (OFA, BigNAS): supernet >= standalone
- 0.5 pp at every width.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import save

from supernet.cost import count_macs
from supernet.data import load_dataset
from supernet.evaluate import subnet_accuracy
from supernet.registry import get_family, get_preset
from supernet.train import TrainConfig, Trainer


def standalone(base: TrainConfig, level: int) -> TrainConfig:
    """The config that trains uniform level ``level`` of ``base`` alone: one width (and, for a ViT, one head count)."""
    arch = base.arch()
    if not getattr(arch, "head_choices", None):
        return base.model_copy(update={"width_choices": (arch.width_choices[level],)})
    name = f"{base.preset}@level{level}"
    presets = get_family(base.family).presets
    presets[name] = dataclasses.replace(arch, width_choices=(arch.width_choices[level],),
                                        head_choices=(arch.head_choices[level],))
    return base.model_copy(update={"preset": name})


def host_ms(model: torch.nn.Module, subnet: object, threads: int) -> float:
    """Median onnxruntime latency (ms, batch 1) of ``subnet`` extracted and exported."""
    from predictors.onnx_io import onnx_bytes
    from predictors.onnx_io import session as ort_session
    from supernet.registry import extract

    c = model.config
    x = torch.zeros(1, c.in_channels, c.resolution, c.resolution)
    sess = ort_session(onnx_bytes(extract(model, subnet), x), threads=threads)
    feed = {sess.get_inputs()[0].name: x.numpy()}
    for _ in range(20):
        sess.run(None, feed)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


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
    p.add_argument("--family", default="cnn")
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--stem-ablation", default=None, help="a preset trained alone (largest) next to --preset's")
    p.add_argument("--name", default="supernet_vs_scratch", help="results file benchmarks/results/<name>.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    stages = tuple(int(x) for x in a.stage_epochs.split(","))
    widths = [float(x) for x in a.widths.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    base = TrainConfig(family=a.family, preset=a.preset, dataset=a.dataset, stage_epochs=stages, n_random=a.n_random,
                       optimizer=a.optimizer, lr=a.lr, weight_decay=a.weight_decay, warmup_epochs=a.warmup_epochs)
    data = load_dataset(a.dataset, resolution=base.arch().resolution, train_limit=a.train_limit or None)
    choices = base.arch().width_choices
    supernet_acc: dict[float, list[float]] = {w: [] for w in widths}
    scratch_acc: dict[float, list[float]] = {w: [] for w in widths}
    seconds = {"supernet": 0.0, "standalone": 0.0}
    stem_acc: dict[str, list[float]] = {}
    stem_ms: dict[str, float] = {}
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
                cfg = standalone(base, choices.index(w)).model_copy(update={"seed": seed, "stage_epochs": (sum(stages),)})
                alone = Trainer(cfg, Path(tmp) / f"alone{seed}-{w}", data=data)
                alone.run()
                seconds["standalone"] += time.perf_counter() - t
                acc = subnet_accuracy(alone.model, alone.space.largest(), data, split="test", bn="recal")
                scratch_acc[w].append(acc)
                print(f"standalone seed {seed} width {w}: {acc:.4f}", file=sys.stderr)
            if a.stem_ablation:
                for j, preset in enumerate((a.preset, a.stem_ablation)):
                    t = time.perf_counter()
                    cfg = standalone(base.model_copy(update={"preset": preset}), len(choices) - 1)
                    alone = Trainer(cfg.model_copy(update={"seed": seed, "stage_epochs": (sum(stages),)}),
                                    Path(tmp) / f"stem{seed}-{j}", data=data)
                    alone.run()
                    acc = subnet_accuracy(alone.model, alone.space.largest(), data, split="test", bn="recal")
                    stem_acc.setdefault(preset, []).append(acc)
                    stem_ms[preset] = host_ms(alone.model, alone.space.largest(), 1)
                    print(f"stem ablation {preset} seed {seed}: {acc:.4f} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    rows = {}
    for w in widths:
        s, c = np.array(supernet_acc[w]) * 100, np.array(scratch_acc[w]) * 100
        rows[str(w)] = {"supernet_mean": round(float(s.mean()), 2), "supernet_std": round(float(s.std(ddof=1)) if len(s) > 1 else 0.0, 2),
                        "standalone_mean": round(float(c.mean()), 2), "standalone_std": round(float(c.std(ddof=1)) if len(c) > 1 else 0.0, 2),
                        "gap_pp": round(float(s.mean() - c.mean()), 2), "meets_target": bool(s.mean() >= c.mean() - 0.5)}
    res = {"dataset": a.dataset, "train_images": int(len(data.y_train)), "stage_epochs": list(stages),
           "standalone_epochs": sum(stages), "seeds": seeds, "bn": "recal", "accuracy_pct": rows,
           "all_meet_target": all(r["meets_target"] for r in rows.values()),
           "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
           "family": a.family, "preset": a.preset, "optimizer": a.optimizer, "lr": a.lr}
    if a.stem_ablation:
        res["stem_ablation"] = {p: {"test_acc_mean_pct": round(100 * float(np.mean(v)), 2),
                                    "macs": int(count_macs(get_preset(a.family, p), get_preset(a.family, p).space().largest())),
                                    "host_ms_1thread_b1": stem_ms[p]} for p, v in stem_acc.items()}
    save(a.name, res, "python benchmarks/supernet_vs_scratch.py " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
