"""`dynnas train` and `dynnas eval`: build and inspect supernets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.app import DeviceTypeOpt, SeedOpt, app
from nas.errors import guarded


def _parse_ints(text: str, what: str) -> tuple[int, ...]:
    from supernet.errors import ConfigError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers like '4,2,2,2', but got '{text}'.") from None


def _parse_floats(text: str, what: str) -> tuple[float, ...]:
    from supernet.errors import ConfigError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers like '0.25,0.5,1.0', but got '{text}'.") from None


@app.command(epilog="Examples:\n\n    dynnas train --dataset digits --epochs 2 --out runs/tiny\n\n"
             "    dynnas train --preset cifar-default --dataset cifar10:../shared/datasets/cifar10 "
             "--stage-epochs 6,2,2,3 --out runs/cifar --seed 0\n\n"
             "    dynnas train --dataset digits --epochs 2 --out runs/tiny --resume\n\n"
             "    dynnas train --dataset digits --epochs 2 --stop-at 1 --out runs/tiny-half\n\n"
             "    dynnas train --dataset digits --epochs 2 --exit-epochs 2 --exit-route joint --out runs/tiny-exits\n\n"
             "    dynnas train --preset cifar-default --dataset cifar10:../shared/datasets/cifar10 "
             "--init-from supernet/pretrained/cifar10-cnn.safetensors --exit-epochs 3 --out runs/cifar-exits\n\n"
             "    dynnas train --family vit --preset tiny --dataset digits --epochs 4 --token-epochs 2 --optimizer adamw "
             "--lr 2e-3 --weight-decay 0.05 --warmup-epochs 1 --out runs/tiny-vit\n\n"
             "    dynnas train --family vit --preset cifar-vit-256 --dataset cifar10:../shared/datasets/cifar10 "
             "--init-from supernet/pretrained/cifar10-vit.safetensors --token-epochs 5 --optimizer adamw "
             "--lr 1e-3 --out runs/cifar-vit-256\n\n"
             "    dynnas train --family vit --preset cifar-vit-256 --dataset cifar10:../shared/datasets/cifar10 "
             "--init-from runs/cifar-vit-256 --token-epochs 4 --token-corner --optimizer adamw --lr 5e-4 "
             "--out runs/cifar-vit-256-corner")
@guarded
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint, state.json and the final supernet.safetensors.")],
    family: Annotated[str, typer.Option(help="Supernet family (registry name).")] = "cnn",
    preset: Annotated[str, typer.Option(help="Architecture preset of the family, e.g. tiny or cifar-default.")] = "tiny",
    dataset: Annotated[str, typer.Option(help="digits | cifar10:PATH | imagefolder:PATH | npz:PATH")] = "digits",
    widths: Annotated[str | None, typer.Option(help="Elastic width fractions, e.g. 0.25,0.5,0.75,1.0 (default: the preset's).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per progressive-shrinking stage (one stage per width choice).")] = 1,
    stage_epochs: Annotated[str | None, typer.Option(help="Epochs of each stage, e.g. 6,2,2,3 (overrides --epochs).")] = None,
    train_limit: Annotated[int | None, typer.Option(help="Use a seeded subset of this many training images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate of stage 1 (e.g. 0.1 for SGD, 1e-3 for AdamW).")] = 0.1,
    optimizer: Annotated[str, typer.Option(help="sgd (Nesterov momentum; the CNN) or adamw (transformers).")] = "sgd",
    weight_decay: Annotated[float, typer.Option(help="Weight decay of weights (not biases or norms), e.g. 1e-4 for SGD, 0.05 for AdamW.")] = 1e-4,
    warmup_epochs: Annotated[int, typer.Option(help="Linear learning-rate warm-up epochs at the start of stage 1.")] = 0,
    n_random: Annotated[int, typer.Option(help="Random subnets per sandwich step besides largest and smallest.")] = 2,
    kd_temperature: Annotated[float, typer.Option(help="Temperature of in-place distillation.")] = 1.0,
    importance: Annotated[str, typer.Option(help="Channel importance for sorting: l1 or bn_gamma.")] = "l1",
    token_epochs: Annotated[int, typer.Option(help="Epochs of the token-schedule stage after the width stages (families with token reduction, e.g. vit).")] = 0,
    token_corner: Annotated[bool, typer.Option(help="Token stage: also train the largest width under the strongest token reduction each step (the subnet whose speed-up token reduction is judged on).")] = False,
    exit_epochs: Annotated[int, typer.Option(help="Epochs of the exit stage after progressive shrinking (0: exit heads untrained).")] = 0,
    exit_route: Annotated[str, typer.Option(help="How the exit stage trains: frozen (heads only) or joint (all weights).")] = "frozen",
    exit_weight: Annotated[float, typer.Option(help="Joint route: weight of the exits' losses against the final exit's.")] = 1.0,
    init_from: Annotated[Path | None, typer.Option(help="Start from this trained supernet and run only the token and exit stages. Same architecture, except that a ViT may change its token grid (patch size, resolution: e.g. preset cifar-vit-256 from the shipped ViT).")] = None,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (fast only on CPUs with AVX-512 BF16/AMX, or CUDA).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last epoch.")] = False,
    stop_at: Annotated[int | None, typer.Option(help="Stop after this many epochs in all and write supernet.safetensors of the state reached (e.g. the width stages without the token stage); --resume continues.")] = None,
    seed: SeedOpt = 0,
    device_type: DeviceTypeOpt = "cpu",
) -> None:
    """Train a once-for-all supernet with progressive shrinking (sandwich rule, in-place distillation)."""
    from rich.table import Table

    from nas.progress import TrainProgress, console
    from supernet.checkpoint import sha256
    from supernet.cost import count_macs
    from supernet.errors import ConfigError
    from supernet.evaluate import accuracy
    from supernet.registry import get_preset
    from supernet.train import TrainConfig, Trainer

    width_choices = _parse_floats(widths, "--widths") if widths else None
    arch = get_preset(family, preset)
    n_stages = len(width_choices) if width_choices else len(arch.width_choices)
    stages = _parse_ints(stage_epochs, "--stage-epochs") if stage_epochs else (epochs,) * n_stages
    if epochs <= 0 and not stage_epochs:
        raise ConfigError(f"--epochs must be >= 1, but got {epochs}.")
    if exit_route not in ("frozen", "joint"):
        raise ConfigError(f"--exit-route must be frozen or joint, but got '{exit_route}'.")
    if exit_epochs < 0:
        raise ConfigError(f"--exit-epochs must be >= 0, but got {exit_epochs}.")
    if optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"--optimizer must be sgd or adamw, but got '{optimizer}'.")
    if weight_decay < 0 or warmup_epochs < 0:
        raise ConfigError(f"--weight-decay and --warmup-epochs must be >= 0, but got {weight_decay} and {warmup_epochs}.")
    if token_epochs < 0:
        raise ConfigError(f"--token-epochs must be >= 0, but got {token_epochs}.")
    init_sha = None
    if init_from is not None:
        if not Path(init_from).is_file() and not (Path(init_from) / "supernet.safetensors").is_file():
            raise ConfigError(f"--init-from '{init_from}' does not exist; pass a supernet file written by `dynnas train`.")
        init_from = Path(init_from) / "supernet.safetensors" if Path(init_from).is_dir() else Path(init_from)
        init_sha = sha256(init_from)
        stages = ()
    cfg = TrainConfig(family=family, preset=preset, width_choices=width_choices, dataset=dataset, stage_epochs=stages, train_limit=train_limit,
                      batch_size=batch_size, lr=lr, n_random=n_random, kd_temperature=kd_temperature,
                      importance=importance, bf16=bf16, seed=seed, device_type=device_type, exit_epochs=exit_epochs,
                      token_epochs=token_epochs, token_corner=token_corner, optimizer=optimizer, weight_decay=weight_decay,
                      warmup_epochs=warmup_epochs, exit_route=exit_route, exit_weight=exit_weight,
                      init_from=str(init_from.resolve()) if init_from is not None else None, init_sha256=init_sha)
    if stop_at is not None and not 1 <= stop_at <= cfg.total_epochs:
        raise ConfigError(f"--stop-at must be between 1 and the run's {cfg.total_epochs} epochs, but got {stop_at}.")
    trainer = Trainer(cfg, out)
    trainer.prepare(resume)
    if stop_at is not None and stop_at < trainer.epoch:
        raise ConfigError(f"--stop-at {stop_at} is before the checkpoint's epoch {trainer.epoch}; pass a later epoch.")
    console.print(f"training {family}/{preset} on {dataset}: {trainer.data.summary()['train']} images, "
                  f"stages {list(cfg.stages)}{' (exit stage: ' + exit_route + ')' if exit_epochs else ''} → {out}")
    with TrainProgress(cfg.total_epochs) as progress:
        trainer.progress = progress
        trainer.run(stop_after=None if stop_at is None else stop_at - trainer.epoch, snapshot=stop_at is not None)
    table = Table(title="uniform subnets (validation, switchable BN)")
    for col in ("width", "MMACs", "val acc"):
        table.add_column(col)
    space, data, arch = trainer.space, trainer.data, cfg.arch()
    for i, w in enumerate(space.width_choices):
        sub = space.uniform(i)
        acc = accuracy(trainer.model, data.x_val, data.y_val, sub)
        table.add_row(f"{w:g}", f"{count_macs(arch, sub) / 1e6:.2f}", f"{acc:.4f}")
    console.print(table)
    console.print(f"wrote {out / 'supernet.safetensors'}")


@app.command(name="eval", epilog="Examples:\n\n    dynnas eval\n\n    dynnas eval --supernet runs/tiny --dataset digits --bn recal")
@guarded
def eval_cmd(
    supernet: Annotated[Path | None, typer.Option(help="Supernet file or run folder (default: the shipped one).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset spec (default: the supernet's own, else its shipped sample).")] = None,
    split: Annotated[str, typer.Option(help="val or test.")] = "test",
    bn: Annotated[str, typer.Option(help="switchable or recal (BN recalibration on training batches).")] = "recal",
    seed: SeedOpt = 0,
    device_type: DeviceTypeOpt = "cpu",
) -> None:
    """Print the accuracy and MACs of the uniform-width subnets of a supernet."""
    from rich.table import Table

    from nas.progress import console
    from supernet.cost import count_macs
    from supernet.errors import ConfigError
    from supernet.evaluate import BN_MODES, subnet_accuracy
    from supernet.pretrained import load_default_data, resolve_supernet
    from supernet.train import resolve_device

    if bn not in BN_MODES:
        raise ConfigError(f"--bn must be one of {', '.join(BN_MODES)}, but got '{bn}'.")
    if split not in ("val", "test"):
        raise ConfigError(f"--split must be val or test, but got '{split}'.")
    model, meta, path = resolve_supernet(supernet, resolve_device(device_type))
    data, note = load_default_data(meta, dataset, path)
    table = Table(title=f"uniform subnets of {path.name} on {note} ({split}, BN {bn})")
    for col in ("width", "MMACs", "accuracy"):
        table.add_column(col)
    for i, w in enumerate(model.space.width_choices):
        sub = model.space.uniform(i)
        acc = subnet_accuracy(model, sub, data, split=split, bn=bn, seed=seed)
        table.add_row(f"{w:g}", f"{count_macs(model.config, sub) / 1e6:.2f}", f"{acc:.4f}")
    console.print(table)

