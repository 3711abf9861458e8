"""Does a `dynnas profile`-made profile of this machine predict its own reference-model latencies?

Runs the full profile (micro-benchmarks per op class, then every reference model that builds here, timed with
onnxruntime against an interleaved reference graph), writes it to ``benchmarks/results/host_profile_t<N>.yaml``
(N threads) with the JSON beside it, and
compares the measured reference latencies with three predictions of the same kernels
(:func:`predictors.reference_graphs.reference_kernels`, fused as onnxruntime's CPU provider fuses):

* ``loo``: the profile's roofline (eta_c, eta_m, overhead fitted by :func:`predictors.roofline.fit_roofline`)
  refitted without the predicted model: leave-one-out (:func:`predictors.profile_quality.profile_quality`);
* ``micro_roofline``: no fit at all, the micro-benchmark figures alone: ``t = max(flops / peak, bytes /
  bandwidth) + kernel_overhead`` (eta = 1);
* ``micro_per_class``: no fit, each kernel at its op class's best measured rate and tiny-op overhead;
* ``micro_rates``: no fit, each kernel at the profile's measured ``op_rates`` (the median rate of its op class
  and kernel size, :func:`predictors.roofline.kernel_rates`) plus the measured kernel overhead: what the
  profile predicts before its roofline is fitted to any reference model.

Run from the repository root (1-3 minutes on 2 cores; CPU-heavy, run nothing else)::

    .venv/bin/python benchmarks/host_profile.py
    .venv/bin/python benchmarks/host_profile.py --threads 1 --quick     # a smoke run, ~10 s
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from common import RESULTS, save  # noqa: E402

from hw_profiles.benches import COMPUTE_CLASSES  # noqa: E402
from hw_profiles.measure import measure_profile  # noqa: E402
from hw_profiles.measured import MeasuredProfile, ProfileSettings, default_threads  # noqa: E402
from hw_profiles.profile_doc import write_profile  # noqa: E402
from nas.cmd_profile import reference_graph_builder  # noqa: E402
from predictors.kernels import Kernel  # noqa: E402
from predictors.onnx_graph import runtime_fusion  # noqa: E402
from predictors.profile_quality import profile_quality  # noqa: E402
from predictors.reference_graphs import reference_kernels  # noqa: E402
from predictors.roofline import FUSED_OPS, RooflineParams, fit_roofline, kernel_rates, network_seconds  # noqa: E402

# Kernel.op of the predictors -> op class of the micro-benchmarks
OP_CLASS = {"conv": "conv", "dwconv": "dwconv", "linear": "gemm", "matmul": "gemm", "attention": "attention",
            "norm": "norm", "add": "elementwise", "mul": "elementwise", "act": "elementwise",
            "elementwise": "elementwise", "decide": "elementwise", "pool": "pool", "maxpool": "pool", "data": "data",
            "reduce": "data"}


def _per_class_ms(kernels: list[Kernel], result: MeasuredProfile) -> float:
    micro = result.micro
    total = 0.0
    for k in kernels:
        cls = OP_CLASS.get(k.op, "elementwise")
        rate = micro.best.get(cls, {}).get("rate")
        if cls in COMPUTE_CLASSES:
            t = max(k.flops / (rate or micro.peak_flops), k.bytes / micro.bandwidth)
        else:
            t = k.bytes / (rate or micro.bandwidth)
        launches = 0 if k.op in FUSED_OPS else 1
        total += t + launches * micro.overhead_us.get(cls, micro.kernel_overhead_us) * 1e-6
    return 1e3 * total


def _summary(errors: list[float]) -> dict[str, Any]:
    e = np.abs(errors)
    return {"n": int(len(e)), "median_abs_pct": float(np.median(e)), "max_abs_pct": float(e.max()),
            "within_10pct": int((e <= 10).sum()), "within_25pct": int((e <= 25).sum())}


def result_name(threads: int, quick: bool) -> str:
    """``host_profile_t<threads>[_quick]``: runs at different thread counts are kept side by side."""
    return f"host_profile_t{threads}" + ("_quick" if quick else "")


def run(threads: int, quick: bool, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    settings = ProfileSettings(name="host-measured", threads=threads, quick=quick, seed=seed)

    def progress(stage: str, done: int, total: int) -> None:
        if done == total:
            print(f"{stage}: {total} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    result = measure_profile(settings, reference_graph_builder(), progress=progress)
    yaml_path = RESULTS / f"{result_name(threads, quick)}.yaml"
    profile = write_profile(yaml_path, result)
    q = profile_quality(profile)
    params, fit_rows = fit_roofline(profile)
    micro = result.micro
    bare = RooflineParams(1.0, 1.0, micro.kernel_overhead_us * 1e-6)
    rows = []
    for pt, loo in zip(profile.calibration, q.points, strict=True):
        ks = reference_kernels(pt.model, pt.resolution, 4, batch=1, fusion=runtime_fusion(profile.runtime))
        measured = pt.latency_ms.value
        roof = 1e3 * network_seconds(ks, micro.peak_flops, micro.bandwidth, bare)
        per_class = _per_class_ms(ks, result)
        rates = 1e3 * network_seconds(ks, *kernel_rates(profile, ks, "fp32", None), bare)
        rows.append({"model": pt.model, "resolution": pt.resolution, "measured_ms": measured, "kernels": len(ks),
                     "gflop": sum(k.flops for k in ks) / 1e9,
                     "loo_ms": loo["loo_predicted_ms"], "loo_error_pct": loo["loo_error_pct"],
                     "fit_ms": loo["fit_predicted_ms"], "fit_error_pct": loo["fit_error_pct"],
                     "micro_roofline_ms": roof, "micro_roofline_error_pct": 100 * (roof / measured - 1),
                     "micro_per_class_ms": per_class, "micro_per_class_error_pct": 100 * (per_class / measured - 1),
                     "micro_rates_ms": rates, "micro_rates_error_pct": 100 * (rates / measured - 1)})
    print(f"\n{'model':<20} {'measured':>9} {'LOO':>9} {'err %':>7} {'micro':>9} {'err %':>7} {'per-class':>9} "
          f"{'err %':>7} {'op rates':>9} {'err %':>7}")
    for r in rows:
        print(f"{r['model']:<20} {r['measured_ms']:>9.3f} {r['loo_ms']:>9.3f} {r['loo_error_pct']:>7.1f} "
              f"{r['micro_roofline_ms']:>9.3f} {r['micro_roofline_error_pct']:>7.1f} {r['micro_per_class_ms']:>9.3f} "
              f"{r['micro_per_class_error_pct']:>7.1f} {r['micro_rates_ms']:>9.3f} {r['micro_rates_error_pct']:>7.1f}")
    summary = {name: _summary([r[f"{name}_error_pct"] for r in rows])
               for name in ("loo", "fit", "micro_roofline", "micro_per_class", "micro_rates")}
    for name, s in summary.items():
        print(f"{name:<16} median |err| {s['median_abs_pct']:5.1f} %, max {s['max_abs_pct']:5.1f} %, "
              f"within 10 %: {s['within_10pct']}/{s['n']}, within 25 %: {s['within_25pct']}/{s['n']}")
    return {
        "settings": {"threads": threads, "quick": quick, "seed": seed, "provider": settings.provider},
        "machine": {k: v for k, v in result.machine.items() if k != "memory_bytes"},
        "profile_yaml": str(yaml_path.relative_to(RESULTS.parent.parent)),
        "profile_seconds": round(result.seconds, 1),
        "reference_graph_ms": result.reference_ms,
        "machine_speed_spread": result.spread,
        "micro": {"peak_flops": micro.peak_flops, "peak_class": micro.peak_class,
                  "bandwidth_bytes_per_s": micro.bandwidth, "bandwidth_sizes": micro.bandwidth_sizes,
                  "kernel_overhead_us": micro.kernel_overhead_us, "session_us": micro.session_us,
                  "overhead_us_per_class": micro.overhead_us, "best_per_class": micro.best,
                  "benches": micro.rows},
        "skipped_models": result.skipped,
        "fitted_roofline": {"eta_c": params.eta_c, "eta_m": params.eta_m, "overhead_us": params.overhead_s * 1e6,
                            "rows": fit_rows},
        "confidence": q.confidence,
        "rows": rows,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = run(args.threads, args.quick, args.seed)
    save(result_name(args.threads, args.quick), result, " ".join(["benchmarks/host_profile.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
