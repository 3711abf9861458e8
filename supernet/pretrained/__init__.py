"""The shipped default supernet and its evaluation sample, plus how to find them.

``cifar10-cnn.safetensors`` is reproduced by the ``dynnas train`` command in the README
(``make train-default``). ``cifar10-cnn.sample.npz`` holds a few hundred CIFAR-10 test images
(and training images for BN recalibration) so accuracy can be checked on a clone without the
dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernet.checkpoint import load_supernet
from supernet.data import DatasetError, ImageData, load_dataset
from supernet.errors import CheckpointError

HERE = Path(__file__).resolve().parent
DEFAULT_SUPERNET = HERE / "cifar10-cnn.safetensors"
# Shipped supernets by family name: ``--supernet vit`` picks the ViT one.
SHIPPED = {"cnn": DEFAULT_SUPERNET, "vit": HERE / "cifar10-vit.safetensors"}


def shipped_path(path: Path | str | None) -> Path | None:
    """The shipped file a name (``cnn``, ``vit``) or None (the default) stands for; None for any other path."""
    if path is None:
        return DEFAULT_SUPERNET
    name = str(path)
    if name in SHIPPED and not Path(name).exists():
        return SHIPPED[name]
    return None


def resolve_supernet(path: Path | str | None, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any], Path]:
    """Load ``path``, a shipped supernet by family name (``cnn``, ``vit``) or, when None, the shipped default."""
    shipped = shipped_path(path)
    if shipped is not None:
        if not shipped.exists():
            raise CheckpointError(f"the shipped supernet '{shipped}' is missing; restore it from git, "
                                  f"or pass --supernet to one made by `dynnas train` (shipped: {', '.join(SHIPPED)}).")
        path = shipped
    model, meta = load_supernet(path, device)
    return model, meta, Path(path)


def sample_path(supernet_path: Path) -> Path:
    """Evaluation sample shipped beside a supernet file: ``<stem>.sample.npz``."""
    p = Path(supernet_path)
    p = p / "supernet.safetensors" if p.is_dir() else p
    return p.with_name(p.stem + ".sample.npz")


def load_sample(path: Path, spec: str) -> ImageData:
    """The shipped sample as a dataset: training images for BN recalibration, validation images (for
    exit thresholds; the training images stand in for them in a sample written without any) and
    test images."""
    with np.load(path, allow_pickle=False) as z:
        xs, ys, xc, yc = z["x_test"], z["y_test"], z["x_calib"], z["y_calib"]
        xv, yv = (z["x_val"], z["y_val"]) if "x_val" in z.files else (xc, yc)
        classes = tuple(str(c) for c in z["classes"])
    return ImageData(f"{spec} (sample)", classes, xc, yc, xv, yv, xs, ys)


def save_sample(path: Path, data: ImageData, n_test: int, n_calib: int, seed: int = 0, n_val: int = 1000) -> None:
    """Write a compressed sample: ``n_test`` test, ``n_calib`` training and ``n_val`` validation images."""
    from supernet.checkpoint import atomic_write

    rng = np.random.default_rng(seed)
    t = np.sort(rng.permutation(len(data.y_test))[:n_test])
    c = rng.permutation(len(data.y_train))[:n_calib]
    v = np.sort(np.random.default_rng(seed + 1).permutation(len(data.y_val))[:n_val])
    arrays = {"x_test": data.x_test[t], "y_test": data.y_test[t], "x_calib": data.x_train[c],
              "y_calib": data.y_train[c], "x_val": data.x_val[v], "y_val": data.y_val[v],
              "classes": np.asarray(data.classes)}
    atomic_write(path, lambda p: np.savez_compressed(open(p, "wb"), **arrays))


def load_default_data(meta: dict[str, Any], spec: str | None, supernet_path: Path | None = None) -> tuple[ImageData, str]:
    """The dataset to evaluate on: ``spec``, else the supernet's own, else its shipped sample."""
    res = int(meta["config"]["resolution"])
    if spec is not None:
        return load_dataset(spec, resolution=res), spec
    own = meta["dataset"]["spec"]
    try:
        return load_dataset(own, resolution=res), own
    except DatasetError:
        sample = sample_path(supernet_path or DEFAULT_SUPERNET)
        if not sample.exists():
            raise DatasetError(f"dataset '{own}' is not here and no evaluation sample ships beside the supernet; "
                               "pass --dataset.") from None
        return load_sample(sample, own), f"{own} shipped sample"
