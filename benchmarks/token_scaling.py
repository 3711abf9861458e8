"""What the ViT family's shape lets token reduction gain: shapes-only throughput at 64 and 256 tokens.

``token_reduction.py`` measures what the shipped ViT keeps at <= 1 pp; this asks the design question behind
its missed 1.8x target. Random-weight supernets of the shipped preset's shape are built at other token
counts and widths (the shipped one: stride-2 stem, patch 2, 64 tokens + CLS, dim 96; patch 1 gives 256 tokens),
and for each the largest subnet is exported to ONNX without reduction and with every uniform schedule of
both methods (keep 0.7 or 0.5 at each of the four reducing blocks), then timed in onnxruntime at 1 thread,
batch 1 and batch 32, in interleaved rounds. The gain is throughput relative to the same subnet without
reduction; ``mac_ratio`` is what the MAC count alone promises. No accuracy is measured (random weights):
a family that gains more here still has to be trained to say what it keeps.

    python benchmarks/token_scaling.py              # about 14 minutes on 2 cores; CPU-heavy, run nothing else
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from common import save  # noqa: E402
from token_reduction import images_per_s, uniform_schedules  # noqa: E402

from predictors.onnx_io import onnx_bytes, session  # noqa: E402
from supernet.cost import count_macs  # noqa: E402
from supernet.registry import extract  # noqa: E402
from supernet.vit import PRESETS, ViTSupernet  # noqa: E402

SHIPPED = PRESETS["cifar-vit"]
FAMILIES = {
    "64 tokens, dim 96 (shipped)": SHIPPED,
    "256 tokens, dim 96": dataclasses.replace(SHIPPED, patch=1),
    "256 tokens, dim 64": dataclasses.replace(SHIPPED, patch=1, dim=64),
    "64 tokens, dim 192": dataclasses.replace(SHIPPED, dim=192),
}


def variants(supernet: ViTSupernet) -> dict[str, Any]:
    """The largest subnet without reduction, and with each uniform keep ratio of each method."""
    base = supernet.space.largest()
    return {"none": base, **uniform_schedules(supernet.space, base)}


def measure_family(config: Any, *, batches: list[int], seconds: float, threads: int, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    supernet = ViTSupernet(config).eval()
    subnets = variants(supernet)
    example = torch.zeros(1, config.in_channels, config.resolution, config.resolution)
    models = {k: onnx_bytes(extract(supernet, s), example) for k, s in subnets.items()}
    rows: dict[str, dict[str, Any]] = {
        k: {"arch": supernet.space.format(s), "macs": count_macs(config, s),
            "tokens_per_block": config.tokens_per_block(s)} for k, s in subnets.items()}
    for b in batches:
        ips = images_per_s({k: session(m, threads=threads) for k, m in models.items()},
                           (b, config.in_channels, config.resolution, config.resolution),
                           rounds=5, seconds=seconds * len(models), seed=seed)
        for k in rows:
            rows[k][f"images_per_s_b{b}"] = ips[k]
            rows[k][f"gain_b{b}"] = ips[k] / ips["none"]
    for k in rows:
        rows[k]["mac_ratio"] = rows["none"]["macs"] / rows[k]["macs"]
    return {"config": dataclasses.asdict(config), "tokens": config.tokens_per_block(subnets["none"])[0][0],
            "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the timing")
    ap.add_argument("--seconds", type=float, default=4.0, help="timing per model and batch size")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    batches = [int(b) for b in a.batches.split(",")]
    t0 = time.perf_counter()
    families = {}
    for name, config in FAMILIES.items():
        families[name] = fam = measure_family(config, batches=batches, seconds=a.seconds, threads=a.threads,
                                              seed=a.seed)
        print(f"\n{name}: {fam['rows']['none']['macs'] / 1e6:.1f} M MACs largest, "
              f"{fam['rows']['none']['images_per_s_b32']:.0f} img/s at batch 32", flush=True)
        print(f"  {'schedule':<10} {'MAC ratio':>9} " + " ".join(f"{'gain b' + str(b):>9}" for b in batches))
        for k, r in fam["rows"].items():
            print(f"  {k:<10} {r['mac_ratio']:9.2f} " + " ".join(f"{r[f'gain_b{b}']:9.2f}" for b in batches))
    save("token_scaling", {"threads": a.threads, "batches": batches, "seconds_per_model": a.seconds,
                           "families": families, "seconds": time.perf_counter() - t0},
         " ".join(["benchmarks/token_scaling.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
