from __future__ import annotations

import numpy as np
import pytest

from supernet.checkpoint import load_supernet
from supernet.errors import CheckpointError, DatasetError
from supernet.pretrained import (
    DEFAULT_SUPERNET,
    load_default_data,
    resolve_supernet,
    sample_path,
    save_sample,
)


def test_sample_round_trip_and_fallback(tmp_path, tiny_supernet_path, digits):
    import shutil

    sn = tmp_path / "net.safetensors"
    shutil.copy(tiny_supernet_path, sn)
    _, meta = load_supernet(sn)
    meta = {**meta, "dataset": {**meta["dataset"], "spec": "npz:/no/such/file.npz"}}
    with pytest.raises(DatasetError, match="no evaluation sample"):
        load_default_data(meta, None, sn)
    save_sample(sample_path(sn), digits, n_test=50, n_calib=30)
    assert sample_path(sn).name == "net.sample.npz"
    data, note = load_default_data(meta, None, sn)
    assert "sample" in note and len(data.y_test) == 50 and len(data.y_train) == 30
    assert np.isin(data.y_test, digits.y_test).all()


def test_shipped_default_loads_when_present():
    if not DEFAULT_SUPERNET.exists():
        with pytest.raises(CheckpointError, match="missing"):
            resolve_supernet(None)
        return
    model, meta, path = resolve_supernet(None)
    assert meta["dataset"]["spec"].startswith("cifar10") and model.config.resolution == 32
    assert path.stat().st_size <= 10 * 2**20
    assert sample_path(path).stat().st_size <= 3 * 2**20  # 400 test, 256 training and 300 validation images
    assert model.config.exit_blocks == (1, 4) and len(model.exits) == 2  # shipped with exit heads
    with np.load(sample_path(path), allow_pickle=False) as z:
        assert len(z["y_val"]) == 300 and len(z["y_test"]) == 400


def test_shipped_vit_loads_with_its_data_and_scores_on_its_sample():
    from predictors.accuracy import AccuracyData, accuracy_data_path
    from supernet.evaluate import accuracy
    from supernet.pretrained import SHIPPED, load_sample

    model, meta, path = resolve_supernet("vit")
    assert path == SHIPPED["vit"] and meta["family"] == "vit" and model.space.family == "vit"
    assert path.stat().st_size <= 10 * 2**20 and sample_path(path).stat().st_size <= 3 * 2**20
    assert model.config.exit_blocks == (1, 3) and model.space.token_methods == ("topk", "tome")
    data = AccuracyData.load(accuracy_data_path(path))
    assert data.meta["family"] == "vit" and len(data.records) >= 100
    sample = load_sample(sample_path(path), meta["dataset"]["spec"])
    acc = accuracy(model, sample.x_test, sample.y_test, model.space.largest())
    assert acc >= 0.6  # CIFAR-10: chance is 0.1; the full test set is in the README
