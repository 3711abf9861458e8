"""Accuracy data and predictor on the tiny supernet trained by the session fixture."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from predictors import (
    AccuracyData,
    AccuracyPredictor,
    PredictorCacheError,
    accuracy_data_path,
    collect_accuracy_data,
    kendall_tau,
    load_or_collect_accuracy,
)
from supernet.checkpoint import load_supernet, sha256
from supernet.data import ImageData
from supernet.errors import DatasetError
from supernet.evaluate import subnet_accuracy


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(tiny_supernet_path: Path) -> Iterator[None]:
    """Evaluate tiny nets on one thread: on busy cores, OpenMP spin-waits cost 30x the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def collected(tiny_supernet_path: Path, digits: ImageData) -> AccuracyData:
    model, _ = load_supernet(tiny_supernet_path)
    return collect_accuracy_data(model, digits, n_samples=60, n_ceiling=20, bn="recal", seed=0, n_recal_batches=2)


def test_collected_records(collected: AccuracyData, tiny_supernet_path: Path, digits: ImageData) -> None:
    space = collected.space
    subnets = collected.subnets()
    assert len(subnets) == 60 == len(set(subnets))
    assert subnets[:4] == [space.uniform(j) for j in range(4)]  # the uniform subnets come first
    assert [r["test_acc"] is not None for r in collected.records] == [True] * 20 + [False] * 40
    assert all(r["subnet_id"] == space.subnet_id(s) for r, s in zip(collected.records, subnets, strict=True))
    meta = collected.meta
    assert (meta["bn"], meta["split"], meta["n_recal_batches"], meta["seed"]) == ("recal", "val", 2, 0)
    assert meta["dataset"]["spec"] == "digits" and meta["space"] == space.to_dict()
    # a record is exactly what subnet_accuracy measures
    model, _ = load_supernet(tiny_supernet_path)
    r = collected.records[7]
    seeds = [subnet_accuracy(model, space.parse(r["arch"]), digits, split="val", bn="recal", n_batches=2, seed=k)
             for k in (0, 1)]
    assert r["val_acc_seeds"] == pytest.approx(seeds)  # k = 2 recalibrations (seeds 0 and 1), averaged
    assert r["val_acc"] == pytest.approx(sum(seeds) / 2)


def test_predictor_quality_is_finite_and_consistent(collected: AccuracyData, tiny_supernet_path: Path) -> None:
    model, _ = load_supernet(tiny_supernet_path)
    pred = AccuracyPredictor(model.config, seed=0).fit(collected.space, collected.records)
    q = pred.quality
    assert q["n_train"] == 48 and q["n_test"] == 12 and q["n_ceiling"] == 20
    assert -1 <= q["heldout_tau"] <= 1 and 0 <= q["heldout_rmse_points"] < 100
    assert q["model"] in q["cv_tau"] and q["cv_tau"][q["model"]] == max(q["cv_tau"].values())
    both = [(r["val_acc"], r["test_acc"]) for r in collected.records[:20]]
    assert q["noise_ceiling_tau"] == pytest.approx(kendall_tau([v for v, _ in both], [t for _, t in both]))
    assert q["noise_ceiling_tau"] == pytest.approx(collected.noise_ceiling_tau())
    y = pred.predict(collected.subnets())
    assert y.shape == (60,) and np.all((y >= 0) & (y <= 1))
    # same seed, same model and predictions
    again = AccuracyPredictor(model.config, seed=0).fit(collected.space, collected.records)
    np.testing.assert_array_equal(again.predict(collected.subnets()), y)


def test_predictor_learns_a_known_ranking(collected: AccuracyData) -> None:
    """On synthetic accuracies linear in the widths (no ties), the held-out ranking is nearly perfect."""
    space = collected.space
    weights = 4.0 ** np.arange(space.n_blocks) / 4.0 ** space.n_blocks  # a distinct value per subnet
    records = [{**r, "val_acc": 0.5 + 0.3 * float(np.dot(weights, space.width_fractions(s)))}
               for r, s in zip(collected.records, collected.subnets(), strict=True)]
    pred = AccuracyPredictor(seed=0, candidates=["ridge", "gbr"]).fit(space, records)
    assert pred.quality["heldout_tau"] > 0.9
    assert pred.quality["heldout_rmse_points"] < 0.5


def test_data_file_round_trip_and_corruption(collected: AccuracyData, tmp_path: Path) -> None:
    path = tmp_path / "x.accuracy.json"
    collected.save(path)
    back = AccuracyData.load(path)
    assert back.meta == collected.meta and back.records == collected.records
    doc = json.loads(path.read_text())
    for damage, text in [("truncated", path.read_text()[:100]),
                         ("version", json.dumps({**doc, "format_version": 99})),
                         ("accuracy", json.dumps({**doc, "records": [{**doc["records"][0], "val_acc": 7.0}]})),
                         ("arch", json.dumps({**doc, "records": [{**doc["records"][0], "arch": "w9-9"}]}))]:
        path.write_text(text)
        with pytest.raises(PredictorCacheError, match="delete it"):
            AccuracyData.load(path)
            pytest.fail(f"damage '{damage}' was not detected")


def test_accuracy_data_path() -> None:
    assert accuracy_data_path(Path("a/cifar10-cnn.safetensors")) == Path("a/cifar10-cnn.accuracy.json")


def test_load_or_collect_caches_beside_the_supernet(tiny_supernet_path: Path, digits: ImageData,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"
    shutil.copy(tiny_supernet_path, path)
    model, meta = load_supernet(path)
    with pytest.raises(DatasetError, match="pass --dataset"):
        load_or_collect_accuracy(path, model, meta, None)
    pred, acc = load_or_collect_accuracy(path, model, meta, digits, n_samples=20, bn="switchable")
    cache = tmp_path / "net.accuracy.json"
    assert cache.is_file() and acc.meta["supernet_sha256"] == sha256(path) and len(acc.records) == 20
    # second call: read from the cache, no data needed, same predictor
    pred2, acc2 = load_or_collect_accuracy(path, model, meta, None, bn="switchable")
    assert acc2.records == acc.records
    subnets = acc.subnets()
    np.testing.assert_array_equal(pred2.predict(subnets), pred.predict(subnets))
    # another BN mode or another supernet file (sha256 mismatch) is not served from this cache
    with pytest.raises(DatasetError):
        load_or_collect_accuracy(path, model, meta, None, bn="recal")
    doc = json.loads(cache.read_text())
    doc["meta"]["supernet_sha256"] = "0" * 64
    cache.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="no accuracy data"):
        load_or_collect_accuracy(path, model, meta, None, bn="switchable")
    cache.write_text("{")
    with pytest.raises(PredictorCacheError, match="corrupt"):
        load_or_collect_accuracy(path, model, meta, None, bn="switchable")


def test_extend_tops_up_to_exactly_what_one_larger_collection_measures(tiny_supernet_path: Path, digits: ImageData,
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"
    shutil.copy(tiny_supernet_path, path)
    model, meta = load_supernet(path)
    _, small = load_or_collect_accuracy(path, model, meta, digits, n_samples=12, n_ceiling=4, bn="recal", seed=3)
    # a search (extend off) keeps the cached 12 even when asked for more
    _, same = load_or_collect_accuracy(path, model, meta, digits, n_samples=20, n_ceiling=4, bn="recal", seed=3)
    assert same.records == small.records
    _, grown = load_or_collect_accuracy(path, model, meta, digits, n_samples=20, n_ceiling=4, bn="recal", seed=3,
                                        extend=True)
    direct = collect_accuracy_data(model, digits, n_samples=20, n_ceiling=4, bn="recal", seed=3)
    assert grown.records[:12] == small.records and grown.records == direct.records
    assert grown.meta["extended_from"]["n_samples"] == 12
    assert json.loads((tmp_path / "net.accuracy.json").read_text())["records"] == direct.records


def test_the_method_gene_is_no_feature_when_no_token_is_reduced() -> None:
    from supernet.vit import PRESETS as VIT

    config = VIT["cifar-vit"]
    space = config.space()
    pred = AccuracyPredictor(config)
    pred.space = space
    full = space.largest()
    assert full.method == 0 and set(full.tokens) == {len(space.token_choices) - 1}
    x = pred.features([full, space.replace(full, method=1)])
    assert np.array_equal(x[0], x[1])  # one network, one feature row
    cut = space.replace(full, tokens=(1, 1, 0, 0))
    y = pred.features([cut, space.replace(cut, method=1)])
    assert not np.array_equal(y[0], y[1])  # with tokens reduced, top-k and ToMe are different networks
