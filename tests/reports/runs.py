"""A hand-built run folder that follows the contract of :mod:`reports.run_folder`, shared by the export and
report tests: real tables written by :mod:`nas.runfolder`, made-up "predictions", a real supernet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nas.driver import SearchResult
from nas.pareto import HVBox
from nas.runfolder import result_summary, write_run_json, write_tables
from reports.run_folder import EVAL_COLUMNS, HISTORY_COLUMNS, SearchSettings
from supernet.checkpoint import load_supernet, sha256
from supernet.cnn import count_macs

DATA = Path(__file__).parent / "data"
V2_RUNS = (DATA / "v2-jetson-orin", DATA / "v2-host")  # written by `dynnas search` before reports/ existed


def make_run(folder: Path, supernet_path: Path, *, device: str = "host", n: int = 40, seed: int = 0,
             deploy: str | None = None, baselines: bool = False) -> Path:
    """A complete run folder of ``n`` random subnets split between two algorithms.

    "Predictions" are a made-up monotone function of MACs plus noise: export and report only read them.
    """
    model, _meta = load_supernet(supernet_path)
    space, rng = model.space, np.random.default_rng(seed)
    scale = 1.0 if device == "host" else 0.3

    def predict(sub):
        macs = count_macs(model.config, sub)
        return macs, 0.5 + 0.4 * macs / 75_000 + rng.normal(0, 0.02), scale * (0.02 + macs / 1e6)

    results = []
    for alg in ("nsga2", "random"):
        rows, hist = [], []
        for i in range(n // 2):
            sub = space.sample(rng)
            sub = space.make(sub.widths, (0,) * len(sub.exits))  # static subnets; exits: tests/nas/test_exits.py
            macs, acc, lat = predict(sub)
            rates = ";".join(["0"] * len(sub.exits) + ["1"])
            rows.append((i, alg, space.subnet_id(sub), space.format(sub), acc, lat, macs, True, acc, lat, rates))
            hist.append((alg, i + 1, 0.3 + 0.01 * i))
        results.append(SearchResult(algorithm=alg, budget=n // 2, seed=seed, seconds=1.0,
                                    evaluations=pd.DataFrame(rows, columns=list(EVAL_COLUMNS)),
                                    history=pd.DataFrame(hist, columns=list(HISTORY_COLUMNS))))
    folder.mkdir(parents=True, exist_ok=True)
    write_tables(folder, results)
    uniform = []
    for i, w in enumerate(space.width_choices):
        macs, acc, lat = predict(space.uniform(i))
        uniform.append({"width": w, "arch": space.format(space.uniform(i)), "accuracy": acc, "latency_ms": lat,
                        "macs": macs})
    box = HVBox.from_points(np.array([b["accuracy"] for b in uniform]), np.array([b["latency_ms"] for b in uniform]))
    settings = SearchSettings(device=device, profile_sha="hand-built", supernet=str(supernet_path),
                              supernet_sha256=sha256(supernet_path), algorithms=("nsga2", "random"), budget=n // 2,
                              top_k=0, bn="recal", seed=seed, device_type="cpu", accuracy_samples=12, out=str(folder))
    run = {
        "status": "complete", "command": settings.command(), "settings": settings.to_dict(), "dataset": None,
        "supernet": {"path": str(supernet_path), "sha256": sha256(supernet_path), "family": "cnn",
                     "space": space.to_dict()},
        "profile": {"name": device, "deploy": deploy or "python -m onnxruntime_check {onnx}"},
        "predictors": {"accuracy": {"quality": {"heldout_tau": 0.71, "heldout_rmse_points": 1.2,
                                                "noise_ceiling_tau": 0.83}},
                       "latency": {"method": "synthetic", "device": device}},
        "objectives": [{"name": "accuracy", "direction": "maximize", "unit": "fraction"},
                       {"name": "latency_ms", "direction": "minimize", "unit": "ms"}],
        "hv_reference": box.to_dict(),
        "hypervolume": {r.algorithm: r.hypervolume for r in results},
        "results": {r.algorithm: result_summary(r) for r in results},
    }
    if baselines:
        run["baselines"] = uniform
    write_run_json(folder, run)
    return folder
