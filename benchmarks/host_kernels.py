"""Where does the host roofline go wrong? Per op class, in-context kernel time against the prediction.

Each reference model is run in onnxruntime (CPU, all graph optimisations, ``--threads``) with its profiler
on; the profiler's per-node kernel times are summed per op class of the latency model (conv, dwconv, gemm,
attention, norm, elementwise, pool, data) and set beside the same model's kernels
(:func:`predictors.reference_graphs.reference_kernels`, fused as onnxruntime's CPU provider fuses) costed
at a measured profile's ``op_rates`` with no fit. A class whose ratio is far from 1 in every model is a
rate the micro-benchmarks measure wrongly; a ratio that differs between models is a shape effect the
per-class rate cannot express. The gap between the node sum and the run's wall time is the executor's own
cost (``between_nodes_ms``).

Run from the repository root after ``benchmarks/host_profile.py`` (about 1 minute; CPU-heavy, run nothing else)::

    .venv/bin/python benchmarks/host_kernels.py --profile benchmarks/results/host_profile_t2.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from common import save  # noqa: E402

from hw_profiles import REFERENCE_MODELS, load_profile  # noqa: E402
from hw_profiles.benches import randomize_weights  # noqa: E402
from hw_profiles.measure import reference_order  # noqa: E402
from hw_profiles.timing import share_thread_pool  # noqa: E402
from predictors.onnx_graph import runtime_fusion  # noqa: E402
from predictors.onnx_io import session_options  # noqa: E402
from predictors.reference_graphs import reference_graph, reference_kernels  # noqa: E402
from predictors.roofline import FUSED_OPS, OP_RATE_CLASS, kernel_rates  # noqa: E402

CLASSES = ("conv", "dwconv", "gemm", "attention", "norm", "elementwise", "pool", "data")
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Gelu", "BiasGelu",
               "FastGelu", "Erf", "Tanh", "Exp", "Sqrt", "Pow", "Neg", "LeakyRelu", "Cast", "Where"}
NORMS = {"LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization", "BatchNormalization"}
POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "NchwcMaxPool", "NchwcAveragePool",
         "NchwcGlobalAveragePool", "NchwcGlobalMaxPool", "ReduceMean"}


def _shapes(args: dict[str, Any], key: str) -> list[list[int]]:
    return [next(iter(d.values())) for d in args.get(key, [])]


def ort_class(op: str, args: dict[str, Any]) -> str:
    """The latency model's op class of one executed onnxruntime node (after its graph optimisations)."""
    if op in {"Conv", "FusedConv", "NchwcConv", "ConvTranspose"}:
        ins = _shapes(args, "input_type_shape")
        if len(ins) >= 2 and len(ins[1]) == 4 and ins[1][1] == 1 and len(ins[0]) == 4 and ins[0][1] > 1:
            return "dwconv"
        return "conv"
    if op in {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "MatMulNBits"}:
        # a weight MatMul reads an initializer (parameter_size > 0); attention's QK^T and PV read two activations
        return "gemm" if int(args.get("parameter_size", "0") or 0) > 0 else "attention"
    if op == "Softmax":
        return "attention"
    if op in NORMS:
        return "norm"
    if op in POOLS:
        return "pool"
    if op in ELEMENTWISE:
        return "elementwise"
    return "data"


def measure_model(name: str, threads: int, runs: int, seed: int) -> dict[str, Any]:
    """Node time per op class (ms per run, from onnxruntime's profiler) and the plain wall time."""
    model = randomize_weights(reference_graph(name, batch=1, weights="shape-only"), seed)
    data = model.SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        plain = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        feeds = {i.name: rng.standard_normal([int(d) for d in i.shape]).astype(np.float32) for i in plain.get_inputs()}
        for _ in range(3):
            plain.run(None, feeds)
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            plain.run(None, feeds)
            walls.append(time.perf_counter() - t0)
        del plain
        prof = ort.InferenceSession(data, session_options(threads, profile_prefix=str(Path(tmp) / name)),
                                    providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):
            prof.run(None, feeds)
        events = json.loads(Path(prof.end_profiling()).read_text())
    per_run: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    ops: dict[str, float] = defaultdict(float)
    run_index, seen_model_run = -1, 0
    for ev in events:
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            seen_model_run += 1
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        run_index = seen_model_run  # the profiler writes a run's nodes before its model_run event
        args = ev.get("args", {})
        op = args.get("op_name", "?")
        cls = ort_class(op, args)
        per_run[run_index][cls] += ev["dur"] / 1e3
        if run_index >= 3:
            ops[f"{cls}:{op}"] += ev["dur"] / 1e3
    timed = [per_run[r] for r in sorted(per_run) if r >= 3]
    by_class = {c: float(np.median([r.get(c, 0.0) for r in timed])) for c in CLASSES}
    return {"wall_ms": 1e3 * float(np.median(walls)), "node_ms": float(sum(by_class.values())),
            "by_class_ms": by_class, "by_ort_op_ms": {k: v / max(len(timed), 1) for k, v in sorted(ops.items())}}


def predict_model(name: str, profile) -> dict[str, Any]:
    """The same model's kernels at the profile's ``op_rates`` (eta 1, no fit), per op class, with launch counts."""
    ks = reference_kernels(name, REFERENCE_MODELS[name].resolution, 4, batch=1,
                           fusion=runtime_fusion(profile.runtime))
    comp, mem = kernel_rates(profile, ks, profile.default_precision, None)
    comp, mem = np.broadcast_to(comp, (len(ks),)), np.broadcast_to(mem, (len(ks),))
    overhead = profile.kernel_overhead.value * 1e-6
    by_class: dict[str, float] = defaultdict(float)
    launches: dict[str, int] = defaultdict(int)
    for k, c, m in zip(ks, comp, mem, strict=True):
        cls = OP_RATE_CLASS.get(k.op, "elementwise")
        launch = k.op not in FUSED_OPS
        by_class[cls] += 1e3 * (max(k.flops / c, k.bytes / m) + overhead * launch)
        launches[cls] += int(launch)
    return {"predicted_ms": float(sum(by_class.values())), "by_class_ms": {c: by_class.get(c, 0.0) for c in CLASSES},
            "launches": {c: launches.get(c, 0) for c in CLASSES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", type=Path, default=Path("benchmarks/results/host_profile_t2.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--models", default="", help="comma-separated reference models (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    share_thread_pool(args.threads)  # as dynnas profile times: one pool for every session (hw_profiles.timing)
    profile = load_profile(str(args.profile))
    names = [m for m in args.models.split(",") if m] or reference_order()
    rows = []
    for name in names:
        runs = max(3, args.runs // 4) if name == "vit_b16" else args.runs
        meas, pred = measure_model(name, args.threads, runs, args.seed), predict_model(name, profile)
        rows.append({"model": name, **meas, **{f"pred_{k}": v for k, v in pred.items()}})
        print(f"\n{name}: wall {meas['wall_ms']:.2f} ms, node sum {meas['node_ms']:.2f} ms, "
              f"predicted {pred['predicted_ms']:.2f} ms", flush=True)
        print(f"  {'class':<12} {'measured':>9} {'predicted':>9} {'ratio':>6} {'launches':>8}")
        for c in CLASSES:
            m, p = meas["by_class_ms"][c], pred["by_class_ms"][c]
            if m or p:
                ratio = f"{p / m:6.2f}" if m > 0 else "     -"
                print(f"  {c:<12} {m:9.3f} {p:9.3f} {ratio} {pred['launches'][c]:8d}")
    save("host_kernels", {"profile": str(args.profile), "threads": args.threads, "runs": args.runs, "rows": rows},
         " ".join(["benchmarks/host_kernels.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
