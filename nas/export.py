"""Export the chosen subnets of a search run: ONNX + safetensors + arch.json + verify.json per subnet.

``export_subnets(run_dir, top_k)`` picks ``top_k`` subnets spread along the run's combined Pareto
front (the fastest and the most accurate always among them), extracts each from the supernet with
the run's BN mode and writes, under ``run_dir/subnets/<subnet_id>/``:

* ``model.onnx``: self-contained (weights embedded), input ``image`` (N×C×H×W floats in [0, 1],
  normalisation inside), output ``logits``;
* ``weights.safetensors``: the state dict of the extracted plain PyTorch model;
* ``arch.json``: what the subnet is (arch string, widths, MACs, params, supernet sha256,
  normalisation, input shape, class names, how to rebuild the PyTorch module);
* ``verify.json``: ONNX-vs-PyTorch logit check, onnxruntime accuracy, host latency, predictions;
* ``manifest.json``: the segment chain that :class:`supernet.runtime.DynamicSession` runs. A subnet
  with exits or a cascade scout is exported as one graph per stage (``stage<i>_<name>.onnx``,
  :func:`export_segments`), the default artifact that ``verify.json`` checks and times, plus
  ``static.onnx`` (its exits off) and the single-file ``model.onnx`` (nested ``If``, batch 1);
  a static subnet's manifest has one stage, its ``model.onnx``.

and records the exported ids in ``run.json["exported"]`` (the latest export wins). The package's files
and records are defined in :mod:`reports.run_folder` (:class:`~reports.run_folder.ArchRecord`,
:class:`~reports.run_folder.VerifyRecord`); every ``arch.json`` and ``verify.json`` is validated
against them before it is written.

A subnet folder appears only once all four files are written and verified (built in a temp folder,
then renamed), so a failed verification leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.verify import check_self_contained, verify_chain, verify_early_exit, verify_onnx
from predictors import latency_predictor
from predictors.exit_policy import DEFAULT_MAX_DROP
from predictors.host_latency import measure_expected_relative, measure_relative, subnet_onnx
from predictors.onnx_chain import static_manifest
from predictors.onnx_graph import OPSET
from predictors.onnx_io import INPUT_NAME, OUTPUT_NAME, export_onnx, measure_latency
from reports.run_folder import (
    ALL_EXITS_FILE,
    ARCH_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SCOUT_WEIGHTS_FILE,
    STATIC_FILE,
    SUBNET_FORMAT,
    SUBNET_FORMAT_VERSION,
    SUBNETS_DIR,
    VERIFY_FILE,
    WEIGHTS_FILE,
    ArchRecord,
    RunRecord,
    VerifyRecord,
    choose_subnets,
    combined_front,
    exported_subnets,
    load_run,
    resolve_run_supernet,
    save_run,
)
from supernet.checkpoint import save_tensors, sha256, write_json
from supernet.cost import count_macs
from supernet.data import to_tensor
from supernet.errors import CheckpointMismatchError
from supernet.evaluate import subnet_model
from supernet.files import atomic_write
from supernet.pretrained import load_default_data
from supernet.runtime import DynamicSession
from supernet.space import SearchSpace, SubnetConfig

__all__ = ["arch_record", "calibrate_exit_policy", "choose_subnets", "combined_front", "eval_set_name",
           "export_subnets", "exported_subnets", "resolve_run_supernet"]
Progress = Callable[[int, int, str], None]  # (index, total, arch string) before each subnet
N_EXPECTED_IMAGES = 500  # eval images timed one by one for an early-exit model's expected latency


# ---- one subnet ------------------------------------------------------------------------------
def arch_record(supernet: nn.Module, meta: dict[str, Any], supernet_path: Path, supernet_sha: str,
                subnet: SubnetConfig, model: nn.Module, bn: str, *, space: SearchSpace | None = None) -> dict[str, Any]:
    """The ``arch.json`` document of one exported subnet (``space``: the searched space, default the supernet's)."""
    space = space or supernet.space
    c = supernet.config
    scout, full = space.scout(subnet), subnet
    subnet = space.without_cascade(subnet)
    spec = c.static_spec(subnet)
    return {
        "format": SUBNET_FORMAT, "format_version": SUBNET_FORMAT_VERSION,
        "arch": space.format(full), "subnet_id": space.subnet_id(full), "family": meta["family"],
        "space": space.to_dict(),
        "widths": {"indices": list(subnet.widths), "fractions": list(space.width_fractions(subnet)),
                   **c.subnet_summary(subnet)},
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
        "files": {"onnx": MODEL_FILE, "weights": WEIGHTS_FILE, "verify": VERIFY_FILE},
        "opset": OPSET,
    } | ({"cascade": {"scout": supernet.space.format(scout), "scout_width": space.width_choices[scout.widths[0]],
                      "scout_macs": count_macs(c, scout), "scout_pytorch": c.static_spec(scout),
                      "meaning": "the scout runs first; the subnet runs only when the scout is not confident"}}
         if scout is not None else {})


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


# ---- early exits ---------------------------------------------------------------------------------
def calibrate_exit_policy(model: nn.Module, config: Any, subnet: SubnetConfig, x: np.ndarray, y: np.ndarray, *,
                          max_drop: float, criterion: str = "confidence", temperature: bool = False,
                          scout: tuple[nn.Module, float] | None = None) -> dict[str, Any]:
    """Thresholds of ``subnet``'s enabled exits for the extracted ``model``, calibrated on ``(x, y)``.

    Minimises the expected MACs ``C_avg`` subject to an accuracy drop of at most ``max_drop``
    against the same model with its exits off (see :func:`predictors.exit_policy.calibrate`).
    With ``scout = (scout_model, scout_macs)`` (a width cascade) the scout is the first stage:
    ``scout_threshold``, and ``val_exit_rates`` starts with the scout's share.
    """
    from predictors.exit_policy import calibrate, exit_scores, fit_temperature
    from supernet.cnn import exit_macs
    from supernet.evaluate import all_exit_logits

    logits = all_exit_logits(model, x)
    n_exits = len(logits) - 1
    on = [e for e in range(n_exits) if subnet.exits[e]]
    temps = [fit_temperature(logits[e], y) if temperature else 1.0 for e in range(n_exits)]
    costs = exit_macs(config, subnet)
    static_macs = exit_macs(config, dataclasses.replace(subnet, exits=(0,) * n_exits))[-1]
    scores = [exit_scores(logits[e], criterion, temps[e]) for e in on]
    correct = [logits[e].argmax(1) == y for e in on] + [logits[-1].argmax(1) == y]
    cs = [float(costs[e]) for e in on] + [float(costs[-1])]
    first = 0
    if scout is not None:
        scout_logits = all_exit_logits(scout[0], x)[-1]
        scout_temp = fit_temperature(scout_logits, y) if temperature else 1.0
        scores = [exit_scores(scout_logits, criterion, scout_temp)] + scores
        correct = [scout_logits.argmax(1) == y] + correct
        cs = [float(scout[1])] + [float(scout[1]) + c for c in cs]
        first = 1
    r = calibrate(np.stack(scores) if scores else np.zeros((0, len(y))), np.stack(correct), np.asarray(cs, float),
                  max_drop, c_static=float(static_macs))
    thresholds = [math.inf] * n_exits
    rates = [0.0] * (first + n_exits + 1)
    for j, e in enumerate(on):
        thresholds[e] = float(r.thresholds[first + j])
        rates[first + e] = float(r.exit_rates[first + j])
    rates[-1] = float(r.exit_rates[-1])
    out = {"criterion": criterion, "temperatures": temps,
           "thresholds": [t if math.isfinite(t) else None for t in thresholds], "max_accuracy_drop": max_drop,
           "val_exit_rates": rates, "val_accuracy": r.accuracy, "val_static_accuracy": r.static_accuracy,
           "c_avg_macs": r.c_avg, "c_static_macs": r.c_static, "speedup_macs": r.speedup,
           "worst_case_macs": r.worst_cost, "n_images": int(len(y))}
    if scout is not None:
        rates[0] = float(r.exit_rates[0])
        out |= {"scout_threshold": float(r.thresholds[0]) if math.isfinite(r.thresholds[0]) else None,
                "scout_temperature": scout_temp, "scout_macs": float(scout[1]),
                "stages": ["scout", *[f"exit{e}" for e in range(n_exits)], "final"]}
    return out


def _export_early_exit(model: nn.Module, subnet: SubnetConfig, policy: dict[str, Any], record: dict[str, Any],
                       folder: Path, scout: nn.Module | None = None) -> tuple[Any, dict[str, Any]]:
    """Every file of a dynamic subnet: the segment chain (:func:`export_segments`, the default artifact), then
    ``model.onnx`` (its stages joined by nested ``If`` nodes, batch 1: :func:`predictors.onnx_chain.compose_if_model`)
    and ``model.all_exits.onnx`` (every exit's logits, any batch; with a cascade ``scout`` its logits come first).
    Returns the PyTorch policy module the exports are verified against, and the chain's manifest."""
    from predictors.onnx_chain import compose_if_model
    from predictors.onnx_io import export_multi_output_onnx
    from supernet.early_exit import AllExits, CascadeAllExits, CascadeCNN, EarlyExitCNN

    thresholds = [math.inf if t is None else float(t) for t in policy["thresholds"]]
    ee = EarlyExitCNN(model, subnet.exits, thresholds, criterion=policy["criterion"],
                      temperatures=policy["temperatures"]).eval()
    names = [f"logits_exit{e}" for e in range(ee.n_exits)] + [OUTPUT_NAME]
    every: nn.Module = AllExits(model)
    if scout is not None:
        t = policy["scout_threshold"]
        ee = CascadeCNN(scout, ee, math.inf if t is None else float(t), temperature=policy["scout_temperature"])
        names, every = ["logits_scout", *names], CascadeAllExits(ee)
    example = torch.zeros(record["input"]["shape"])
    chain = export_segments(model, subnet, policy, record, folder, scout=scout)
    data = compose_if_model(folder, record["input"]["shape"], num_classes=len(record["classes"]))
    atomic_write(folder / MODEL_FILE, lambda p: p.write_bytes(data))
    export_multi_output_onnx(every, example, folder / ALL_EXITS_FILE, names)
    return ee, chain


def export_segments(model: nn.Module, subnet: SubnetConfig, policy: dict[str, Any], record: dict[str, Any],
                    folder: Path, scout: nn.Module | None = None) -> dict[str, Any]:
    """The default artifact of a dynamic subnet: its stage chain (``stage<i>_<name>.onnx``) and ``manifest.json``
    (:mod:`predictors.onnx_chain`), plus ``static.onnx``, the same subnet with its exits off (the baseline
    ``dynnas bench`` measures the speed-up against). Returns the manifest."""
    from predictors.onnx_chain import exit_names, export_chain
    from supernet.stages import build_stages

    stages = build_stages(model, subnet.exits, policy["thresholds"], criterion=policy["criterion"],
                          temperatures=policy["temperatures"], scout=scout,
                          scout_threshold=policy.get("scout_threshold"),
                          scout_temperature=float(policy.get("scout_temperature") or 1.0))
    example = torch.zeros(record["input"]["shape"])
    doc = export_chain(stages, example, folder, normalisation=record["normalisation"],
                       names=exit_names(len(subnet.exits), scout is not None), classes=record["classes"])
    export_onnx(model, example, folder / STATIC_FILE)
    return doc


# ---- the run ---------------------------------------------------------------------------------
def _host_predictions(run: RunRecord, pred: Any, subs: list[SubnetConfig], target_ms: np.ndarray,
                      rates: list[list[float]]) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted host latency of ``subs`` (expected latency with the predicted exit rates): the run's own
    predictions when it targeted the host, else the host predictor's."""
    if run.device == "host":
        return target_ms, {"method": "the run's own latency predictor (device host)"}
    d = pred.describe()
    per_exit = np.asarray(pred.predict_exit_ms(subs), dtype=np.float64)
    p = np.asarray(rates, dtype=np.float64)
    expected = (p * per_exit).sum(axis=1) if p.shape == per_exit.shape else per_exit[:, -1]
    return expected, {"method": d.get("method"), "quality": d.get("quality")}


def _device_predictor(run: RunRecord, config: Any, space: SearchSpace, host: Any, seed: int) -> Any:
    """The run's own latency predictor (to re-cost exports with measured exit rates); None when it cannot be built
    here (a profile file that moved)."""
    if run.device == "host":
        return host
    try:
        pred = latency_predictor(run.device, config, seed=seed, power_mode=run.settings.power_mode,
                                 batch=run.settings.batch)
    except Exception:  # noqa: BLE001 - re-costing is an extra; the export stands without it
        return None
    if space.n_cascade:
        from predictors.cascade import CascadeLatency

        pred = CascadeLatency(pred, space)
    return pred


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
    seed = run.seed if seed is None else int(seed)
    picks = choose_subnets(combined_front(run_dir), top_k)
    supernet, meta, path, digest = resolve_run_supernet(run_dir, run, supernet_path)
    bn = run.bn  # validated by the run record: one of supernet.evaluate.BN_MODES
    data, note = load_default_data(meta, run.settings.dataset, path)
    eval_set = eval_set_name(note, data.spec, len(data.y_test))
    searched: SearchSpace = run.search_space() or supernet.space
    if searched.exit_positions != supernet.space.exit_positions and searched.exit_positions:
        raise CheckpointMismatchError(f"run '{run_dir}' searched exits after blocks {list(searched.exit_positions)} but "
                                      f"this supernet has them after {list(supernet.space.exit_positions)}; pass the "
                                      "run's supernet.")
    space = dataclasses.replace(supernet.space, n_cascade=searched.n_cascade)  # exits of a --exits off run: all off
    subs = [searched.parse(a) for a in picks["arch"]]
    for sub, sid in zip(subs, picks["subnet_id"], strict=True):
        if searched.subnet_id(sub) != str(sid):
            raise CheckpointMismatchError(f"pareto.csv gives subnet_id {sid} for '{searched.format(sub)}' but this "
                                          f"supernet's space gives {searched.subnet_id(sub)}; pass the run's supernet.")
    named = subs  # as the run searched them: arch.json names each by its arch and subnet_id in pareto.csv
    subs = [dataclasses.replace(s, exits=(0,) * len(space.exit_positions)) if len(s.exits) != len(space.exit_positions)
            else s for s in subs]
    target = picks["latency_ms"].to_numpy(dtype=np.float64)
    max_drop = run.settings.max_accuracy_drop or DEFAULT_MAX_DROP
    calibration = (run.predictors.exits or {}).get("calibration") or {}
    criterion = str(calibration.get("criterion") or "confidence")
    val_note = "validation split" if not note.endswith("shipped sample") else "the shipped sample's validation images"
    host = latency_predictor("host", supernet.config, seed=seed)  # measured on this machine once, then cached
    if space.n_cascade:
        from predictors.cascade import CascadeLatency

        host = CascadeLatency(host, space)
    host_reference = subnet_onnx(supernet, host.reference)
    speed = host.speed_now(supernet.config, seed=seed)
    rates = [[float(v) for v in str(r).split(";")] for r in picks["exit_rates"]]
    host_pred, host_how = _host_predictions(run, host, subs, target, rates)
    host_exit = np.asarray(host.predict_exit_ms(subs), dtype=np.float64)
    host_static = np.asarray(host.predict_ms([dataclasses.replace(space.without_cascade(s), exits=(0,) * len(s.exits))
                                              for s in subs]), dtype=np.float64)
    device_pred = _device_predictor(run, supernet.config, space, host, seed)
    device_exit = (np.asarray(device_pred.predict_exit_ms(subs), dtype=np.float64) if device_pred is not None
                   else None)
    root = run_dir / SUBNETS_DIR
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (sub, as_searched, row) in enumerate(zip(subs, named, picks.itertuples(index=False), strict=True)):
        arch = searched.format(as_searched)
        if progress is not None:
            progress(i, len(subs), arch)
        main, scout_sub = space.without_cascade(sub), space.scout(sub)
        model = subnet_model(supernet, main, data, bn, seed=seed)
        scout = subnet_model(supernet, scout_sub, data, bn, seed=seed) if scout_sub is not None else None
        record = arch_record(supernet, meta, path, digest, sub, model, bn, space=space)
        if searched.exit_positions != space.exit_positions:  # an --exits off run: its names, not the supernet's
            record.update(arch=arch, subnet_id=searched.subnet_id(as_searched), space=searched.to_dict())
        dynamic = any(sub.exits) or scout is not None
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{record['subnet_id']}."))
        tmp.chmod(0o755)  # mkdtemp makes it private; the final folder should read like the run folder
        try:
            example = torch.zeros(record["input"]["shape"])
            if dynamic:
                policy = calibrate_exit_policy(model, supernet.config, main, data.x_val, data.y_val,
                                               max_drop=max_drop, criterion=criterion,
                                               scout=None if scout is None else
                                               (scout, record["cascade"]["scout_macs"]))
                policy["calibrated_on"] = val_note
                ee, chain = _export_early_exit(model, main, policy, record, tmp, scout=scout)
                record["exit_policy"] = policy
                meaning = (f"index of the exit taken; {len(sub.exits)} = final classifier" if scout is None else
                           f"0 = the scout, 1 + i = exit i, {1 + len(sub.exits)} = final classifier")
                record["output"]["exit_index"] = {"name": "exit_index", "shape": [1], "dtype": "int64",
                                                  "meaning": meaning}
                record["files"] |= {"all_exits_onnx": ALL_EXITS_FILE, "manifest": MANIFEST_FILE,
                                    "static_onnx": STATIC_FILE}
                record["stages"] = [st["file"] for st in chain["stages"]]
                record["batch_semantics"] = ("the default artifact is the segment chain of manifest.json (run it with "
                                             "supernet/runtime.py's DynamicSession: per-sample exits at any batch, "
                                             "with batch compaction); model.onnx is the single-file alternative "
                                             "(nested If, batch 1); model.all_exits.onnx (any batch) returns every "
                                             "exit's logits for per-sample routing with the thresholds in exit_policy")
            else:
                export_onnx(model, example, tmp / MODEL_FILE)
                static_manifest(tmp, MODEL_FILE, record["input"]["shape"], normalisation=record["normalisation"],
                                classes=record["classes"], n_blocks=len(sub.widths))
                record["files"]["manifest"] = MANIFEST_FILE
            check_self_contained(tmp / MODEL_FILE)
            save_tensors(tmp / WEIGHTS_FILE, model.state_dict(), {"format": SUBNET_FORMAT, "arch": arch,
                                                                          "subnet_id": record["subnet_id"]})
            if scout is not None:
                save_tensors(tmp / SCOUT_WEIGHTS_FILE, scout.state_dict(),
                             {"format": SUBNET_FORMAT, "arch": record["cascade"]["scout"], "role": "cascade scout"})
                record["files"]["scout_weights"] = SCOUT_WEIGHTS_FILE
            record["files"]["onnx_sha256"] = sha256(tmp / MODEL_FILE)
            ArchRecord.model_validate(record)  # the contract of reports.run_folder, before anything is kept
            write_json(tmp / ARCH_FILE, record)
            if dynamic:
                single = verify_early_exit(ee, tmp / MODEL_FILE, tmp / ALL_EXITS_FILE, data.x_test,
                                           data.y_test, eval_set)
                verify = verify_chain(ee, tmp, data.x_test, data.y_test, eval_set)
                verify |= {"static_accuracy": single["static_accuracy"], "tolerance": single["tolerance"],
                           "eval_set": eval_set, "batch": 1, "versions": single["versions"],
                           "single_file": {k: single[k] for k in ("max_abs_logit_diff", "max_abs_logit_diff_all_exits",
                                                                   "same_exit_as_pytorch", "onnx_accuracy")}}
                shape = (1, *data.x_test.shape[3:], *data.x_test.shape[1:3])
                session = DynamicSession(tmp)
                verify["host_latency_ms"] = measure_latency(session.run, shape, threads=1, seed=seed).to_dict()
                verify["host_latency_ms"]["note"] = ("the segment chain on one fixed random input: the exit it takes "
                                                     "decides the time")
                images = to_tensor(data.x_test[:N_EXPECTED_IMAGES]).numpy()
                verify["host_latency_relative"] = measure_expected_relative(host, host_reference, session.run,
                                                                            images, seed=seed)
                verify["host_latency_relative"]["runtime"] = "segment chain (supernet.runtime), image by image"
                verify["exit_policy"] = record["exit_policy"]
                val_rates = np.asarray(policy["val_exit_rates"], dtype=np.float64)
                if len(val_rates) < host_exit.shape[1]:  # a cascade space, no scout here: its share (0) first
                    val_rates = np.concatenate([[0.0], val_rates])
                verify["recosted"] = {
                    "exit_rates": val_rates.tolist(), "host_expected_ms": float(val_rates @ host_exit[i]),
                    "latency_ms": float(val_rates @ device_exit[i]) if device_exit is not None else None,
                    "device": run.device,
                    "note": "expected latency with the exit rates measured at export (validation images, the "
                            "thresholds' own calibration data) instead of the predicted rates"}
                verify["predicted_exit_rates"] = [float(v) for v in str(row.exit_rates).split(";")]
                verify["predicted_static_accuracy"] = float(row.static_accuracy)
                verify["predicted_worst_latency_ms"] = float(row.worst_latency_ms)
            else:
                verify = verify_onnx(model, tmp / MODEL_FILE, data.x_test, data.y_test, eval_set, seed=seed)
                verify["host_latency_relative"] = measure_relative(host, host_reference, tmp / MODEL_FILE,
                                                                     seed=seed)
            verify["predicted_host"] = {
                "expected_ms": float(host_pred[i]), "static_ms": float(host_static[i]),
                "exit_ms": host_exit[i].tolist(), "exit_rates": rates[i] if len(rates[i]) == host_exit.shape[1]
                else None, "units": "ms at the host predictor's calibration speed, segment runtime, batch 1"}
            rel = verify["host_latency_relative"]
            rel["now_ms"] = rel["ratio"] * speed["reference_ms_now"]
            verify["host_speed"] = speed
            verify.update({
                "device": run.device,
                "predicted_latency_ms": float(row.latency_ms),
                "predicted_accuracy": float(row.accuracy),
                "predicted_host_latency_ms": float(host_pred[i]),
                "host_latency_predictor": host_how,
                "algorithm": str(row.algorithm),
                "arch": arch, "subnet_id": record["subnet_id"], "bn": bn, "seed": seed, "dynamic": dynamic,
            })
            VerifyRecord.model_validate(verify)
            write_json(tmp / VERIFY_FILE, verify)
            _replace_dir(tmp, root / record["subnet_id"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        out.append({"subnet_id": record["subnet_id"], "arch": arch, "folder": str(root / record["subnet_id"]),
                    "macs": record["macs"], "params": record["params"],
                    "predicted_accuracy": verify["predicted_accuracy"], "onnx_accuracy": verify["onnx_accuracy"],
                    "predicted_latency_ms": verify["predicted_latency_ms"],
                    "host_latency_ms": verify["host_latency_ms"]["median_ms"], "dynamic": dynamic,
                    "exit_rates": verify.get("exit_rates"),
                    "host_latency_relative_ms": verify["host_latency_relative"]["at_calibration_speed_ms"],
                    "max_abs_logit_diff": verify["max_abs_logit_diff"], "eval_set": eval_set})
    save_run(run_dir, run.updated(exported=[o["subnet_id"] for o in out], export_host_speed=speed))
    return out
