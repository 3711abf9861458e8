"""Progressive shrinking with the sandwich rule and in-place distillation.

Stage 1 trains the full network; each later stage sorts hidden channels by importance and adds
the next narrower width choice. Every step of a multi-width stage trains the largest subnet on
the labels, then the smallest and ``n_random`` random subnets on the largest one's detached
soft output (KL at temperature T) plus a label term.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch, and a checkpoint is
written at every epoch boundary, so ``resume`` continues to exactly the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supernet.checkpoint import (
    ensure_writable,
    load_tensors,
    read_json,
    save_supernet,
    save_tensors,
    sha256,
    write_json,
)
from supernet.data import ImageData, batches, check_matches, load_dataset
from supernet.dynamic import get_importance
from supernet.errors import CheckpointError, CheckpointMismatchError, ConfigError, OutputError
from supernet.evaluate import accuracy, exit_accuracies
from supernet.registry import get_family, get_preset

STATE_VERSION = 1


class TrainConfig(BaseModel):
    """Everything that defines a training run; stored in every checkpoint and artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str = "cnn"
    preset: str = "tiny"
    width_choices: tuple[float, ...] | None = None  # overrides the preset's elastic width fractions
    dataset: str = "digits"
    resolution: int | None = None
    train_limit: int | None = Field(default=None, gt=0)
    val_size: float = Field(default=0.1, gt=0)
    stage_epochs: tuple[int, ...] = (1, 1, 1, 1)
    batch_size: int = Field(default=128, gt=0)
    lr: float = Field(default=0.1, gt=0)
    later_lr_scale: float = Field(default=0.5, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    # SGD with Nesterov momentum suits the CNN; transformers train with AdamW (lr ~1e-3, weight decay ~0.05)
    # after a linear warm-up of the first stage.
    optimizer: Literal["sgd", "adamw"] = "sgd"
    warmup_epochs: int = Field(default=0, ge=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    n_random: int = Field(default=2, ge=0)
    kd_temperature: float = Field(default=1.0, gt=0)
    kd_weight: float = Field(default=0.5, ge=0, le=1)
    importance: str = "l1"
    # Early exits: an extra stage after progressive shrinking that trains the exit heads, either on a
    # frozen backbone (heads only; the backbone's accuracy cannot drop) or jointly (weighted exit
    # losses plus in-place distillation from the largest subnet's final exit).
    exit_epochs: int = Field(default=0, ge=0)
    # Token schedules (families with token reduction, e.g. the ViT): a stage after the width stages in
    # which every sandwich subnet but the largest also draws a token-reduction schedule and method, so
    # subnets are trained to be robust to them (the exit stage, if any, keeps drawing them).
    token_epochs: int = Field(default=0, ge=0)
    # In the token stage, also train the largest width under the strongest reduction (a drawn method) each
    # step (the exit stage's sandwich is unchanged): the sandwich's other corner, which otherwise is only reached by rare random draws. It is the subnet
    # that token reduction's speed-up is measured on (benchmarks/token_reduction.py).
    token_corner: bool = False
    exit_route: Literal["frozen", "joint"] = "frozen"
    exit_weight: float = Field(default=1.0, gt=0)
    # Start from a trained supernet (its backbone weights); no progressive-shrinking stages then.
    init_from: str | None = None
    init_sha256: str | None = None
    seed: int = 0
    device_type: Literal["cpu", "cuda"] = "cpu"
    bf16: bool = False  # bf16 autocast pays only with AVX-512 BF16 or AMX; slower on AVX2 CPUs
    channels_last: bool = True

    @field_validator("stage_epochs")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(e <= 0 for e in v):
            raise ValueError("every stage needs epochs > 0; pass --epochs N with N >= 1")
        return v

    @field_validator("width_choices")
    @classmethod
    def _widths(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and (not v or list(v) != sorted(set(v)) or not all(0 < w <= 1 for w in v)):
            raise ValueError("width choices must be ascending fractions in (0, 1], e.g. 0.25,0.5,0.75,1.0")
        return v

    @field_validator("importance")
    @classmethod
    def _importance(cls, v: str) -> str:
        get_importance(v)
        return v

    @model_validator(mode="after")
    def _stages_fit(self) -> TrainConfig:
        arch = self.arch()
        n = len(arch.width_choices)
        if len(self.stage_epochs) > n:
            raise ValueError(f"{len(self.stage_epochs)} stages given but the space has only {n} width choices")
        if self.init_from is None and not self.stage_epochs:
            raise ValueError("every stage needs epochs > 0; pass --epochs N with N >= 1")
        if self.init_from is not None and self.stage_epochs:
            raise ValueError("--init-from starts from a trained supernet and runs only the token and exit stages; "
                             "drop --epochs/--stage-epochs or --init-from")
        if self.init_from is not None and not (self.exit_epochs or self.token_epochs):
            raise ValueError("--init-from needs --exit-epochs >= 1 or --token-epochs >= 1 (the stages it runs)")
        if self.token_corner and not self.token_epochs:
            raise ValueError("--token-corner trains under token schedules; add --token-epochs N (N >= 1)")
        if self.token_epochs and not arch.space().n_token_positions:
            raise ValueError(f"preset '{self.preset}' has no token-reduction positions; drop --token-epochs or "
                             "choose a preset with token_blocks (e.g. --family vit)")
        if self.exit_epochs and not getattr(arch, "exit_blocks", ()):
            raise ValueError(f"preset '{self.preset}' has no exit heads (exit_blocks is empty); "
                             "drop --exit-epochs or choose a preset with exits")
        return self

    @property
    def stages(self) -> tuple[int, ...]:
        """Epochs of every stage: the progressive-shrinking ones, the token stage and the exit stage (if any)."""
        return (tuple(self.stage_epochs) + ((self.token_epochs,) if self.token_epochs else ())
                + ((self.exit_epochs,) if self.exit_epochs else ()))

    def is_token_stage(self, stage: int) -> bool:
        return bool(self.token_epochs) and stage == len(self.stage_epochs)

    def is_exit_stage(self, stage: int) -> bool:
        return bool(self.exit_epochs) and stage == len(self.stage_epochs) + (1 if self.token_epochs else 0)

    def tokens_on(self, stage: int) -> bool:
        """Whether sandwich subnets draw token schedules in ``stage`` (the token stage and after)."""
        return bool(self.token_epochs) and stage >= len(self.stage_epochs)

    def arch(self) -> Any:
        """The architecture config: the preset, with ``width_choices`` overridden when given."""
        arch = get_preset(self.family, self.preset)
        if self.width_choices is not None:
            arch = dataclasses.replace(arch, width_choices=tuple(self.width_choices))
        return arch

    @property
    def total_epochs(self) -> int:
        return sum(self.stages)

    def stage_of(self, epoch: int) -> int:
        """Stage (0-based) that ``epoch`` (0-based) belongs to."""
        return int(np.searchsorted(np.cumsum(self.stages), epoch, side="right"))

    def stage_start(self, stage: int) -> int:
        return sum(self.stages[:stage])


def resolve_device(device_type: str) -> torch.device:
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device-type cuda was asked for but torch sees no CUDA device; use --device-type cpu.")
    return torch.device(device_type)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _lr(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Cosine schedule restarted per stage; later stages start at ``lr * later_lr_scale``."""
    stage = cfg.stage_of(epoch)
    start = cfg.stage_start(stage)
    total = cfg.stages[stage] * steps_per_epoch
    t = (epoch - start) * steps_per_epoch + step
    base = cfg.lr * (1.0 if stage == 0 and cfg.stage_epochs else cfg.later_lr_scale)
    warm = min(cfg.warmup_epochs, cfg.stages[0]) * steps_per_epoch if stage == 0 else 0
    if t < warm:  # linear warm-up, then the cosine over the rest of the stage
        return base * (t + 1) / warm
    return base * 0.5 * (1.0 + math.cos(math.pi * (t - warm) / max(total - warm, 1)))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, stage: int = 0) -> torch.optim.Optimizer:
    """SGD (or AdamW) over the parameters a stage trains: only the exit heads in a frozen-backbone exit stage.
    Weight decay skips biases and norm parameters."""
    if cfg.is_exit_stage(stage) and cfg.exit_route == "frozen":
        params = list(model.exits.parameters())
    else:
        params = list(model.parameters())
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    t = cfg.kd_temperature
    kd = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    ce = F.cross_entropy(student, y, label_smoothing=cfg.label_smoothing)
    return cfg.kd_weight * kd + (1.0 - cfg.kd_weight) * ce


def _widths_at(cfg: TrainConfig, stage: int) -> tuple[int, ...]:
    """Width indices trained in ``stage``; the exit stage keeps the widths trained before it."""
    n = len(cfg.arch().width_choices)
    if cfg.init_from is not None:
        return tuple(range(n))
    return tuple(range(n - 1 - min(stage, len(cfg.stage_epochs) - 1), n))


def _smallest(space: Any, width_index: int, rng: np.random.Generator | None) -> Any:
    """The sandwich rule's smallest subnet: the narrowest trained width; with ``rng`` (token stage) also the
    strongest token reduction, by a drawn method. With the largest width index it is the token corner."""
    sub = space.uniform(width_index)
    if rng is None or not space.n_token_positions:
        return sub
    method = int(rng.integers(len(space.token_methods))) if space.token_methods else 0
    return dataclasses.replace(sub, tokens=(0,) * space.n_token_positions, method=method)


def _students(space: Any, widths: tuple[int, ...], rng: np.random.Generator, cfg: TrainConfig,
              tokens: bool) -> list[Any]:
    """The subnets distilled from the largest in one sandwich step: the smallest, ``n_random`` random ones and,
    with ``token_corner`` in a token stage, the largest width under the strongest reduction (drawn last, so a run
    without it draws exactly as before)."""
    subnets = [_smallest(space, widths[0], rng if tokens else None)]
    subnets += [space.sample(rng, widths, tokens=tokens) for _ in range(cfg.n_random)]
    if tokens and cfg.token_corner:
        subnets.append(_smallest(space, widths[-1], rng))
    return subnets


class Trainer:
    """Owns the model, the optimiser and the run folder; :meth:`run` trains to the end."""

    def __init__(self, cfg: TrainConfig, out: Path, data: ImageData | None = None, progress: Any = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.device = resolve_device(cfg.device_type)
        arch = cfg.arch()
        self.data = data or load_dataset(cfg.dataset, resolution=cfg.resolution or arch.resolution,
                                          val_size=cfg.val_size, train_limit=cfg.train_limit)
        check_matches(self.data, arch.in_channels, arch.resolution, arch.num_classes)
        mean, std = self.data.mean_std()
        torch.manual_seed(cfg.seed)
        self.model = get_family(cfg.family).build(arch, mean, std).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.init_from is not None:
            self._init_backbone(Path(cfg.init_from))
        self.space = self.model.space
        self.optimizer = _optimizer(self.model, cfg, 0)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.progress = progress
        self._prepared = False

    def _init_backbone(self, path: Path) -> None:
        """Copy a trained supernet into the model through its family's transfer rule (the same architecture;
        a ViT may change its token grid). Exit heads are copied when both have the same exits, else start fresh."""
        from supernet.checkpoint import load_supernet

        src, meta = load_supernet(path, self.device)
        family = get_family(self.cfg.family)
        mine = self.cfg.arch()
        if meta.get("family") != self.cfg.family:
            raise CheckpointMismatchError(
                f"--init-from '{path}' is a {meta.get('family')} supernet with another architecture than preset "
                f"'{self.cfg.preset}'; pass a {self.cfg.family} supernet.")
        theirs = src.config
        try:
            state = family.transfer(src.state_dict(), theirs, mine)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"--init-from '{path}' has another architecture than preset "
                                          f"'{self.cfg.preset}': {e}") from None
        def exits(c: Any) -> dict[str, Any]:
            return {k: v for k, v in c.to_dict().items() if k.startswith("exit_")}

        if exits(theirs) != exits(mine):  # other heads (placement or shape): they start fresh
            state = {k: v for k, v in state.items() if not k.startswith("exits.")}
        missing, _ = self.model.load_state_dict(state, strict=False)
        if any(not k.startswith("exits.") for k in missing):
            raise CheckpointMismatchError(f"--init-from '{path}' lacks backbone tensors (e.g. {missing[0]}); "
                                          "pass a supernet written by `dynnas train`.")
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # ---- checkpoints -------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    @property
    def state_path(self) -> Path:
        return self.out / "state.json"

    def save_checkpoint(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        groups = []
        for gi, g in enumerate(self.optimizer.param_groups):
            groups.append({k: v for k, v in g.items() if k != "params"})
            for pi, p in enumerate(g["params"]):
                for key, value in self.optimizer.state.get(p, {}).items():  # SGD momentum; AdamW moments and step
                    if torch.is_tensor(value):
                        tensors[f"optim.{gi}.{pi}.{key}"] = value
        save_tensors(self.ckpt_path, tensors)
        write_json(self.state_path, {
            "state_version": STATE_VERSION, "epoch": self.epoch, "stage": self.cfg.stage_of(max(self.epoch - 1, 0)),
            "config": self.cfg.model_dump(mode="json"), "space": self.space.to_dict(),
            "param_groups": groups, "history": self.history, "checkpoint_sha256": sha256(self.ckpt_path),
        })

    def load_checkpoint(self) -> None:
        if not self.state_path.exists() or not self.ckpt_path.exists():
            raise CheckpointError(f"--resume given but '{self.out}' holds no checkpoint; drop --resume to start afresh.")
        state = read_json(self.state_path, "training state")
        if not isinstance(state, dict) or state.get("state_version") != STATE_VERSION:
            raise CheckpointError(f"training state '{self.state_path}' is corrupt or from another dynnas version; start afresh.")
        old = state.get("config", {})
        for key in ("family", "preset", "dataset", "exit_epochs", "exit_route", "init_sha256", "token_epochs", "token_corner", "optimizer"):
            if old.get(key, TrainConfig.model_fields[key].default) != getattr(self.cfg, key):
                raise CheckpointMismatchError(
                    f"checkpoint in '{self.out}' was trained with {key}={old.get(key)!r}, not {getattr(self.cfg, key)!r}; "
                    "resume with the same settings or use another --out.")
        if state.get("space") != self.space.to_dict():
            raise CheckpointMismatchError(
                f"checkpoint in '{self.out}' has search space {state.get('space')}, not {self.space.to_dict()}; "
                "resume with the same preset or use another --out.")
        if state.get("checkpoint_sha256") != sha256(self.ckpt_path):
            raise CheckpointError(f"checkpoint '{self.ckpt_path}' does not match state.json (corrupt or half-written); "
                                  "delete the folder and start afresh.")
        tensors, _ = load_tensors(self.ckpt_path)
        self.epoch = int(state["epoch"])
        # Rebuild the optimiser of the stage being trained, then load its state.
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state, strict=True)
        except RuntimeError as e:
            raise CheckpointMismatchError(f"checkpoint '{self.ckpt_path}' does not fit this network ({str(e)[:100]}).") from None
        self.optimizer = _optimizer(self.model, self.cfg, self.cfg.stage_of(max(self.epoch - 1, 0)))
        for gi, g in enumerate(self.optimizer.param_groups):
            g.update(state["param_groups"][gi])
            for pi, p in enumerate(g["params"]):
                prefix = f"optim.{gi}.{pi}."
                for key, value in tensors.items():
                    if key.startswith(prefix):
                        # AdamW keeps its step count on the CPU unless it runs fused/capturable
                        on_cpu = key.endswith(".step")
                        self.optimizer.state[p][key[len(prefix):]] = value if on_cpu else value.to(self.device)
        self.history = list(state.get("history", []))

    # ---- training ----------------------------------------------------------------------------
    def _begin_stage(self, stage: int) -> None:
        """Sort channels within the trained widths, initialise the new width, reset momentum."""
        trained = _widths_at(self.cfg, stage - 1)
        new = trained[0] - 1
        self.model.sort_channels(trained, self.cfg.importance)
        self.model.activate_width(new, new + 1)
        self.optimizer = _optimizer(self.model, self.cfg, stage)

    def _begin_exit_stage(self, stage: int) -> None:
        """The token and exit stages train no new width: only a fresh optimiser (heads only when frozen)."""
        self.optimizer = _optimizer(self.model, self.cfg, stage)

    def _steps(self, epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's shuffled, augmented batches on the device; sets each step's LR and zeroes the grads."""
        cfg = self.cfg
        steps = len(self.data.y_train) // cfg.batch_size
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for step, (x, y) in enumerate(batches(self.data.x_train, self.data.y_train, cfg.batch_size, gen=gen,
                                              train=True, drop_last=True)):
            for g in self.optimizer.param_groups:
                g["lr"] = _lr(cfg, epoch, step, steps)
            self.optimizer.zero_grad(set_to_none=True)
            yield x.to(self.device, memory_format=fmt), y.to(self.device)

    def _train_exit_epoch(self, epoch: int) -> float:
        """One epoch of exit training (sandwich rule over the trained widths, KD from the largest's final exit).

        Frozen route: backbone in eval mode under ``no_grad`` (its weights and BN statistics are
        untouched); every head of every sandwich subnet learns from the largest subnet's final
        logits. Joint route: all weights train; the largest subnet's loss is CE on its final exit
        plus ``exit_weight`` times the mean CE of its heads; the smallest (all exits on) and the
        random subnets (random exit masks) distil every enabled exit from the largest's output.
        """
        cfg, model = self.cfg, self.model
        stage = cfg.stage_of(epoch)
        widths = _widths_at(cfg, stage)
        seed = _epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        space = self.space
        n_exits = len(space.exit_positions)
        largest = dataclasses.replace(space.largest(), exits=(1,) * n_exits)
        smallest = dataclasses.replace(space.uniform(widths[0]), exits=(1,) * n_exits)
        frozen = cfg.exit_route == "frozen"
        model.train()
        if frozen:
            for name, m in model.named_children():
                if name != "exits":
                    m.eval()
        total, n = 0.0, 0
        tokens = cfg.tokens_on(stage)
        for x, y in self._steps(epoch, gen):
            subnets = [smallest] + [space.sample(rng, widths, tokens=tokens) for _ in range(cfg.n_random)]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                if frozen:
                    with torch.no_grad():
                        feats = model.forward_exits(x, largest, features=True)
                    teacher = feats[-1].float()
                    outs = model.exit_logits(feats[:-1], largest)
                    loss = sum(_kd_loss(o.float(), teacher, y, cfg) for o in outs) / n_exits
                else:
                    outs = model.forward_exits(x, largest)
                    teacher = outs[-1].detach().float()
                    exit_ce = sum(F.cross_entropy(o.float(), y, label_smoothing=cfg.label_smoothing) for o in outs[:-1])
                    loss = F.cross_entropy(outs[-1].float(), y, label_smoothing=cfg.label_smoothing) \
                        + cfg.exit_weight * exit_ce / n_exits
            loss.backward()
            for sub in subnets:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                    if frozen:
                        with torch.no_grad():
                            feats = model.forward_exits(x, sub, features=True)
                        s_loss = sum(_kd_loss(o.float(), teacher, y, cfg) for o in model.exit_logits(feats[:-1], sub))
                        s_loss = s_loss / n_exits
                    else:
                        outs = model.forward_exits(x, sub)
                        on = [o for o, bit in zip(outs[:-1], sub.exits, strict=True) if bit]
                        s_loss = _kd_loss(outs[-1].float(), teacher, y, cfg)
                        if on:
                            s_loss = s_loss + cfg.exit_weight * sum(_kd_loss(o.float(), teacher, y, cfg) for o in on) / len(on)
                s_loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            n += 1
            if self.progress is not None:
                self.progress.step(epoch=epoch, stage=stage, loss=total / n)
        return total / max(n, 1)

    def _train_epoch(self, epoch: int) -> float:
        cfg, model = self.cfg, self.model
        stage = cfg.stage_of(epoch)
        widths = _widths_at(cfg, stage)
        seed = _epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)  # dropout
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        largest = self.space.largest()
        tokens = cfg.tokens_on(stage)
        model.train()
        total, n = 0.0, 0
        for x, y in self._steps(epoch, gen):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x, largest)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            if len(widths) > 1 or tokens:
                teacher = logits.detach().float()
                for sub in _students(self.space, widths, rng, cfg, tokens):
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                        s_logits = model(x, sub)
                    _kd_loss(s_logits.float(), teacher, y, cfg).backward()
            self.optimizer.step()
            total += float(loss.detach())
            n += 1
            if self.progress is not None:
                self.progress.step(epoch=epoch, stage=stage, loss=total / n)
        return total / max(n, 1)

    def prepare(self, resume: bool = False) -> None:
        """Check the run folder and load the checkpoint when resuming; nothing is written."""
        if resume:
            self.load_checkpoint()
        elif self.state_path.exists():
            raise OutputError(f"'{self.out}' already holds a training run; pass --resume to continue it or another --out.")
        ensure_writable(self.out, keep=resume)
        self._prepared = True

    def run(self, resume: bool = False, stop_after: int | None = None, snapshot: bool = False) -> dict[str, Any]:
        """Train to the end (or ``stop_after`` more epochs); write the artifact when done.

        With ``snapshot``, a run stopped early by ``stop_after`` writes the artifact of the state it
        reached too (e.g. the width stages alone, before the token stage); ``--resume`` continues it.
        Call :meth:`prepare` first to check the folder before any output; otherwise ``run`` does.
        """
        if not self._prepared:
            self.prepare(resume)
        done = 0
        while self.epoch < self.cfg.total_epochs and (stop_after is None or done < stop_after):
            epoch, stage = self.epoch, self.cfg.stage_of(self.epoch)
            exit_stage = self.cfg.is_exit_stage(stage)
            if epoch == self.cfg.stage_start(stage) and (exit_stage or self.cfg.is_token_stage(stage)):
                self._begin_exit_stage(stage)  # no new width: a fresh optimiser (heads only when frozen)
            elif stage > 0 and epoch == self.cfg.stage_start(stage):
                self._begin_stage(stage)
            if self.progress is not None:
                self.progress.begin_epoch(epoch, stage, len(self.data.y_train) // self.cfg.batch_size)
            t0 = time.perf_counter()
            loss = self._train_exit_epoch(epoch) if exit_stage else self._train_epoch(epoch)
            widths = _widths_at(self.cfg, stage)
            record = {
                "epoch": epoch + 1, "stage": stage + 1, "loss": round(loss, 5), "seconds": round(time.perf_counter() - t0, 2),
                "val_acc_largest": accuracy(self.model, self.data.x_val, self.data.y_val, self.space.largest()),
                "val_acc_smallest": accuracy(self.model, self.data.x_val, self.data.y_val, self.space.uniform(widths[0])),
            }
            if exit_stage:
                record["route"] = self.cfg.exit_route
                record["val_acc_exits_largest"] = exit_accuracies(self.model, self.data.x_val, self.data.y_val,
                                                                  self.space.largest())[:-1]
            self.history.append(record)
            self.epoch += 1
            done += 1
            self.save_checkpoint()
            if self.progress is not None:
                self.progress.end_epoch(record)
        if self.epoch >= self.cfg.total_epochs or snapshot:
            self.write_artifact()
        return {"epoch": self.epoch, "history": self.history}

    def artifact_meta(self) -> dict[str, Any]:
        mean, std = self.data.mean_std()
        return {
            "family": self.cfg.family, "config": self.cfg.arch().to_dict(), "space": self.space.to_dict(),
            "mean": list(mean), "std": list(std), "dataset": self.data.summary(),
            "train_config": self.cfg.model_dump(mode="json"), "history": self.history,
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
        }

    def write_artifact(self) -> Path:
        path = self.out / "supernet.safetensors"
        model = self.model.to(memory_format=torch.contiguous_format)
        save_supernet(path, model, self.artifact_meta())
        return path
