"""Fixtures of the report tests: a private copy of the tiny supernet with its accuracy data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from predictors import load_or_collect_accuracy
from supernet.checkpoint import load_supernet
from supernet.data import ImageData


@pytest.fixture(scope="module")
def sn(tmp_path_factory: pytest.TempPathFactory, tiny_supernet_path: Path, digits: ImageData) -> Path:
    """A per-module copy of the tiny supernet with its accuracy data (switchable BN) cached beside it."""
    path = tmp_path_factory.mktemp("sn") / "supernet.safetensors"
    shutil.copy(tiny_supernet_path, path)
    model, meta = load_supernet(path)
    load_or_collect_accuracy(path, model, meta, digits, n_samples=32, bn="switchable", seed=0)
    return path
