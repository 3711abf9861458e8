"""The ViT family through the whole pipeline: train with a token stage, search on a device, export verified ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supernet.data import ImageData
from supernet.train import TrainConfig, Trainer
from tests.cli import fails_cleanly, ok


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory, digits: ImageData) -> Path:
    out = tmp_path_factory.mktemp("vit_run")
    Trainer(TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(2, 1), token_epochs=1,
                        exit_epochs=1, exit_route="joint", optimizer="adamw", lr=3e-3, weight_decay=0.05,
                        warmup_epochs=1, n_random=1, seed=0), out, data=digits).run()
    return out


def test_vit_search_exports_verified_subnets_with_their_token_schedules(vit_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    ok(["search", "--supernet", str(vit_run), "--device", "jetson-orin", "--budget", "60", "--top", "2",
        "--algorithm", "nsga2", "--dataset", "digits", "--seed", "0", "--out", str(out)])
    run = json.loads((out / "run.json").read_text())
    assert run["supernet"]["family"] == "vit"
    archs = [json.loads(p.read_text()) for p in sorted((out / "subnets").glob("*/arch.json"))]
    assert len(archs) == 2
    for arch in archs:
        assert arch["family"] == "vit" and "_h" in arch["arch"] and "_m" in arch["arch"]
        tokens = arch["widths"]["tokens_per_block"]
        assert len(tokens) == 2 and tokens[0][0] == 17 and tokens[-1][1] == 1  # 16 patches + CLS in, CLS out
        assert arch["pytorch"]["class"] == "supernet.static_vit.StaticViT"
        verify = json.loads((out / "subnets" / arch["subnet_id"] / arch["files"]["verify"]).read_text())
        assert verify["max_abs_logit_diff"] <= verify["tolerance"] == 1e-4  # onnxruntime agrees with PyTorch
        if verify.get("dynamic"):
            assert verify["same_exit_as_pytorch"] == 1.0


def test_token_epochs_on_a_cnn_is_a_one_line_error(tmp_path: Path) -> None:
    fails_cleanly(["train", "--preset", "tiny", "--dataset", "digits", "--epochs", "1", "--token-epochs", "1",
                   "--out", str(tmp_path / "x")], "no token-reduction positions")
    assert not (tmp_path / "x").exists()


def test_token_corner_without_a_token_stage_is_a_one_line_error(tmp_path: Path) -> None:
    fails_cleanly(["train", "--family", "vit", "--preset", "tiny", "--dataset", "digits", "--epochs", "1",
                   "--token-corner", "--out", str(tmp_path / "x")], "add --token-epochs")
    assert not (tmp_path / "x").exists()
