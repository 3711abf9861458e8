"""Rich progress displays for long commands (training, evaluation, search)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)


class TrainProgress:
    """Adapter the :class:`supernet.train.Trainer` reports to: stage, epoch, loss, val accuracy."""

    def __init__(self, total_epochs: int) -> None:
        self.total = total_epochs
        self.bar = make_progress()
        self.task: Any = None
        self.last = ""

    def __enter__(self) -> TrainProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def begin_epoch(self, epoch: int, stage: int, steps: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(f"stage {stage + 1} epoch {epoch + 1}/{self.total}", total=steps, info=self.last)

    def step(self, *, epoch: int, stage: int, loss: float) -> None:
        self.bar.update(self.task, advance=1, info=f"loss {loss:.3f} {self.last}")

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.last = f"val acc largest {record['val_acc_largest']:.3f} smallest {record['val_acc_smallest']:.3f}"
        console.print(f"epoch {record['epoch']:>3} stage {record['stage']} loss {record['loss']:.4f} "
                      f"{self.last} ({record['seconds']:.0f}s)")


class SearchBars:
    """One rich progress bar per phase (predictors, each algorithm, export)."""

    def __init__(self) -> None:
        self.bar = make_progress()
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> SearchBars:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, key: str, done: int, total: int, info: str = "") -> None:
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(key, total=max(total, 1), info=info)
        self.bar.update(self.tasks[key], completed=done, total=max(total, 1), info=info)

    def phase(self, prefix: str) -> Callable[[str, int, int], None]:
        """A ``(description, done, total)`` callback, as the predictors call it."""
        return lambda desc, done, total: self.update(f"{prefix}: {desc}", done, total)

    def search(self, algorithm: str, n_evals: int, budget: int, hv: float) -> None:
        self.update(f"search {algorithm}", n_evals, budget, f"HV {hv:.4f}")

    def export(self, i: int, total: int, arch: str) -> None:
        self.update("export", i, total, arch)
