"""Memory predictor vs onnxruntime's measured arena use on this host, for subnets of the shipped CIFAR supernet.

Every subnet (the smallest, the largest, then seeded random ones; exits off) is exported as deployed
(``predictors.host_latency.subnet_onnx``) and predicted three ways, which must agree exactly: the
vectorised layer-table predictor (``MemoryPredictor``), the layer-by-layer count (``subnet_memory``)
and the ONNX-graph count (``onnx_memory``). Two rule sets: ``portable`` (the default: no blocked
layout, what the search uses for any device) and ``onnxruntime`` (``onnxruntime_cpu_rules()``: this
CPU's NCHWc channel block, 16 with AVX-512F, 8 on other x86-64).

**What is measured.** onnxruntime's CPU session (the timing protocol's settings: 1 thread,
sequential, all optimisations) with ``enable_profiling``: since onnxruntime 1.32 every kernel event
of the profile carries the CPU arena allocator's statistics after that kernel: ``mem_bytes_in_use``
(chunks handed out, with the BFC arena's rounding), ``mem_bytes_requested_in_use`` (bytes the kernels
asked for), ``mem_in_use_peak`` (the allocator's high-water mark, which also catches scratch buffers
freed inside a kernel) and ``mem_arena_held`` (what the arena reserved from the OS). Figures are taken
relative to the bytes in use before the run's first kernel (the session's own small reservations,
the same for every subnet):

* ``requested_run1``: peak of requested bytes in the first run, where each tensor is allocated when
  its kernel runs; onnxruntime's allocation planner keeps a freed buffer for a later tensor of exactly
  the same size (``enable_mem_reuse``, on by default), so this can exceed the live-tensor peak;
* ``requested_no_reuse``: the same with ``enable_mem_reuse = False``: every tensor is allocated and
  freed on its own, the live-tensor peak as onnxruntime executes the graph;
* ``in_use_peak_run1``: the allocator's high-water mark over the first run (BFC rounding, scratch);
* ``steady``: the high-water mark over runs 2-3, when onnxruntime allocates one *memory-pattern* block
  laid out first-fit from the first run, plus the outputs: what every later inference occupies.

The weights onnxruntime holds are not in the arena; ``ort_initializer_bytes`` sums the initializers
of the model onnxruntime optimised (``optimized_model_filepath``: BN folded, NCHWc-reordered, padded
to blocks of 8 channels); its prepacked GEMM copies are not included.

Run from the repository root (about 30 s)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_predictor.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from common import save  # noqa: E402

from predictors.host_latency import subnet_onnx  # noqa: E402
from predictors.memory import LivenessRules, MemoryPredictor, onnx_memory, onnxruntime_cpu_rules  # noqa: E402
from predictors.metrics import kendall_tau  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.space import SubnetConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUPERNET = ROOT / "supernet" / "pretrained" / "cifar10-cnn.safetensors"
RUNS = 3


def _options(folder: Path, name: str, reuse: bool = True) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.enable_mem_reuse = reuse
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = str(folder / name)
    return so


def _runs(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Kernel events grouped by session run (each ``model_run`` event's time window)."""
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run")
    nodes = [e for e in events if e.get("cat") == "Node" and "mem_bytes_in_use" in e.get("args", {})]
    return [[e for e in nodes if lo <= e["ts"] <= hi] for lo, hi in windows]


def _profile(model: bytes, batch: int, folder: Path, name: str, reuse: bool) -> list[list[dict[str, Any]]]:
    """Kernel events (with arena statistics) of ``RUNS`` runs of ``model`` on a seeded random batch."""
    so = _options(folder, name, reuse)
    if reuse:
        so.optimized_model_filepath = str(folder / f"{name}.opt.onnx")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).random((batch, *inp.shape[1:]), dtype=np.float32)
    for _ in range(RUNS):
        sess.run(None, {inp.name: x})
    runs = _runs(json.loads(Path(sess.end_profiling()).read_text()))
    if len(runs) != RUNS or not all(runs):
        raise RuntimeError(f"expected {RUNS} profiled runs with memory statistics, got {[len(r) for r in runs]}; "
                           "onnxruntime >= 1.32 writes them.")
    return runs


def _stat(e: dict[str, Any], key: str) -> int:
    return int(e["args"][key])


def _requested(run: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Peak requested bytes of one run above what was in use before its first kernel, and the kernel."""
    base = _stat(run[0], "mem_bytes_requested_in_use") - _stat(run[0], "mem_requested_in_use_delta")
    node = max(run, key=lambda e: _stat(e, "mem_bytes_requested_in_use"))
    return _stat(node, "mem_bytes_requested_in_use") - base, node


def measure(model: bytes, batch: int, folder: Path, name: str) -> dict[str, Any]:
    """onnxruntime's arena statistics for ``model`` (see the module doc)."""
    runs = _profile(model, batch, folder, name, reuse=True)
    no_reuse, _ = _requested(_profile(model, batch, folder, f"{name}_noreuse", reuse=False)[0])
    stat = _stat
    first = runs[0][0]
    base = stat(first, "mem_bytes_in_use") - stat(first, "mem_in_use_delta")
    init_high_water = stat(first, "mem_in_use_peak") > stat(first, "mem_bytes_in_use")
    requested, req_node = _requested(runs[0])
    opt = onnx.load(str(folder / f"{name}.opt.onnx"), load_external_data=False)
    return {
        "requested_no_reuse": no_reuse,
        "requested_run1": requested,
        "requested_peak_node": req_node["args"].get("op_name", "") + " " + req_node["name"].removesuffix("_kernel_time"),
        "in_use_peak_run1": stat(runs[0][-1], "mem_in_use_peak") - base,
        # the memory-pattern block is handed out before run 2's first kernel: relative to run 1's base
        "steady": max(stat(e, "mem_bytes_in_use") for r in runs[1:] for e in r) - base,
        "steady_high_water": stat(runs[-1][-1], "mem_in_use_peak") - base,
        "in_use_before_run": base,
        "arena_held": stat(runs[-1][-1], "mem_arena_held"),
        "init_high_water_above_run": bool(init_high_water),
        "ort_initializer_bytes": int(sum(int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
                                         for t in opt.graph.initializer)),
        "kernels_per_run": len(runs[0]),
    }


def _pearson(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")


def _summary(pred: list[float], meas: list[float]) -> dict[str, float]:
    r = np.asarray(pred, float) / np.asarray(meas, float)
    return {"ratio_min": float(r.min()), "ratio_median": float(np.median(r)), "ratio_max": float(r.max()),
            "pearson_r": _pearson(pred, meas), "kendall_tau": kendall_tau(pred, meas),
            "exact": int(np.sum(np.asarray(pred) == np.asarray(meas)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    ap.add_argument("--n", type=int, default=20, help="subnets (smallest, largest, then random)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    supernet, meta = load_supernet(args.supernet)
    config = supernet.config
    space = config.space()
    n_exits = len(space.exit_positions)
    widths_only = dataclasses.replace(space, exit_positions=())  # distinct widths; exits off
    subnets = [SubnetConfig(s.widths, (0,) * n_exits) for s in widths_only.sample_unique(
        np.random.default_rng(args.seed), args.n, [widths_only.smallest(), widths_only.largest()])]
    batches = [int(b) for b in args.batches.split(",")]
    exported = {space.format(s): subnet_onnx(supernet, s)[0] for s in subnets}

    # throughput of the vectorised path
    fast = MemoryPredictor(config, "fp32")
    many = [space.sample(np.random.default_rng(1000 + i)) for i in range(10_000)]
    t0 = time.perf_counter()
    fast.predict_bytes(many)
    per_s = len(many) / (time.perf_counter() - t0)

    rule_sets = {"portable": LivenessRules(), "onnxruntime": onnxruntime_cpu_rules()}
    measured = ["requested_no_reuse", "requested_run1", "in_use_peak_run1", "steady"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in batches:
            preds = {k: MemoryPredictor(config, "fp32", batch=batch, rules=r) for k, r in rule_sets.items()}
            rows = []
            for i, s in enumerate(subnets):
                arch = space.format(s)
                m = measure(exported[arch], batch, Path(tmp), f"b{batch}_{i}")
                row: dict[str, Any] = {"arch": arch, "measured": m}
                for key, pred in preds.items():
                    est = pred.estimate(s)
                    graph = onnx_memory(exported[arch], batch=batch, rules=pred.rules)
                    vec = (int(pred.predict_weight_bytes([s])[0]), int(pred.predict_arena_bytes([s])[0]))
                    row[key] = {
                        **est.to_dict(), "onnx_peak_at": graph.peak_at,
                        "paths_agree": vec == (est.weight_bytes, est.arena_bytes)
                        == (graph.weight_bytes, graph.arena_bytes) and est.input_bytes == graph.input_bytes,
                        **{f"ratio_to_{k}": est.arena_bytes / m[k] for k in measured},
                        "ratio_weights_to_ort_initializers": est.weight_bytes / m["ort_initializer_bytes"],
                    }
                rows.append(row)
                o = row["onnxruntime"]
                print(f"batch {batch} {arch}: predicted arena {o['arena_bytes']:,} B at {o['peak_at']} "
                      f"(portable {row['portable']['arena_bytes']:,}); measured requested without reuse "
                      f"{m['requested_no_reuse']:,}, with reuse {m['requested_run1']:,}, run-1 peak "
                      f"{m['in_use_peak_run1']:,}, steady {m['steady']:,}; weights {o['weight_bytes']:,} vs ORT "
                      f"{m['ort_initializer_bytes']:,}", flush=True)
            summary: dict[str, Any] = {"subnets": rows}
            for key in rule_sets:
                arena = [r[key]["arena_bytes"] for r in rows]
                summary[key] = {
                    "rules": dataclasses.asdict(rule_sets[key]),
                    "all_paths_agree": all(r[key]["paths_agree"] for r in rows),
                    "distinct_predicted_arena_values": len(set(arena)),
                    **{f"vs_{k}": _summary(arena, [r["measured"][k] for r in rows]) for k in measured},
                    "weights_vs_ort_initializers": _summary([r[key]["weight_bytes"] for r in rows],
                                                            [r["measured"]["ort_initializer_bytes"] for r in rows]),
                }
            summary["arena_held_values"] = sorted({r["measured"]["arena_held"] for r in rows})
            summary["in_use_before_run_values"] = sorted({r["measured"]["in_use_before_run"] for r in rows})
            summary["any_init_high_water_above_run"] = any(r["measured"]["init_high_water_above_run"] for r in rows)
            results[f"batch_{batch}"] = summary
    result = {
        "supernet": str(args.supernet.relative_to(ROOT) if args.supernet.is_relative_to(ROOT) else args.supernet),
        "preset": meta.get("preset", "cifar-default"), "n_subnets": len(subnets), "seed": args.seed,
        "batches": batches, "precision": "fp32", "onnxruntime": ort.__version__,
        "predictor": fast.describe(), "predictor_subnets_per_s": per_s,
        "onnxruntime_channel_block": rule_sets["onnxruntime"].channel_block,
        "measurement": ("onnxruntime CPU EP, 1 thread, sequential, ORT_ENABLE_ALL, enable_profiling; per-kernel "
                        "arena statistics of the profile (mem_bytes_requested_in_use, mem_bytes_in_use, "
                        "mem_in_use_peak, mem_arena_held), relative to the bytes in use before each run's first "
                        f"kernel; {RUNS} runs on a seeded random batch"),
        "results": results, "wall_s": time.perf_counter() - start,
    }
    for batch in batches:
        r = results[f"batch_{batch}"]["onnxruntime"]
        print(f"batch {batch}, onnxruntime rules: exact vs requested without reuse "
              f"{r['vs_requested_no_reuse']['exact']}/{len(subnets)}, with reuse {r['vs_requested_run1']['exact']}; "
              f"ratio to steady {r['vs_steady']['ratio_min']:.3f}-{r['vs_steady']['ratio_max']:.3f} "
              f"(r {r['vs_steady']['pearson_r']:.3f}); weights exact {r['weights_vs_ort_initializers']['exact']}")
    save("memory_predictor", result, "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_predictor.py "
         f"--n {args.n} --batches {args.batches} --seed {args.seed}")


if __name__ == "__main__":
    main()
