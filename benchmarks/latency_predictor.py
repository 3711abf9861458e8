"""How well does the latency predictor match reality?

``--device host``: builds (or loads) the host predictor for ``--preset``, then exports ``--n``
held-out seeded random subnets (none of them in the calibration set) with the deployment
exporter, times each with onnxruntime (1 thread, batch 1, median of ``--repeats`` >= 50 runs,
in ``--rounds`` interleaved passes keeping each model's least-disturbed one) and reports the
share predicted within ±10 % and ±5 %, the RMSE and the calibration set size. Target: >= 99 %
within ±10 %.

The calibration subnets are re-timed in the same passes; ``machine_drift`` is the median ratio
of their latency now to their latency when the predictor was built. Far from 1 means the machine
changed speed since (other load, clocks): rebuild the predictor (delete its cache) on a quiet
machine and rerun. The ``*_drift_corrected`` shares rescale predictions by that ratio, as a
diagnostic only.

A published device (``--device jetson-orin``) cannot be measured here: the fit residuals on
its calibration points are reported instead.

Run from the repository root::

    .venv/bin/python benchmarks/latency_predictor.py --device host --preset cifar-default --n 200
    .venv/bin/python benchmarks/latency_predictor.py --device jetson-orin
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hw_profiles import load_profile
from predictors import kendall_tau, latency_predictor, measure_latencies, reference_kernels, rmse, within
from predictors.onnx_io import onnx_bytes
from supernet.checkpoint import write_json
from supernet.cnn import PRESETS, CNNSupernet
from supernet.extract import extract
from supernet.space import SubnetConfig

RESULTS = Path(__file__).resolve().parent / "results"


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {stage}: {done}/{total}", file=sys.stderr, flush=True)


def held_out_subnets(space: Any, n: int, seed: int, exclude: set[str]) -> list[SubnetConfig]:
    """``n`` seeded unique random subnets whose arch strings are not in ``exclude`` (bounded tries)."""
    rng = np.random.default_rng(seed)
    out: dict[str, SubnetConfig] = {}
    for _ in range(100 * n):
        if len(out) >= n:
            break
        s = space.sample(rng)
        arch = space.format(s)
        if arch not in exclude and arch not in out:
            out[arch] = s
    return list(out.values())


def bench_host(args: argparse.Namespace) -> dict[str, Any]:
    config = PRESETS[args.preset]
    space = config.space()
    t0 = time.perf_counter()
    pred = latency_predictor("host", config, cache_dir=args.cache_dir, seed=args.seed, progress=_progress,
                             n_calibration=args.n_calibration)
    build_s = time.perf_counter() - t0
    info = pred.describe()
    calibration = {r["arch"] for r in pred.doc["calibration"]}
    subnets = held_out_subnets(space, args.n, args.seed + 1000, calibration)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        supernet = CNNSupernet(config)
    example = torch.zeros(1, config.in_channels, config.resolution, config.resolution)
    # The calibration subnets are timed again, interleaved with the held-out ones: if this machine
    # is slower or faster now than when the predictor was built (other load, clocks), the ratio
    # shows it, so a drift of the machine is not mistaken for an error of the predictor.
    cal_subnets = [space.parse(a) for a in sorted(calibration)]
    models = {}
    for i, s in enumerate(subnets + cal_subnets):
        key = ("cal:" if i >= len(subnets) else "") + space.format(s)
        models[key] = (onnx_bytes(extract(supernet, s), example), tuple(example.shape))
        _progress("exporting held-out and calibration subnets", i + 1, len(subnets) + len(cal_subnets))
    stats, spread = measure_latencies(models, rounds=args.rounds, repeats=args.repeats, seed=args.seed,
                                      progress=_progress)
    measured = np.array([stats[space.format(s)].median_ms for s in subnets])
    predicted = pred.predict_ms(subnets)
    rel = predicted / measured - 1.0
    worst = np.argsort(-np.abs(rel))[:5]
    cached = {r["arch"]: r["measured_ms"] for r in pred.doc["calibration"]}
    drift = float(np.median([stats[f"cal:{a}"].median_ms / cached[a] for a in sorted(calibration)]))
    return {
        "device": "host",
        "preset": args.preset,
        "n_heldout": len(subnets),
        "within_10pct": within(predicted, measured, 10),
        "within_5pct": within(predicted, measured, 5),
        "rmse_ms": rmse(predicted, measured),
        "rmse_pct": float(100 * np.sqrt(np.mean(rel ** 2))),
        "max_abs_pct": float(100 * np.abs(rel).max()),
        "kendall_tau": kendall_tau(predicted, measured),
        "measured_range_ms": [float(measured.min()), float(measured.max())],
        "n_calibration": info["quality"]["n_calibration"],
        "machine_drift": drift,
        "within_10pct_drift_corrected": within(predicted * drift, measured, 10),
        "within_5pct_drift_corrected": within(predicted * drift, measured, 5),
        "target": "within_10pct >= 0.99",
        "protocol": {"threads": 1, "batch": 1, "repeats": args.repeats, "rounds": args.rounds,
                     "statistic": "median of the least-disturbed round"},
        "noise": {"round_spread": spread},
        "worst": [{"arch": space.format(subnets[i]), "measured_ms": float(measured[i]),
                   "predicted_ms": float(predicted[i]), "error_pct": float(100 * rel[i])} for i in worst],
        "predictor": info,
        "predictor_build_s": build_s,
    }


def bench_published(args: argparse.Namespace) -> dict[str, Any]:
    profile = load_profile(args.device)
    config = PRESETS[args.preset]
    space = config.space()
    pred = latency_predictor(profile, config)
    info = pred.describe()
    bpe = pred.bytes_per_element
    refs = {name: pred.kernels_ms(reference_kernels(name, bytes_per_element=bpe))
            for name in ("resnet50", "resnet18", "mobilenet_v2", "mobilenet_v3_large", "ssd_mobilenet_v1")}
    small, large = pred.predict_ms([space.smallest(), space.largest()])
    return {
        "device": profile.name,
        "preset": args.preset,
        "calibration_residuals": info["calibration"],
        "quality": info["quality"],
        "params": info["params"],
        "precision": info["precision"],
        "power_mode": info["power_mode"],
        f"predicted_ms_{info['precision']}": {"smallest": float(small), "largest": float(large),
                                              "reference_models": refs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", default="host", help="device profile name or YAML path (default: host)")
    parser.add_argument("--preset", default="cifar-default", choices=sorted(PRESETS), help="CNN supernet preset")
    parser.add_argument("--n", type=int, default=200, help="held-out subnets to measure (host)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration and held-out subnets")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing passes per subnet (host)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per pass, >= 50 (host)")
    parser.add_argument("--n-calibration", type=int, default=30, help="calibration subnets when measuring (host)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="latency cache folder (default: user cache)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    if args.repeats < 50:
        parser.error(f"--repeats must be >= 50 for the protocol, but got {args.repeats}")
    torch.set_num_threads(1)
    profile = load_profile(args.device)
    result = bench_host(args) if profile.measured else bench_published(args)
    result["seed"] = args.seed
    out = args.out or RESULTS / f"latency_predictor_{profile.name}_{args.preset}.json"
    write_json(out, result)
    summary = {k: v for k, v in result.items() if k not in ("predictor", "worst", "calibration_residuals")}
    print(json.dumps(summary, indent=2))
    if "calibration_residuals" in result:
        for r in result["calibration_residuals"]:
            print(f"  {r['model']:>18} b{r['batch']} {r['precision']}: measured {r['measured_ms']:.3f} ms, "
                  f"fit {r['predicted_ms']:.3f} ms ({r['residual_pct']:+.1f} %)")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
