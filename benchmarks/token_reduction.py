"""Token reduction on host: throughput gain of top-k pruning and ToMe merging at <= 1 pp accuracy loss.

For a few subnets of a ViT supernet (the largest and a uniform middle one), every uniform keep-ratio
schedule of both methods is extracted, exported to ONNX (static token counts) and timed in onnxruntime
at 1 thread, batch 1 and batch 32; accuracy is measured on the CIFAR-10 test set in PyTorch (the
exported graph agrees to 1e-4, see the tests). The gain is throughput relative to the same subnet
without reduction. ``--posthoc SUPERNET`` applies the same schedules to a supernet trained without a
token stage: the difference in accuracy loss is what training with schedules buys.

    python benchmarks/token_reduction.py --posthoc runs/cifar-vit-ps/supernet.safetensors \\
        --dataset cifar10:../shared/datasets/cifar10
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from common import save  # noqa: E402

from predictors.onnx_io import onnx_bytes, session  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.cost import count_macs  # noqa: E402
from supernet.data import load_dataset  # noqa: E402
from supernet.evaluate import accuracy  # noqa: E402
from supernet.registry import extract  # noqa: E402


def uniform_schedules(space: Any, base: Any) -> dict[str, Any]:
    """``base`` with each uniform keep ratio (all but keep-everything) of each token method, by ``method@ratio``."""
    out = {}
    for (m, method), k in itertools.product(enumerate(space.token_methods), range(len(space.token_choices) - 1)):
        out[f"{method}@{space.token_choices[k]:g}"] = dataclasses.replace(
            base, tokens=(k,) * space.n_token_positions, method=m)
    return out


def images_per_s(sessions: dict[str, ort.InferenceSession], shape: tuple[int, ...], *, rounds: int,
                 seconds: float, seed: int) -> dict[str, float]:
    """Median images/s of each session, timed in interleaved rounds (a shared CPU drifts)."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    for s in sessions.values():
        for _ in range(3):
            s.run(None, {"image": x})
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                s.run(None, {"image": x})
                n += 1
            times[k].append(n * shape[0] / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in times.items()}


def evaluate(supernet: torch.nn.Module, subnets: dict[str, Any], data: Any, n_test: int) -> dict[str, float]:
    x, y = data.x_test[:n_test], data.y_test[:n_test]
    return {k: accuracy(extract(supernet, s), x, y) for k, s in subnets.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", type=Path, default=Path("supernet/pretrained/cifar10-vit.safetensors"))
    ap.add_argument("--posthoc", type=Path, default=None, help="the same family trained without a token stage")
    ap.add_argument("--dataset", default="cifar10:../shared/datasets/cifar10")
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the timing")
    ap.add_argument("--eval-threads", type=int, default=2, help="PyTorch threads for the accuracy pass")
    ap.add_argument("--seconds", type=float, default=6.0, help="timing per model and batch size")
    ap.add_argument("--max-loss-pp", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="token_reduction", help="results file benchmarks/results/<name>.json")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, a.eval_threads))
    supernet, meta = load_supernet(a.supernet)
    config, space = supernet.config, supernet.space
    data = load_dataset(a.dataset, resolution=config.resolution)
    levels = len(space.width_choices)
    bases = {"largest": space.largest(), "middle": space.uniform(levels // 2)}
    n_pos, n_keep = space.n_token_positions, len(space.token_choices)
    variants: dict[str, Any] = {}
    for bname, base in bases.items():
        variants[f"{bname}/none"] = base
        variants.update({f"{bname}/{k}": v for k, v in uniform_schedules(space, base).items()})
    # schedules that reduce more deeply than early: keep 1.0 early, then the strongest (non-increasing)
    for bname, base in bases.items():
        for m, method in enumerate(space.token_methods):
            half = n_pos // 2
            tokens = (n_keep - 2,) * half + (0,) * (n_pos - half)
            variants[f"{bname}/{method}@mixed"] = dataclasses.replace(base, tokens=tokens, method=m)
    t0 = time.perf_counter()
    acc = evaluate(supernet, variants, data, a.n_test)
    posthoc = None
    if a.posthoc is not None:
        other, _ = load_supernet(a.posthoc)
        posthoc = evaluate(other, variants, data, a.n_test)
    example = torch.zeros(1, config.in_channels, config.resolution, config.resolution)
    models = {k: onnx_bytes(extract(supernet, s), example) for k, s in variants.items()}
    rows = {k: {"arch": space.format(s), "macs": count_macs(config, s), "test_acc": acc[k],
                "tokens_per_block": config.tokens_per_block(s)} for k, s in variants.items()}
    if posthoc is not None:
        for k in rows:
            rows[k]["posthoc_test_acc"] = posthoc[k]
    batches = [int(b) for b in a.batches.split(",")]
    for b in batches:
        for bname in bases:
            keys = [k for k in variants if k.startswith(f"{bname}/")]
            ips = images_per_s({k: session(models[k], threads=a.threads) for k in keys},
                               (b, config.in_channels, config.resolution, config.resolution),
                               rounds=5, seconds=a.seconds * len(keys), seed=a.seed)
            for k in keys:
                rows[k][f"images_per_s_b{b}"] = ips[k]
                rows[k][f"gain_b{b}"] = ips[k] / ips[f"{bname}/none"]
    summary: dict[str, Any] = {}
    for bname in bases:
        ref = rows[f"{bname}/none"]
        for method in space.token_methods:
            keys = [k for k in rows if k.startswith(f"{bname}/{method}@")]
            for b in batches:
                ok = [k for k in keys if 100 * (ref["test_acc"] - rows[k]["test_acc"]) <= a.max_loss_pp]
                best = max(ok, key=lambda k: rows[k][f"gain_b{b}"], default=None)
                summary[f"{bname}/{method}/b{b}"] = None if best is None else {
                    "schedule": best, "gain": rows[best][f"gain_b{b}"],
                    "loss_pp": 100 * (ref["test_acc"] - rows[best]["test_acc"]),
                    "mac_ratio": ref["macs"] / rows[best]["macs"]}
        if posthoc is not None:
            ref_p = rows[f"{bname}/none"]["posthoc_test_acc"]
            summary[f"{bname}/posthoc_vs_trained_loss_pp"] = {
                k: {"trained": 100 * (ref["test_acc"] - rows[k]["test_acc"]),
                    "posthoc": 100 * (ref_p - rows[k]["posthoc_test_acc"])}
                for k in rows if k.startswith(f"{bname}/") and not k.endswith("/none")}
    result = {"supernet": str(a.supernet), "supernet_family": meta.get("family"), "posthoc": str(a.posthoc),
              "dataset": a.dataset, "n_test": int(min(a.n_test, len(data.y_test))), "threads": a.threads,
              "max_loss_pp": a.max_loss_pp, "rows": rows, "summary": summary,
              "seconds": time.perf_counter() - t0}
    save(a.name, result, " ".join(sys.argv))


if __name__ == "__main__":
    main()
