"""Shared fixtures: a tiny supernet trained on digits once per test session (a few seconds), and a
private dynnas cache folder so tests never read or write the user's ``~/.cache/dynnas``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from supernet.data import ImageData, load_dataset
from supernet.train import TrainConfig, Trainer

torch.set_num_threads(1)  # tests are tiny; one thread avoids oversubscribing a shared CPU


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$DYNNAS_CACHE`` for the whole session, set before any other fixture runs (host latency is
    measured once per session)."""
    folder = tmp_path_factory.getbasetemp() / "dynnas-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DYNNAS_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def digits() -> ImageData:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, digits: ImageData) -> Path:
    """Run folder of a tiny CNN supernet (progressive shrinking, then 2 epochs of exit heads on the frozen
    backbone, on digits); holds supernet.safetensors."""
    out = tmp_path_factory.mktemp("tiny_run")
    Trainer(TrainConfig(preset="tiny", dataset="digits", stage_epochs=(2, 1, 1, 1), exit_epochs=2, lr=0.2, seed=0), out,
            data=digits).run()
    return out


@pytest.fixture(scope="session")
def tiny_supernet_path(tiny_run: Path) -> Path:
    return tiny_run / "supernet.safetensors"


@pytest.fixture(scope="module")
def sn(tmp_path_factory: pytest.TempPathFactory, tiny_supernet_path: Path, digits: ImageData) -> Path:
    """A per-module copy of the tiny supernet with its accuracy data (switchable BN) cached beside it."""
    import shutil

    from predictors import load_or_collect_accuracy
    from supernet.checkpoint import load_supernet

    path = tmp_path_factory.mktemp("sn") / "supernet.safetensors"
    shutil.copy(tiny_supernet_path, path)
    model, meta = load_supernet(path)
    load_or_collect_accuracy(path, model, meta, digits, n_samples=32, bn="switchable", seed=0)
    return path
