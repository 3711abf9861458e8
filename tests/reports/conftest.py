"""Fixtures of the report tests: a real ViT search (tiny preset on digits, token stage trained) on jetson-orin."""

from __future__ import annotations

from pathlib import Path

import pytest

from supernet.data import ImageData
from supernet.train import TrainConfig, Trainer
from tests.cli import ok

VIT_DEVICE = "jetson-orin"  # the device of tests/reports/data/v2-jetson-orin, a CNN run: two families on one device


@pytest.fixture(scope="session")
def vit_search(tmp_path_factory: pytest.TempPathFactory, digits: ImageData) -> Path:
    """A ViT run folder: the tiny ViT (one token-reduction position, keep ratios 0.5/0.75/1.0, top-k and ToMe)
    searched by nsga2 for 24 evaluations on jetson-orin with exits off (seed 0: a front of several subnets, the
    most accurate one reducing tokens), the fastest and the most accurate exported."""
    root = tmp_path_factory.mktemp("vit_search")
    Trainer(TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(2, 1), token_epochs=1,
                        exit_epochs=1, exit_route="joint", optimizer="adamw", lr=3e-3, weight_decay=0.05,
                        warmup_epochs=1, n_random=1, seed=0), root / "sn", data=digits).run()
    out = root / "vit-jetson"
    ok(["search", "--supernet", str(root / "sn"), "--device", VIT_DEVICE, "--budget", "24", "--top", "2",
        "--algorithm", "nsga2", "--dataset", "digits", "--seed", "0", "--exits", "off", "--out", str(out)])
    return out
