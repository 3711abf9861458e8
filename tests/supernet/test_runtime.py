"""The segment chain (supernet.stages), its export (predictors.onnx_chain) and the runtime (supernet.runtime):
per-sample exits equal PyTorch's, batch compaction equals batch 1, the runtime stands alone, bad manifests
and inputs are one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from predictors.onnx_chain import exit_names, export_chain, static_manifest
from predictors.onnx_io import export_onnx
from supernet.cnn import PRESETS as CNN_PRESETS
from supernet.cnn import CNNSupernet
from supernet.early_exit import CascadeCNN, EarlyExitCNN, exit_score
from supernet.registry import extract
from supernet.runtime import DynamicSession, RuntimeInputError, read_manifest
from supernet.stages import build_stages, run_stages
from supernet.vit import PRESETS as VIT_PRESETS
from supernet.vit import ViTSupernet
from tests.nets import randomise_bn

RUNTIME = Path(__file__).resolve().parents[2] / "supernet" / "runtime.py"


def _cnn(seed: int = 0) -> CNNSupernet:
    torch.manual_seed(seed)
    return randomise_bn(CNNSupernet(CNN_PRESETS["tiny"]))


def _vit(seed: int = 0) -> ViTSupernet:
    torch.manual_seed(seed)
    return randomise_bn(ViTSupernet(VIT_PRESETS["tiny"]))


def _images(net: torch.nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    c = net.config
    return torch.rand(n, c.in_channels, c.resolution, c.resolution, generator=torch.Generator().manual_seed(seed))


def _median_thresholds(model: torch.nn.Module, mask: tuple[int, ...], x: torch.Tensor) -> list[float | None]:
    """Each enabled exit's median confidence on ``x``: about half the samples still going leave there."""
    with torch.no_grad():
        logits = model.forward_all(x)
    return [float(exit_score(logits[e], "confidence").median()) if bit else None for e, bit in enumerate(mask)]


def _policy(model, mask, thresholds, scout=None, scout_threshold=None):
    ee = EarlyExitCNN(model, mask, [math.inf if t is None else t for t in thresholds])
    if scout is not None:
        ee = CascadeCNN(scout, ee, scout_threshold)
    return ee


@pytest.mark.parametrize("mask", [(1, 0), (0, 1), (1, 1)])
def test_cnn_chain_routes_every_sample_as_pytorch(mask):
    net = _cnn()
    sub = net.space.sample(np.random.default_rng(3))
    model = extract(net, sub)
    x = _images(net, 64)
    th = _median_thresholds(model, mask, x)
    stages = build_stages(model, mask, th)
    assert [s.name for s in stages] == [*(f"segment{k}" for k in range(sum(mask))), "final"]
    logits, taken = run_stages(stages, x)
    ref_logits, ref_taken = _policy(model, mask, th).per_sample(model.forward_all(x))
    assert torch.equal(taken, ref_taken)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    assert len(set(taken.tolist())) == 1 + sum(mask)  # every active exit and the final classifier are used


def test_exits_without_a_finite_threshold_are_not_cut():
    net = _cnn()
    model = extract(net, net.space.largest())
    stages = build_stages(model, (1, 1), [math.inf, 0.3])
    assert [s.name for s in stages] == ["segment0", "final"] and stages[0].head == 1
    assert build_stages(model, (0, 0), [None, None])[0].inputs == ("image",)


def _export(stages, x, folder: Path, n_exits: int, cascade: bool = False) -> DynamicSession:
    export_chain(stages, x[:1], folder, normalisation={"inside_model": True}, names=exit_names(n_exits, cascade),
                 classes=[str(i) for i in range(10)])
    return DynamicSession(folder)


def _check_runtime(sess: DynamicSession, x: torch.Tensor, ref_logits: torch.Tensor, ref_taken: torch.Tensor) -> None:
    xn = x.numpy()
    one = [sess.run(xn[i: i + 1]) for i in range(len(xn))]
    logits = np.concatenate([o[0] for o in one])
    taken = np.concatenate([o[1] for o in one])
    np.testing.assert_array_equal(taken, ref_taken.numpy())
    np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=0, atol=1e-4)
    for batch in (7, 32, len(xn)):  # compaction: per sample, exactly the batch-1 exit, logits within 1e-5
        got = [sess.run(xn[i: i + batch]) for i in range(0, len(xn), batch)]
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), taken)
        np.testing.assert_allclose(np.concatenate([g[0] for g in got]), logits, rtol=0, atol=1e-5)


def test_exported_cnn_chain_equals_pytorch_at_batch_1_and_compacted(tmp_path):
    net = _cnn(1)
    sub = net.space.sample(np.random.default_rng(5))
    model = extract(net, sub)
    x = _images(net, 64, seed=2)
    th = _median_thresholds(model, (1, 1), x)
    sess = _export(build_stages(model, (1, 1), th), x, tmp_path, 2)
    assert sess.n_stages == 3 and sess.exit_names == ["exit0", "exit1", "final"]
    _check_runtime(sess, x, *_policy(model, (1, 1), th).per_sample(model.forward_all(x)))


def test_cascade_scout_is_the_first_stage(tmp_path):
    net = _cnn(2)
    space = dataclasses.replace(net.space, n_cascade=1)
    main = net.space.largest()
    model, scout = extract(net, main), extract(net, space.scout(dataclasses.replace(main, cascade=1)))
    x = _images(net, 64, seed=4)
    th = _median_thresholds(model, (0, 1), x)
    with torch.no_grad():
        st = float(exit_score(scout(x), "confidence").median())
    stages = build_stages(model, (0, 1), th, scout=scout, scout_threshold=st)
    assert [s.name for s in stages] == ["scout", "segment0", "final"]
    assert [s.exit.index for s in stages] == [0, 2, 3]  # 0 = scout, 1 + e = exit e, 1 + n = final
    cascade = _policy(model, (0, 1), th, scout, st)
    ref = cascade.per_sample(cascade.forward_all(x))
    sess = _export(stages, x, tmp_path, 2, cascade=True)
    assert sess.exit_names == ["scout", "exit0", "exit1", "final"]
    _check_runtime(sess, x, *ref)


def test_vit_chain_with_tome_merging_carries_token_sizes_across_cuts(tmp_path):
    net = _vit()
    space = net.space
    base = space.sample(np.random.default_rng(0))
    text = space.format(base)
    # the strongest ToMe schedule (sizes tracked across both exit cuts), every exit on
    sub = space.parse(text.split("_t")[0].replace("_x00", "_x11").replace("_x01", "_x11").replace("_x10", "_x11")
                      + "_t" + "-".join(["0"] * len(base.tokens)) + "_m1")
    model = extract(net, sub)
    x = _images(net, 48, seed=6)
    th = _median_thresholds(model, sub.exits, x)
    stages = build_stages(model, sub.exits, th)
    assert len(stages) == 1 + sum(sub.exits)
    ref = _policy(model, sub.exits, th).per_sample(model.forward_all(x))
    logits, taken = run_stages(stages, x)
    assert torch.equal(taken, ref[1])
    _check_runtime(_export(stages, x, tmp_path, len(sub.exits)), x, *ref)


def test_static_export_is_a_chain_of_one_stage(tmp_path):
    net = _cnn()
    model = extract(net, net.space.smallest())
    x = _images(net, 8)
    export_onnx(model, x[:1], tmp_path / "model.onnx")
    static_manifest(tmp_path, "model.onnx", tuple(x.shape), normalisation={}, classes=[], n_blocks=4)
    logits, taken = DynamicSession(tmp_path).run(x.numpy())
    np.testing.assert_allclose(logits, model(x).detach().numpy(), rtol=0, atol=1e-4)
    assert taken.tolist() == [0] * 8


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = _cnn(3)
    model = extract(net, net.space.largest())
    x = _images(net, 16)
    folder = tmp_path_factory.mktemp("chain")
    _export(build_stages(model, (1, 1), _median_thresholds(model, (1, 1), x)), x, folder, 2)
    return folder


def test_loading_an_export_prints_no_warning(chain_dir):
    """onnxruntime at its default log level (warnings on) prints nothing for any stage: no unused initializer."""
    code = ("import onnxruntime as ort, sys, json, pathlib\n"
            "d = pathlib.Path(sys.argv[1]); m = json.loads((d / 'manifest.json').read_text())\n"
            "for st in m['stages']:\n"
            "    ort.InferenceSession(str(d / st['file']), providers=['CPUExecutionProvider'])\n"
            "print('loaded', len(m['stages']))\n")
    res = subprocess.run([sys.executable, "-c", code, str(chain_dir)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "loaded 3"
    assert res.stderr.strip() == ""


def test_runtime_runs_alone_with_numpy_and_onnxruntime_only(chain_dir, tmp_path):
    """Copied on its own, the runtime runs an export with torch, pandas and every dynnas package unimportable."""
    shutil.copy(RUNTIME, tmp_path / "runtime.py")
    code = ("import sys\n"
            "for name in ('torch', 'pandas', 'supernet', 'predictors', 'nas', 'reports', 'hw_profiles', 'sklearn'):\n"
            "    sys.modules[name] = None\n"
            "import numpy as np\n"
            "from runtime import DynamicSession\n"
            "s = DynamicSession(sys.argv[1])\n"
            "logits, taken = s.run(np.zeros((5, 1, 8, 8), np.float32))\n"
            "print(logits.shape, taken.tolist(), sorted(m for m in sys.modules if m in ('torch', 'pandas')))\n")
    res = subprocess.run([sys.executable, "-c", code, str(chain_dir)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shape, rest = res.stdout.strip().split(")", 1)
    assert shape == "(5, 10" and len(json.loads(rest.split("]")[0].strip() + "]")) == 5


def _edit(folder: Path, tmp_path: Path, change) -> Path:
    dst = tmp_path / "edited"
    shutil.copytree(folder, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    change(doc, dst)
    (dst / "manifest.json").write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize(("change", "message"), [
    (lambda d, p: (p / d["stages"][1]["file"]).unlink(), "is missing; copy the whole export folder"),
    (lambda d, p: d.update(format_version=7), "manifest version 7"),
    (lambda d, p: d["stages"][0]["exit"].update(threshold=1.5), r"outside the confidence score's range \[0.0, 1.0\]"),
    (lambda d, p: d["stages"][0]["exit"].update(threshold=float("nan")), "outside the confidence score's range"),
    (lambda d, p: d["stages"][0]["exit"].update(criterion="margin"), "exit criterion 'margin'; known"),
    (lambda d, p: d["stages"][1].update(inputs=["hidden9"]), "reads 'hidden9' before any stage writes it"),
    (lambda d, p: d["stages"][0].update(file="../escape.onnx"), "outside its folder"),
    (lambda d, p: d.update(format="something-else"), "not a 'dynnas-segments' manifest"),
])
def test_bad_manifests_are_one_line_errors(chain_dir, tmp_path, change, message):
    bad = _edit(chain_dir, tmp_path, change)
    with pytest.raises(RuntimeInputError, match=message) as err:
        DynamicSession(bad)
    assert "\n" not in str(err.value)


def test_missing_manifest_and_truncated_manifest(chain_dir, tmp_path):
    with pytest.raises(RuntimeInputError, match="has no manifest.json"):
        read_manifest(tmp_path)
    dst = tmp_path / "cut"
    shutil.copytree(chain_dir, dst)
    text = (dst / "manifest.json").read_text()
    (dst / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(RuntimeInputError, match="unreadable manifest.json"):
        read_manifest(dst)


@pytest.mark.parametrize(("x", "message"), [
    (np.zeros((2, 1, 8, 8), np.float64), "must be a float32 numpy array"),
    (np.zeros((2, 3, 8, 8), np.float32), r"must have shape \(N, 1, 8, 8\)"),
    (np.zeros((1, 8, 8), np.float32), r"must have shape \(N, 1, 8, 8\)"),
    (np.zeros((0, 1, 8, 8), np.float32), "N >= 1"),
    ([[0.0]], "must be a float32 numpy array"),
])
def test_bad_inputs_are_one_line_errors(chain_dir, x, message):
    with pytest.raises(RuntimeInputError, match=message):
        DynamicSession(chain_dir).run(x)


def test_openvino_engine_agrees_or_names_its_install(chain_dir):
    x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    try:
        import openvino  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeInputError, match="pip install openvino"):
            DynamicSession(chain_dir, engine="openvino")
        return
    ref_logits, ref_taken = DynamicSession(chain_dir).run(x)
    ov = DynamicSession(chain_dir, engine="openvino")
    for batch in (1, 16):
        got = [ov.run(x[i: i + batch]) for i in range(0, 16, batch)]
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), ref_taken)
        np.testing.assert_allclose(np.concatenate([g[0] for g in got]), ref_logits, rtol=0, atol=1e-4)
