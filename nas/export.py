"""Export the chosen subnets of a search run: ONNX + safetensors + arch.json + verify.json per subnet.

``export_subnets(run_dir, top_k)`` picks ``top_k`` subnets spread along the run's combined Pareto
front (the fastest and the most accurate always among them), extracts each from the supernet with
the run's BN mode and writes, under ``run_dir/subnets/<subnet_id>/``:

* ``model.onnx``: self-contained (weights embedded), input ``image`` (N×C×H×W floats in [0, 1],
  normalisation inside), output ``logits``;
* ``weights.safetensors``: the state dict of the extracted plain PyTorch model;
* ``arch.json``: what the subnet is (arch string, widths, MACs, params, supernet sha256,
  normalisation, input shape, class names, how to rebuild the PyTorch module);
* ``verify.json``: ONNX-vs-PyTorch logit check, onnxruntime accuracy, host latency, predictions.

and records the exported ids in ``run.json["exported"]`` (the latest export wins).

A subnet folder appears only once all four files are written and verified (built in a temp folder,
then renamed), so a failed verification leaves nothing half-written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nas.runfolder import PARETO_FILE, NoRunError, load_run, read_table, write_run_json
from nas.verify import check_self_contained, verify_onnx
from predictors import latency_predictor
from predictors.host_latency import measure_relative, subnet_onnx
from predictors.onnx_io import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from supernet.checkpoint import read_json, save_tensors, sha256, write_json
from supernet.cnn import count_macs
from supernet.errors import CheckpointError, CheckpointMismatchError, ConfigError
from supernet.evaluate import BN_MODES, subnet_model
from supernet.pretrained import load_default_data, resolve_supernet
from supernet.space import SearchSpace, SubnetConfig

SUBNET_FORMAT = "dynnas-subnet"
SUBNET_FORMAT_VERSION = 1
Progress = Callable[[int, int, str], None]  # (index, total, arch string) before each subnet


# ---- the run folder ----------------------------------------------------------------------------
def run_setting(run: dict[str, Any], key: str, default: Any = None) -> Any:
    """A run setting, at the top level of run.json or under its ``settings``."""
    if key in run:
        return run[key]
    return (run.get("settings") or {}).get(key, default)


def combined_front(run_dir: Path) -> pd.DataFrame:
    """The run's combined Pareto front (over all algorithms), one row per subnet, fastest first."""
    df = read_table(run_dir, PARETO_FILE)
    front = df[df["combined"].astype(str).str.lower().isin(("true", "1"))].drop_duplicates("subnet_id")
    if front.empty:
        raise NoRunError(f"'{Path(run_dir) / PARETO_FILE}' marks no subnet as on the combined front; "
                         "rerun the search with --overwrite.")
    return front.sort_values(["latency_ms", "accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)


def choose_subnets(front: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The ``top_k`` subnets spread along the front (``spread_rank < top_k``: the fastest and the most
    accurate first, then the largest latency gaps), fastest first."""
    if top_k < 1:
        raise ConfigError(f"--top must be >= 1, but got {top_k}.")
    rank = front["spread_rank"].astype(int)
    return front[(rank >= 0) & (rank < top_k)].sort_values("latency_ms", kind="stable").reset_index(drop=True)


# ---- one subnet ------------------------------------------------------------------------------
def _static_spec(config: Any, subnet: SubnetConfig) -> dict[str, Any]:
    """Constructor arguments of :class:`supernet.static.StaticCNN` for this subnet."""
    blocks = [[config.hidden_widths(i)[idx], cout, stride]
              for i, ((cout, stride, _e), idx) in enumerate(zip(config.blocks, subnet.widths, strict=True))]
    return {"class": "supernet.static.StaticCNN", "in_channels": config.in_channels, "stem": config.stem_channels,
            "blocks": blocks, "head": config.head_channels, "num_classes": config.num_classes,
            "dropout": config.dropout}


def arch_record(supernet: nn.Module, meta: dict[str, Any], supernet_path: Path, supernet_sha: str,
                subnet: SubnetConfig, model: nn.Module, bn: str) -> dict[str, Any]:
    """The ``arch.json`` document of one exported subnet."""
    space: SearchSpace = supernet.space
    c = supernet.config
    spec = _static_spec(c, subnet)
    return {
        "format": SUBNET_FORMAT, "format_version": SUBNET_FORMAT_VERSION,
        "arch": space.format(subnet), "subnet_id": space.subnet_id(subnet), "family": meta["family"],
        "space": space.to_dict(),
        "widths": {"indices": list(subnet.widths), "fractions": list(space.width_fractions(subnet)),
                   "hidden_channels": [b[0] for b in spec["blocks"]]},
        "macs": count_macs(c, subnet), "params": int(sum(p.numel() for p in model.parameters())),
        "supernet": {"path": str(supernet_path), "sha256": supernet_sha},
        "bn": bn,
        "normalisation": {"mean": [float(v) for v in meta["mean"]], "std": [float(v) for v in meta["std"]],
                          "inside_model": True, "input_range": [0.0, 1.0]},
        "input": {"name": INPUT_NAME, "shape": [1, c.in_channels, c.resolution, c.resolution], "layout": "NCHW",
                  "dtype": "float32", "dynamic_batch": True},
        "output": {"name": OUTPUT_NAME, "shape": [1, c.num_classes]},
        "classes": list(meta["dataset"]["classes"]),
        "pytorch": spec,
        "files": {"onnx": "model.onnx", "weights": "weights.safetensors", "verify": "verify.json"},
        "opset": OPSET,
    }


def eval_set_name(note: str, spec: str, n: int) -> str:
    """``"cifar10 test (10000)"`` or ``"shipped sample (300)"``: which images verification used."""
    if note.endswith("shipped sample"):
        return f"shipped sample ({n})"
    return f"{spec.partition(':')[0]} test ({n})"


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder to ``final``, replacing an older export of the same subnet."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---- the run ---------------------------------------------------------------------------------
def resolve_run_supernet(run_dir: Path, run: dict[str, Any],
                         override: Path | None) -> tuple[nn.Module, dict[str, Any], Path, str]:
    """The run's supernet ``(model, meta, path, sha256)``; its sha256 must match the one in run.json."""
    info = run.get("supernet") or {}
    path = override
    if path is None and info.get("path"):
        path = Path(info["path"])
        if not path.is_absolute() and not path.exists() and (run_dir / path).exists():
            path = run_dir / path
    model, meta, path = resolve_supernet(path)
    digest = sha256(path)
    want = info.get("sha256")
    if want and digest != want:
        raise CheckpointMismatchError(f"supernet '{path}' has sha256 {digest[:12]}… but run '{run_dir}' was searched on "
                                      f"{want[:12]}…; pass --supernet with the run's supernet.")
    return model, meta, path, digest


def _host_predictions(run: dict[str, Any], pred: Any, subs: list[SubnetConfig],
                      target_ms: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted host latency of ``subs``: the run's own predictions when it targeted the host,
    else the host predictor's."""
    if str(run_setting(run, "device", "")) == "host":
        return target_ms, {"method": "the run's own latency predictor (device host)"}
    d = pred.describe()
    return np.asarray(pred.predict_ms(subs), dtype=np.float64), {"method": d.get("method"),
                                                                  "quality": d.get("quality")}


def export_subnets(run_dir: Path, top_k: int = 5, *, supernet_path: Path | None = None, seed: int | None = None,
                   progress: Progress | None = None) -> list[dict[str, Any]]:
    """Export ``top_k`` subnets of the run in ``run_dir``; returns one summary dict per subnet, fastest first.

    ``seed`` picks the BN-recalibration batches and the latency input (default: the run's seed, so a
    re-export reproduces the search's export). Raises :class:`nas.verify.ExportVerificationError`
    (and writes no folder for that subnet) when an ONNX model does not reproduce its PyTorch
    original within 1e-4.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    seed = int(run_setting(run, "seed", 0) or 0) if seed is None else int(seed)
    picks = choose_subnets(combined_front(run_dir), top_k)
    supernet, meta, path, digest = resolve_run_supernet(run_dir, run, supernet_path)
    bn = str(run_setting(run, "bn", "recal"))
    if bn not in BN_MODES:
        raise ConfigError(f"run.json names BN mode '{bn}'; known: {', '.join(BN_MODES)}.")
    data, note = load_default_data(meta, run_setting(run, "dataset"), path)
    eval_set = eval_set_name(note, data.spec, len(data.y_test))
    space: SearchSpace = supernet.space
    subs = [space.parse(a) for a in picks["arch"]]
    for sub, sid in zip(subs, picks["subnet_id"], strict=True):
        if space.subnet_id(sub) != str(sid):
            raise CheckpointMismatchError(f"pareto.csv gives subnet_id {sid} for '{space.format(sub)}' but this "
                                          f"supernet's space gives {space.subnet_id(sub)}; pass the run's supernet.")
    target = picks["latency_ms"].to_numpy(dtype=np.float64)
    host = latency_predictor("host", supernet.config, seed=seed)  # measured on this machine once, then cached
    host_reference = subnet_onnx(supernet, host.reference)
    host_pred, host_how = _host_predictions(run, host, subs, target)
    root = run_dir / "subnets"
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (sub, row) in enumerate(zip(subs, picks.itertuples(index=False), strict=True)):
        arch = space.format(sub)
        if progress is not None:
            progress(i, len(subs), arch)
        model = subnet_model(supernet, sub, data, bn, seed=seed)
        record = arch_record(supernet, meta, path, digest, sub, model, bn)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{record['subnet_id']}."))
        tmp.chmod(0o755)  # mkdtemp makes it private; the final folder should read like the run folder
        try:
            example = torch.zeros(record["input"]["shape"])
            export_onnx(model, example, tmp / "model.onnx")
            check_self_contained(tmp / "model.onnx")
            save_tensors(tmp / "weights.safetensors", model.state_dict(), {"format": SUBNET_FORMAT, "arch": arch,
                                                                          "subnet_id": record["subnet_id"]})
            record["files"]["onnx_sha256"] = sha256(tmp / "model.onnx")
            write_json(tmp / "arch.json", record)
            verify = verify_onnx(model, tmp / "model.onnx", data.x_test, data.y_test, eval_set, seed=seed)
            verify["host_latency_relative"] = measure_relative(host, host_reference, tmp / "model.onnx",
                                                                 seed=seed)
            verify.update({
                "device": str(run_setting(run, "device", "")),
                "predicted_latency_ms": float(row.latency_ms),
                "predicted_accuracy": float(row.accuracy),
                "predicted_host_latency_ms": float(host_pred[i]),
                "host_latency_predictor": host_how,
                "algorithm": str(row.algorithm),
                "arch": arch, "subnet_id": record["subnet_id"], "bn": bn, "seed": seed,
            })
            write_json(tmp / "verify.json", verify)
            _replace_dir(tmp, root / record["subnet_id"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        out.append({"subnet_id": record["subnet_id"], "arch": arch, "folder": str(root / record["subnet_id"]),
                    "macs": record["macs"], "params": record["params"],
                    "predicted_accuracy": verify["predicted_accuracy"], "onnx_accuracy": verify["onnx_accuracy"],
                    "predicted_latency_ms": verify["predicted_latency_ms"],
                    "host_latency_ms": verify["host_latency_ms"]["median_ms"],
                    "host_latency_relative_ms": verify["host_latency_relative"]["at_calibration_speed_ms"],
                    "max_abs_logit_diff": verify["max_abs_logit_diff"], "eval_set": eval_set})
    run["exported"] = [o["subnet_id"] for o in out]
    write_run_json(run_dir, {k: v for k, v in run.items() if k not in ("format", "format_version")})
    return out


def exported_subnets(run_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The subnets of the run's latest export (``run["exported"]``): ``{"arch", "verify", "folder"}`` each."""
    out = []
    for sid in run.get("exported") or []:
        folder = Path(run_dir) / "subnets" / str(sid)
        try:
            out.append({"arch": read_json(folder / "arch.json", "arch file"),
                        "verify": read_json(folder / "verify.json", "verify file"), "folder": folder})
        except CheckpointError as e:
            raise NoRunError(f"{e} Re-export with `dynnas export {run_dir}`.") from None
    return out
