"""One run folder as the report sees it: the typed run record, its tables, baselines and exports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reports.run_folder import (
    EVALUATIONS_FILE,
    HISTORY_FILE,
    PARETO_FILE,
    ExportedSubnet,
    RunRecord,
    exported_subnets,
    load_run,
    read_table,
    resolve_run_supernet,
)
from supernet.errors import CheckpointError, DatasetError

BASELINE_COLUMNS = ["width", "arch", "accuracy", "latency_ms", "macs"]


@dataclass(frozen=True, eq=False)
class RunView:
    """Everything the report shows about one run folder."""

    folder: Path
    run: RunRecord
    title: str
    device: str
    space: Any  # supernet.space.SearchSpace, or None when run.json stores none
    evaluations: pd.DataFrame
    history: pd.DataFrame
    pareto: pd.DataFrame
    baselines: pd.DataFrame
    baselines_note: str
    exported: list[ExportedSubnet]


def stored_baselines(run: RunRecord) -> pd.DataFrame | None:
    """The uniform-width subnets stored in run.json, narrowest first, or None."""
    if run.baselines is None:
        return None
    rows = [{"width": b.width, "arch": b.arch, "accuracy": b.accuracy, "latency_ms": b.latency_ms,
             "macs": b.macs if b.macs is not None else float("nan")} for b in run.baselines]
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS).sort_values("width").reset_index(drop=True)


def predict_baselines(run_dir: Path, run: RunRecord) -> pd.DataFrame:
    """Predict the uniform-width subnets with the run's predictors (cached accuracy data, device profile).

    Used when run.json stores no baselines. Measures nothing new for accuracy: it needs the accuracy
    data cached beside the supernet (written by the search); a host latency predictor is loaded from
    its cache or measured once.
    """
    from predictors import latency_predictor, load_or_collect_accuracy
    from supernet.cnn import count_macs

    supernet, meta, path, _ = resolve_run_supernet(run_dir, run, None)
    acc, _ = load_or_collect_accuracy(path, supernet, meta, None, bn=run.bn, seed=run.seed)
    lat = latency_predictor(str(run.profile.path or run.device), supernet.config, seed=run.seed)
    space = supernet.space
    subs = [space.uniform(i) for i in range(len(space.width_choices))]
    return pd.DataFrame({"width": list(space.width_choices), "arch": [space.format(s) for s in subs],
                         "accuracy": acc.predict(subs), "latency_ms": lat.predict_ms(subs),
                         "macs": [count_macs(supernet.config, s) for s in subs]}, columns=BASELINE_COLUMNS)


def load_view(run_dir: Path, run: RunRecord | None = None) -> RunView:
    """Read one run folder for the report (:class:`reports.run_folder.NoRunError` for a folder with no run)."""
    run_dir = Path(run_dir)
    run = run if run is not None else load_run(run_dir)
    baselines, note = stored_baselines(run), "stored in run.json"
    if baselines is None:
        try:
            baselines, note = predict_baselines(run_dir, run), "predicted now with the run's predictors"
        except (DatasetError, CheckpointError) as e:  # shown in the report, not hidden
            baselines, note = pd.DataFrame(columns=BASELINE_COLUMNS), f"not available: {' '.join(str(e).split())}"
    return RunView(
        folder=run_dir, run=run, title=f"{run.device} — {run_dir.name}", device=run.device, space=run.search_space(),
        evaluations=read_table(run_dir, EVALUATIONS_FILE),
        history=read_table(run_dir, HISTORY_FILE),
        pareto=read_table(run_dir, PARETO_FILE),
        baselines=baselines, baselines_note=note,
        exported=exported_subnets(run_dir, run),
    )


def deploy_command(run: RunRecord, onnx_path: Path, stages: list[str] | None = None) -> str:
    """The profile's deployment command with the ONNX path filled in; for a dynamic subnet (``stages``: its
    segment chain's files, the default artifact) the command for each stage, then how to run the chain."""
    template = run.profile.deploy
    if not template:
        from hw_profiles import load_profile

        template = load_profile(run.profile.name or run.device).deploy
    if not stages:
        return str(template).format(onnx=str(onnx_path))
    folder = Path(onnx_path).parent
    each = " ; ".join(str(template).format(onnx=str(folder / f)) for f in stages)
    return (f"{each} ; run the chain with supernet/runtime.py (numpy + onnxruntime only): "
            f"DynamicSession('{folder}').run(images)")
