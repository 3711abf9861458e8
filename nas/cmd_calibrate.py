"""`dynnas calibrate`: measure a supernet's accuracy-predictor data and its evaluation sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.app import SeedOpt, app
from nas.errors import guarded


@app.command(epilog="Examples:\n\n    dynnas calibrate --supernet runs/tiny\n\n"
             "    dynnas calibrate --supernet supernet/pretrained/cifar10-cnn.safetensors "
             "--dataset cifar10:../shared/datasets/cifar10 --samples 400\n\n"
             "    dynnas calibrate --supernet runs/tiny --recal-seeds 3 --max-accuracy-drops 0.5,1 --exit-criterion entropy")
@guarded
def calibrate(
    supernet: Annotated[Path, typer.Option(help="Supernet file or run folder.")],
    dataset: Annotated[str | None, typer.Option(help="Dataset spec (default: the supernet's own).")] = None,
    samples: Annotated[int, typer.Option(help="Random subnets to evaluate on the validation split.")] = 400,
    ceiling: Annotated[int, typer.Option(help="Of those, how many also on the test split (noise ceiling).")] = 100,
    bn: Annotated[str, typer.Option(help="BN statistics: recal or switchable.")] = "recal",
    sample_test: Annotated[int, typer.Option(help="Test images in the shipped evaluation sample.")] = 400,
    sample_calib: Annotated[int, typer.Option(help="Training images in the sample, for BN recalibration.")] = 256,
    sample_val: Annotated[int, typer.Option(help="Validation images in the sample, for exit thresholds at export.")] = 1000,
    recal_seeds: Annotated[int, typer.Option(help="BN recalibrations per subnet, averaged (label noise).")] = 2,
    max_accuracy_drops: Annotated[str, typer.Option(help="Accuracy drops (points) to calibrate exit policies for, comma-separated.")] = "0.25,0.5,1,2",
    exit_criterion: Annotated[str, typer.Option(help="Exit test: confidence (max softmax) or entropy.")] = "confidence",
    exit_temperature: Annotated[bool, typer.Option(help="Fit a softmax temperature per exit on validation data first.")] = False,
    cascade: Annotated[int, typer.Option(help="Width-cascade scouts to calibrate: the N narrowest uniform subnets (0: none).")] = 0,
    seed: SeedOpt = 0,
) -> None:
    """Write `<stem>.accuracy.json` (predictor data) and `<stem>.sample.npz` beside a supernet.

    Searches then need no dataset: the accuracy predictor is fitted on the cached data, and
    exports are checked on the sample when the dataset is absent. Existing data with fewer
    than --samples subnets (same seed) is topped up: only the missing subnets are measured; data
    with fewer than --cascade scouts gets their policies (one re-measurement per subnet).
    """
    from nas.progress import console, make_progress
    from predictors import load_or_collect_accuracy
    from supernet.data import load_dataset
    from supernet.errors import ConfigError
    from supernet.evaluate import BN_MODES
    from supernet.pretrained import resolve_supernet, sample_path, save_sample

    if bn not in BN_MODES:
        raise ConfigError(f"--bn must be one of {', '.join(BN_MODES)}, but got '{bn}'.")
    if samples <= 0:
        raise ConfigError(f"--samples must be > 0, but got {samples}.")
    if recal_seeds < 1:
        raise ConfigError(f"--recal-seeds must be >= 1, but got {recal_seeds}.")
    if cascade < 0:
        raise ConfigError(f"--cascade must be >= 0 scouts, but got {cascade}.")
    from predictors.exit_policy import get_criterion
    from supernet.checkpoint import ensure_writable

    get_criterion(exit_criterion)
    try:
        drops = tuple(float(d) / 100 for d in max_accuracy_drops.split(",") if d.strip())
    except ValueError:
        raise ConfigError(f"--max-accuracy-drops must be comma-separated points like '0.25,0.5,1', but got "
                          f"'{max_accuracy_drops}'.") from None
    if not drops or any(not 0 <= d < 1 for d in drops):
        raise ConfigError(f"--max-accuracy-drops must be points in [0, 100), but got '{max_accuracy_drops}'.")
    model, meta, path = resolve_supernet(supernet)
    file = path / "supernet.safetensors" if path.is_dir() else path
    ensure_writable(file.parent)  # the sample is written beside the supernet: fail before measuring
    data = load_dataset(dataset or meta["dataset"]["spec"], resolution=int(meta["config"]["resolution"]))
    with make_progress() as bar:
        task = bar.add_task("evaluating subnets", total=None, info="")

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        predictor, acc = load_or_collect_accuracy(file, model, meta, data, n_samples=samples, n_ceiling=ceiling, bn=bn, seed=seed,
                                                  progress=progress, extend=True, recal_seeds=recal_seeds,
                                                  max_drops=drops, criterion=exit_criterion,
                                                  temperature=exit_temperature, cascade=cascade)
    save_sample(sample_path(file), data, n_test=sample_test, n_calib=sample_calib, seed=seed, n_val=sample_val)
    q = predictor.quality
    console.print(f"accuracy data: {len(acc.records)} subnets; held-out Kendall tau {q['heldout_tau']:.3f}, "
                  f"RMSE {q['heldout_rmse_points']:.2f} pts, noise ceiling tau {q['noise_ceiling_tau']:.3f}")
    if model.space.exit_positions or cascade:
        from predictors import DynamicAccuracyPredictor

        dyn = DynamicAccuracyPredictor(predictor, acc, max_drop=drops[min(1, len(drops) - 1)], seed=seed)
        mae = ", ".join(f"{k} {v['heldout_mae']:.3f}" for k, v in dyn.quality["exit_rate_heldout_mae"].items())
        console.print(f"exit policies at drop {100 * dyn.max_drop:g} pt: mean MAC speed-up "
                      f"{dyn.quality['mean_speedup_macs']:.2f}x; exit-rate held-out MAE {mae}")
    console.print(f"wrote {sample_path(file)} ({sample_path(file).stat().st_size / 1e6:.2f} MB)")
