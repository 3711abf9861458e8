"""Check an exported ONNX subnet against its PyTorch original, then measure it with onnxruntime.

Verification runs every image of the evaluation set through both models and compares the raw
logits: the largest absolute difference must stay within :data:`TOLERANCE`, otherwise
:class:`ExportVerificationError` is raised. The same pass gives the onnxruntime accuracy, so the
accuracy a user deploys is measured on the deployed artifact, not on the PyTorch model.
Host latency is then measured with onnxruntime: batch 1, one intra-op thread, warm-up, then the
median and the 10th/90th percentiles of at least 50 timed runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from predictors.onnx_io import INPUT_NAME, OUTPUT_NAME, measure_latency, run_onnx, session
from supernet.data import to_tensor
from supernet.errors import ConfigError, DynnasError

TOLERANCE = 1e-4  # largest allowed |onnxruntime - PyTorch| logit difference (fp32 on CPU)
MIN_REPEATS = 50
__all__ = ["INPUT_NAME", "OUTPUT_NAME", "TOLERANCE", "ExportVerificationError", "check_self_contained",
           "compare_logits", "verify_onnx"]


class ExportVerificationError(DynnasError):
    """An exported ONNX model does not reproduce its PyTorch original (or is not self-contained)."""


# ---- checks --------------------------------------------------------------------------------
def check_self_contained(path: Path) -> None:
    """Raise unless ``path`` is a valid ONNX file holding every weight itself (no external data)."""
    path = Path(path)
    stray = sorted(p.name for p in path.parent.iterdir() if p.suffix == ".data" or p.name.endswith(".onnx.data"))
    if stray:
        raise ExportVerificationError(f"ONNX export '{path}' left external weight files {stray}; the model must be one "
                                      "self-contained file: re-export with embedded weights.")
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ExportVerificationError(f"ONNX model '{path}' refers to external data for {len(external)} initializers "
                                      f"(e.g. '{external[0]}'); re-export with embedded weights.")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportVerificationError(f"ONNX model '{path}' is invalid ({str(e).splitlines()[0][:120]}); "
                                      "re-export it.") from None


# ---- verification --------------------------------------------------------------------------
@torch.no_grad()
def compare_logits(model: nn.Module, onnx_path: Path, x: np.ndarray, y: np.ndarray, *,
                   batch_size: int = 500) -> dict[str, Any]:
    """Run ``x`` (NHWC uint8) through PyTorch and onnxruntime; logit difference and both accuracies."""
    model = model.eval()
    sess = session(Path(onnx_path), threads=1)
    dims = sess.get_inputs()[0].shape
    if isinstance(dims[0], int):  # a model exported with a fixed batch size
        batch_size = dims[0]
    worst, ort_hits, pt_hits, agree = 0.0, 0, 0, 0
    for i in range(0, len(y), batch_size):
        xb = to_tensor(x[i : i + batch_size])
        ref = model(xb).numpy()
        got = run_onnx(sess, xb.numpy(), batch_size=batch_size)
        if got.shape != ref.shape:
            raise ExportVerificationError(f"ONNX model '{onnx_path}' returns logits of shape {got.shape} but PyTorch "
                                          f"returns {ref.shape}; re-export it.")
        diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
        worst = diff if not math.isfinite(diff) else max(worst, diff)
        if not math.isfinite(worst):
            break
        yb = y[i : i + batch_size]
        ort_hits += int((got.argmax(1) == yb).sum())
        pt_hits += int((ref.argmax(1) == yb).sum())
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
    n = max(1, len(y))
    return {"max_abs_logit_diff": worst, "onnx_accuracy": ort_hits / n, "torch_accuracy": pt_hits / n,
            "prediction_agreement": agree / n, "n_images": int(len(y))}


def verify_onnx(model: nn.Module, onnx_path: Path, x: np.ndarray, y: np.ndarray, eval_set: str, *,
                tolerance: float = TOLERANCE, repeats: int = MIN_REPEATS, warmup: int = 10,
                seed: int = 0) -> dict[str, Any]:
    """Verify ``onnx_path`` reproduces ``model`` on ``(x, y)`` and measure it; the ``verify.json`` record.

    Raises :class:`ExportVerificationError` when the file is not self-contained or valid, when any
    logit is not finite, or when the largest logit difference exceeds ``tolerance``.
    """
    if repeats < MIN_REPEATS:
        raise ConfigError(f"host latency needs at least {MIN_REPEATS} timed runs, but got repeats={repeats}.")
    onnx_path = Path(onnx_path)
    check_self_contained(onnx_path)
    cmp = compare_logits(model, onnx_path, x, y)
    diff = cmp["max_abs_logit_diff"]
    if not math.isfinite(diff):
        raise ExportVerificationError(f"ONNX model '{onnx_path}' or its PyTorch original gives non-finite logits on "
                                      f"{eval_set}; the weights are corrupt: retrain or re-extract the subnet.")
    if diff > tolerance:
        raise ExportVerificationError(f"ONNX model '{onnx_path}' disagrees with PyTorch on {eval_set}: max |logit "
                                      f"difference| = {diff:.3g} > {tolerance:g}; the export is broken: re-export it.")
    shape = (1, *x.shape[3:], *x.shape[1:3])  # NHWC images → NCHW batch of one
    host = measure_latency(onnx_path, shape, threads=1, warmup=warmup, repeats=repeats, seed=seed).to_dict()
    return {
        **cmp,
        "tolerance": tolerance,
        "eval_set": eval_set,
        "host_latency_ms": {**host, "batch": 1, "warmup": warmup, "runtime": f"onnxruntime {ort.__version__} CPU"},
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "torch": torch.__version__},
    }


@torch.no_grad()
def verify_early_exit(ee: nn.Module, onnx_path: Path, all_exits_path: Path, x: np.ndarray, y: np.ndarray,
                      eval_set: str, *, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Verify an early-exit export sample by sample; the ``verify.json`` record (no latency).

    Every image runs at batch 1 through ``model.onnx`` (nested ``If``): it must take the same exit
    as the PyTorch policy (:meth:`supernet.early_exit.EarlyExitCNN.per_sample`) and its logits must
    agree within ``tolerance``. ``model.all_exits.onnx`` is checked on whole batches against every
    head's PyTorch logits. Raises :class:`ExportVerificationError` on any disagreement.
    """
    for p in (onnx_path, all_exits_path):
        check_self_contained(Path(p))
    ee = ee.eval()
    sess = session(Path(onnx_path), threads=1)
    multi = session(Path(all_exits_path), threads=1)
    in_name = sess.get_inputs()[0].name
    n_exits = int(ee.n_exits)
    worst, worst_all, same_exit, hits, static_hits = 0.0, 0.0, 0, 0, 0
    hist = np.zeros(n_exits + 1, dtype=np.int64)
    for i in range(0, len(y), 250):
        xb = to_tensor(x[i: i + 250])
        heads = ee.forward_all(xb)
        ref_logits, ref_exit = ee.per_sample(heads)
        outs = multi.run(None, {multi.get_inputs()[0].name: xb.numpy()})
        for got, want in zip(outs, heads, strict=True):
            d = np.abs(got.astype(np.float64) - want.numpy())
            worst_all = math.inf if not np.all(np.isfinite(d)) else max(worst_all, float(d.max()))
        for j in range(len(xb)):
            logits, taken = sess.run(None, {in_name: xb[j: j + 1].numpy()})
            e = int(np.asarray(taken).reshape(-1)[0])
            same_exit += int(e == int(ref_exit[j]))
            d = np.abs(logits.astype(np.float64) - ref_logits[j: j + 1].numpy())
            worst = math.inf if not np.all(np.isfinite(d)) else max(worst, float(d.max()))
            hist[min(max(e, 0), n_exits)] += 1
            hits += int(int(np.argmax(logits)) == int(y[i + j]))
        static_hits += int((heads[-1].argmax(1).numpy() == y[i: i + 250]).sum())
    n = max(1, len(y))
    if not (math.isfinite(worst) and math.isfinite(worst_all)):
        raise ExportVerificationError(f"early-exit model '{onnx_path}' gives non-finite logits on {eval_set}; "
                                      "the weights are corrupt: retrain or re-extract the subnet.")
    if same_exit != len(y):
        raise ExportVerificationError(f"early-exit model '{onnx_path}' took another exit than PyTorch on "
                                      f"{len(y) - same_exit} of {len(y)} images of {eval_set}; the export is broken: "
                                      "re-export it.")
    if max(worst, worst_all) > tolerance:
        raise ExportVerificationError(f"early-exit model '{onnx_path}' disagrees with PyTorch on {eval_set}: max "
                                      f"|logit difference| = {max(worst, worst_all):.3g} > {tolerance:g}; re-export it.")
    return {
        "max_abs_logit_diff": worst, "max_abs_logit_diff_all_exits": worst_all, "tolerance": tolerance,
        "same_exit_as_pytorch": same_exit / n, "onnx_accuracy": hits / n, "static_accuracy": static_hits / n,
        "exit_histogram": hist.tolist(), "exit_rates": (hist / n).tolist(), "n_images": int(len(y)),
        "eval_set": eval_set, "batch": 1,
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "torch": torch.__version__},
    }


@torch.no_grad()
def verify_chain(ee: nn.Module, folder: Path, x: np.ndarray, y: np.ndarray, eval_set: str, *,
                 tolerance: float = TOLERANCE, batch: int = 32) -> dict[str, Any]:
    """Verify a segment-chain export (``manifest.json`` + stages) through :class:`supernet.runtime.DynamicSession`.

    At batch 1 every image must take the same exit as the PyTorch policy (``ee.per_sample``) with logits
    within ``tolerance``; at ``batch`` (batch compaction) every sample must get exactly its batch-1
    exit and logits within ``tolerance`` of them. Raises :class:`ExportVerificationError` otherwise.
    """
    from supernet.runtime import DynamicSession

    sess = DynamicSession(folder)
    xs = to_tensor(x)
    heads = [torch.cat(parts) for parts in zip(*(ee.forward_all(xs[i: i + 250]) for i in range(0, len(xs), 250)),
                                                strict=True)] if len(xs) else []
    ref_logits, ref_exit = ee.per_sample(heads)
    xn = np.ascontiguousarray(xs.numpy())
    one = [sess.run(xn[i: i + 1]) for i in range(len(xn))]
    logits = np.concatenate([o[0] for o in one])
    taken = np.concatenate([o[1] for o in one])
    diff = np.abs(logits.astype(np.float64) - ref_logits.numpy())
    worst = float(diff.max()) if np.all(np.isfinite(diff)) else math.inf
    same = int((taken == ref_exit.numpy()).sum())
    batched = [sess.run(xn[i: i + batch]) for i in range(0, len(xn), batch)]
    blogits = np.concatenate([b[0] for b in batched])
    btaken = np.concatenate([b[1] for b in batched])
    batch_diff = float(np.abs(blogits - logits).max()) if len(xn) else 0.0
    if not math.isfinite(worst):
        raise ExportVerificationError(f"segment export '{folder}' gives non-finite logits on {eval_set}; the weights "
                                      "are corrupt: retrain or re-extract the subnet.")
    if same != len(y):
        raise ExportVerificationError(f"segment export '{folder}' took another exit than PyTorch on {len(y) - same} of "
                                      f"{len(y)} images of {eval_set}; the export is broken: re-export it.")
    if worst > tolerance:
        raise ExportVerificationError(f"segment export '{folder}' disagrees with PyTorch on {eval_set}: max |logit "
                                      f"difference| = {worst:.3g} > {tolerance:g}; re-export it.")
    if not np.array_equal(btaken, taken) or batch_diff > tolerance:
        raise ExportVerificationError(f"segment export '{folder}' at batch {batch} differs from batch 1 on {eval_set} "
                                      f"(exits equal: {np.array_equal(btaken, taken)}, max |logit difference| "
                                      f"{batch_diff:.3g}); the runtime's batch compaction is broken.")
    n = max(1, len(y))
    hist = np.bincount(taken, minlength=len(heads)) if len(heads) else np.zeros(0, np.int64)
    return {"max_abs_logit_diff": worst, "same_exit_as_pytorch": same / n, "batch_check": batch,
            "max_abs_logit_diff_batch_vs_1": batch_diff, "onnx_accuracy": float((logits.argmax(1) == y).mean()),
            "exit_histogram": hist.tolist(), "exit_rates": (hist / n).tolist(), "n_images": int(len(y)),
            "stages": sess.n_stages, "runtime": "supernet.runtime.DynamicSession (onnxruntime)"}
