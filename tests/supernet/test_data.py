from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from supernet.data import augment, batches, check_matches, load_dataset
from supernet.errors import DatasetError, UnknownNameError


def _folder(root, n_per_class=6, size=8, classes=("a", "b")):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            arr = np.full((size, size, 3), (25 * i) % 256, np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_digits_splits_are_disjoint_and_fixed():
    a, b = load_dataset("digits"), load_dataset("digits", resolution=16)
    assert a.resolution == 8 and b.resolution == 16 and a.channels == 1
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert np.array_equal(a.y_val, load_dataset("digits").y_val)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() > 200


def test_imagefolder_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNNAS_CACHE", str(tmp_path / "cache"))
    _folder(tmp_path / "imgs", n_per_class=10)
    d = load_dataset(f"imagefolder:{tmp_path / 'imgs'}", val_size=2)
    assert d.classes == ("a", "b") and d.resolution == 8 and d.channels == 3
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 1
    d2 = load_dataset(f"imagefolder:{tmp_path / 'imgs'}", val_size=2)
    assert np.array_equal(d.x_train, d2.x_train)


def test_cifar10_binary_release_parsed_without_pickle(tmp_path):
    rng = np.random.default_rng(0)
    def write(name, n):
        rec = np.zeros((n, 3073), np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        rec[:, 1:] = rng.integers(0, 256, (n, 3072))
        (tmp_path / name).write_bytes(rec.tobytes())
        return rec
    recs = [write(f"data_batch_{i}.bin", 20) for i in range(1, 3)]
    write("test_batch.bin", 10)
    d = load_dataset(f"cifar10:{tmp_path}", val_size=5)
    assert d.resolution == 32 and d.channels == 3 and len(d.y_test) == 10 and len(d.y_train) == 35
    first = recs[0][0]
    img = first[1:].reshape(3, 32, 32).transpose(1, 2, 0)
    all_train = np.concatenate([d.x_train, d.x_val])
    assert any(np.array_equal(img, x) for x in all_train)


def test_npz_dataset(tmp_path):
    x = np.random.default_rng(0).random((30, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    d = load_dataset(f"npz:{tmp_path / 'd.npz'}", val_size=4)
    assert d.channels == 1 and d.num_classes == 3 and d.x_train.dtype == np.uint8


@pytest.mark.parametrize("spec, match", [
    ("cifar10:/does/not/exist", "not a CIFAR-10 folder"),
    ("imagefolder:/does/not/exist", "does not exist"),
    ("npz:/does/not/exist.npz", "does not exist"),
    ("cifar10", "needs a path"),
])
def test_bad_paths(spec, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset(spec)


def test_empty_folder_and_unknown_kind(tmp_path):
    (tmp_path / "cls").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        load_dataset("digit")


def test_shape_mismatch():
    with pytest.raises(DatasetError, match="expects"):
        check_matches(load_dataset("digits"), 3, 32, 10)


def test_augment_is_seeded_and_shape_preserving():
    x = torch.rand(4, 3, 8, 8)
    a = augment(x, torch.Generator().manual_seed(1), 1)
    b = augment(x, torch.Generator().manual_seed(1), 1)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_batches_cover_everything_in_eval_order():
    d = load_dataset("digits")
    ys = torch.cat([y for _, y in batches(d.x_val, d.y_val, 50)])
    assert torch.equal(ys, torch.from_numpy(d.y_val))
