"""Datasets as uint8 arrays, and seeded batch iteration with CIFAR-style augmentation.

A dataset is named by a spec string at the edge (CLI): ``digits``, ``cifar10:PATH``,
``imagefolder:PATH`` or ``npz:PATH``. Inside, an :class:`ImageData` of NHWC uint8 arrays flows.
The validation split is carved from train with a fixed seed (``split_seed``), independent of
the training seed, so every run of a dataset sees the same validation images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from supernet.errors import DatasetError, unknown
from supernet.files import atomic_write, cache_root

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True, eq=False)
class ImageData:
    """Train/val/test splits as NHWC uint8 images and int64 labels."""

    spec: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        x = self.x_train.reshape(-1, self.channels).astype(np.float64) / 255.0
        return tuple(float(v) for v in x.mean(0)), tuple(float(max(v, 1e-3)) for v in x.std(0))

    def summary(self) -> dict[str, object]:
        return {"spec": self.spec, "classes": list(self.classes), "resolution": self.resolution,
                "channels": self.channels, "train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def check_matches(data: ImageData, in_channels: int, resolution: int, num_classes: int) -> None:
    """Raise :class:`DatasetError` when the data cannot feed a network of this shape."""
    got = (data.channels, data.resolution, data.num_classes)
    want = (in_channels, resolution, num_classes)
    if got != want:
        raise DatasetError(
            f"dataset '{data.spec}' has (channels, resolution, classes) = {got} but the network expects {want}; "
            "use a matching dataset or train a supernet for this one."
        )


# ---- loaders -------------------------------------------------------------------------------
Loader = Callable[[str, int | None], tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[str, ...]]]
LOADERS: dict[str, Loader] = {}


def _register(name: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return wrap


def _resize(x: np.ndarray, resolution: int) -> np.ndarray:
    if x.shape[1] == resolution and x.shape[2] == resolution:
        return x
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@_register("digits")
def _load_digits(path: str, resolution: int | None):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)[..., None]
    return _resize(x, resolution or 8), d.target.astype(np.int64), None, None, tuple(str(i) for i in range(10))


def _read_images(files: list[Path], resolution: int | None) -> np.ndarray:
    from PIL import Image

    out = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if resolution and im.size != (resolution, resolution):
                im = im.resize((resolution, resolution), Image.BILINEAR)
            out.append(np.asarray(im, dtype=np.uint8))
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DatasetError(f"images have different sizes {sorted(shapes)[:3]}; pass --resolution to resize them.")
    return np.stack(out)


def _class_folder(root: Path, resolution: int | None, classes: tuple[str, ...] | None = None):
    if not root.is_dir():
        raise DatasetError(f"folder '{root}' does not exist; check the dataset path.")
    names = classes or tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    files, labels = [], []
    for label, name in enumerate(names):
        for f in sorted((root / name).iterdir()) if (root / name).is_dir() else []:
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
    if not files:
        raise DatasetError(f"folder '{root}' holds no images in class subfolders (<class>/<image>.jpg); check the path.")
    return _cached(files, resolution, lambda: _read_images(files, resolution)), np.asarray(labels, np.int64), names


def _cached(files: list[Path], resolution: int | None, decode: Callable[[], np.ndarray]) -> np.ndarray:
    """Decode once; later loads read a uint8 ``.npy`` keyed by the file list, sizes and times."""
    h = hashlib.sha1(f"{resolution}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = cache_root() / "images"
    path = cache / f"{h.hexdigest()[:20]}.npy"
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    x = decode()
    try:
        def save(tmp: Path) -> None:  # through a file object: np.save would append ".npy" to the temp name
            with tmp.open("wb") as fh:
                np.save(fh, x, allow_pickle=False)

        atomic_write(path, save)
    except OSError:
        pass  # a read-only cache only costs speed
    return x


def _cifar_binary(root: Path):
    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        raw = np.concatenate([np.frombuffer(f.read_bytes(), dtype=np.uint8) for f in files])
        if raw.size % 3073:
            raise DatasetError(f"CIFAR-10 binary files in '{root}' are truncated ({raw.size} bytes); re-extract them.")
        rec = raw.reshape(-1, 3073)
        return rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), rec[:, 0].astype(np.int64)

    xtr, ytr = read(sorted(root.glob("data_batch_*.bin")))
    xte, yte = read([root / "test_batch.bin"])
    return xtr, ytr, xte, yte


@_register("cifar10")
def _load_cifar10(path: str, resolution: int | None):
    root = Path(path).expanduser()
    for cand in (root, root / "cifar-10-batches-bin"):
        if list(cand.glob("data_batch_*.bin")) and (cand / "test_batch.bin").exists():
            xtr, ytr, xte, yte = _cifar_binary(cand)
            return _resize(xtr, resolution or 32), ytr, _resize(xte, resolution or 32), yte, CIFAR10_CLASSES
    if (root / "train").is_dir() and (root / "test").is_dir():
        xtr, ytr, names = _class_folder(root / "train", resolution)
        xte, yte, _ = _class_folder(root / "test", resolution, names)
        return xtr, ytr, xte, yte, names
    raise DatasetError(
        f"'{root}' is not a CIFAR-10 folder: expected train/ and test/ ImageFolder subfolders "
        "or the binary release (data_batch_1.bin … test_batch.bin); pass cifar10:PATH to one of those."
    )


@_register("imagefolder")
def _load_imagefolder(path: str, resolution: int | None):
    root = Path(path).expanduser()
    if (root / "train").is_dir():
        xtr, ytr, names = _class_folder(root / "train", resolution)
        if (root / "test").is_dir():
            xte, yte, _ = _class_folder(root / "test", resolution, names)
            return xtr, ytr, xte, yte, names
        return xtr, ytr, None, None, names
    xtr, ytr, names = _class_folder(root, resolution)
    return xtr, ytr, None, None, names


@_register("npz")
def _load_npz(path: str, resolution: int | None):
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(f"npz file '{p}' does not exist; pass npz:PATH to a file with arrays x and y.")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read npz file '{p}' ({e}); save it with numpy.savez(x=..., y=...).") from None
    if "x" not in arrays or "y" not in arrays:
        raise DatasetError(f"npz file '{p}' needs arrays 'x' and 'y', but has {sorted(arrays)}.")

    def norm(x: np.ndarray) -> np.ndarray:
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise DatasetError(f"npz 'x' must be N×H×W or N×H×W×C (C = 1 or 3), but got shape {x.shape}.")
        if x.dtype != np.uint8:
            x = np.clip(x * 255.0 if x.max() <= 1.0 else x, 0, 255).round().astype(np.uint8)
        return _resize(x, resolution or x.shape[1])

    y = arrays["y"].astype(np.int64)
    n_cls = int(y.max()) + 1
    xte = norm(arrays["x_test"]) if "x_test" in arrays else None
    yte = arrays["y_test"].astype(np.int64) if "y_test" in arrays else None
    return norm(arrays["x"]), y, xte, yte, tuple(str(i) for i in range(n_cls))


def load_dataset(spec: str, *, resolution: int | None = None, val_size: int | float = 0.1,
                 train_limit: int | None = None, split_seed: int = 0) -> ImageData:
    """Load a dataset by spec and carve a fixed validation split (and a test split if absent).

    ``val_size`` is a count, or a fraction when < 1. ``train_limit`` keeps a seeded subset of the
    remaining training images (the data fraction of a reduced-budget run).
    """
    kind, _, path = spec.partition(":")
    if kind not in LOADERS:
        raise unknown("dataset", kind, list(LOADERS))
    if kind != "digits" and not path:
        raise DatasetError(f"dataset '{kind}' needs a path: {kind}:PATH.")
    x, y, xte, yte, classes = LOADERS[kind](path, resolution)
    if len(y) == 0:
        raise DatasetError(f"dataset '{spec}' is empty; check the path.")
    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(y))
    if xte is None:  # no test split shipped: hold out 20 % first
        n_test = max(1, int(round(0.2 * len(y))))
        xte, yte = x[order[:n_test]], y[order[:n_test]]
        order = order[n_test:]
    n_val = int(round(val_size * len(order))) if val_size < 1 else int(val_size)
    if not 0 < n_val < len(order):
        raise DatasetError(f"validation size {val_size} does not fit {len(order)} training images; pass a smaller one.")
    val, train = order[:n_val], np.sort(order[n_val:])
    if train_limit is not None:
        if train_limit <= 0:
            raise DatasetError(f"train limit must be > 0, but got {train_limit}.")
        train = np.sort(rng.permutation(train)[:train_limit])
    return ImageData(spec, tuple(classes), x[train], y[train], x[np.sort(val)], y[np.sort(val)], xte, yte)


# ---- batches -------------------------------------------------------------------------------
def to_tensor(x: np.ndarray) -> torch.Tensor:
    """NHWC uint8 → NCHW float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)


def augment(x: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, per image, from ``gen``."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    iy = (oy[:, None] + torch.arange(h))[:, :, None]
    ix = (ox[:, None] + torch.arange(w))[:, None, :]
    out = xp[torch.arange(n)[:, None, None], :, iy, ix].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out.contiguous()


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, gen: torch.Generator | None = None,
            train: bool = False, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)``; shuffled and augmented from ``gen`` when ``train``."""
    n = len(y)
    order = torch.randperm(n, generator=gen).numpy() if train else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    pad = max(1, x.shape[1] // 8)
    for i in range(0, stop, batch_size):
        idx = np.sort(order[i : i + batch_size]) if not train else order[i : i + batch_size]
        xb = to_tensor(x[idx])
        if train:
            xb = augment(xb, gen, pad)
        yield xb, torch.from_numpy(y[idx])
