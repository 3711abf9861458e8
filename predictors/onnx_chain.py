"""Segment export: a subnet as a chain of ONNX graphs plus ``manifest.json``, what :mod:`supernet.runtime` runs.

``export_chain(stages, example, folder, ...)`` writes one ONNX file per stage of
:func:`supernet.stages.build_stages` (``stage<i>_<name>.onnx``) and the manifest. A static
subnet is a chain of one stage whose file is the subnet's ``model.onnx``
(:func:`static_manifest`). The manifest (format ``dynnas-segments``, version 1) is enough to
write a runner in any language:

* ``input``: name, shape (``null`` = any batch), dtype, layout, value range, normalisation (inside the graphs);
* ``stages``, in order: ``file``; ``inputs`` and ``outputs`` (tensor names, equal to the graph's
  input and output names); ``exit``: ``index`` (the exit index reported for samples leaving
  there), ``logits`` (the tensor returned), and, on every stage but the last, ``score``,
  ``criterion``, ``temperature`` and ``threshold``: a sample leaves when ``score >= threshold``;
* ``exit_names``: what each exit index means; ``sha256`` of every file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from predictors.onnx_io import module_onnx_bytes
from supernet.files import atomic_write, write_json
from supernet.runtime import FORMAT, FORMAT_VERSION, MANIFEST, SCORE_RANGES
from supernet.stages import IMAGE, Stage

__all__ = ["MANIFEST", "export_chain", "exit_names", "static_manifest"]

HOW_TO_RUN = ("Run the stages in order. Feed each stage the tensors named in its inputs ('image': float32 NCHW in "
              "[0, 1], normalisation is inside the graphs). After a stage with a threshold, a sample whose score "
              "output is >= threshold leaves with that stage's logits and exit index; only the samples still going "
              "run the next stage. The last stage has no threshold: every sample still going leaves there.")


def exit_names(n_exits: int, cascade: bool) -> list[str]:
    """What each exit index means: ``[scout,] exit0, …, final``."""
    return [*(["scout"] if cascade else []), *(f"exit{e}" for e in range(n_exits)), "final"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _document(folder: Path, stages: list[dict[str, Any]], input_shape: Sequence[int],
              normalisation: dict[str, Any], names: list[str], classes: Sequence[str]) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "how_to_run": HOW_TO_RUN,
        "input": {"name": IMAGE, "shape": [None, *input_shape[1:]], "dtype": "float32", "layout": "NCHW",
                  "range": [0.0, 1.0], "normalisation": normalisation},
        "output": {"logits": "float32 (N, classes)", "exit_index": "int64 (N,): the index into exit_names"},
        "exit_names": names,
        "classes": list(classes),
        "score_ranges": {k: list(v) for k, v in SCORE_RANGES.items()},
        "stages": stages,
        "sha256": {st["file"]: _sha(folder / st["file"]) for st in stages},
    }


def _rule(stage: Stage, last: bool) -> dict[str, Any]:
    r = stage.exit
    out: dict[str, Any] = {"index": r.index, "name": None, "logits": r.logits}
    if not last:
        out |= {"score": r.score, "criterion": r.criterion, "temperature": r.temperature, "threshold": r.threshold}
    return out


@torch.no_grad()
def export_chain(stages: Sequence[Stage], example: torch.Tensor, folder: Path, *, normalisation: dict[str, Any],
                 names: list[str], classes: Sequence[str]) -> dict[str, Any]:
    """Write every stage of ``stages`` as ``folder/stage<i>_<name>.onnx`` (dynamic batch) and ``manifest.json``.

    ``example`` is one input image batch (N×C×H×W); each later stage is traced on what the earlier
    ones output for it. Returns the manifest document.
    """
    env: dict[str, torch.Tensor] = {IMAGE: example}
    docs = []
    for i, stage in enumerate(stages):
        args = tuple(env[n] for n in stage.inputs)
        data = module_onnx_bytes(stage.module, args, list(stage.inputs), list(stage.outputs))
        file = f"stage{i}_{stage.name}.onnx"
        atomic_write(folder / file, lambda p, data=data: p.write_bytes(data))
        env.update(zip(stage.outputs, stage.module(*args), strict=True))
        last = i == len(stages) - 1
        rule = _rule(stage, last)
        rule["name"] = names[stage.exit.index]
        docs.append({"name": stage.name, "file": file, "inputs": list(stage.inputs), "outputs": list(stage.outputs),
                     "exit": rule, "blocks": list(stage.blocks), "exit_head": stage.head})
    doc = _document(folder, docs, tuple(example.shape), normalisation, names, classes)
    write_json(folder / MANIFEST, doc)
    return doc


def static_manifest(folder: Path, model_file: str, input_shape: Sequence[int], *, normalisation: dict[str, Any],
                    classes: Sequence[str], n_blocks: int) -> dict[str, Any]:
    """``manifest.json`` of a static subnet: one stage, the subnet's own ONNX file (already in ``folder``)."""
    stage = {"name": "final", "file": model_file, "inputs": [IMAGE], "outputs": ["logits"],
             "exit": {"index": 0, "name": "final", "logits": "logits"}, "blocks": list(range(n_blocks)),
             "exit_head": None}
    doc = _document(folder, [stage], input_shape, normalisation, ["final"], classes)
    write_json(folder / MANIFEST, doc)
    return doc



def timing_chain(net: torch.nn.Module, mask: Sequence[int], input_shape: Sequence[int], folder: Path) -> int:
    """Export ``net`` (a static subnet with exit heads) cut at every exit of ``mask`` into ``folder``, with
    placeholder thresholds (a timing run overrides them, see ``DynamicSession.with_thresholds``); returns
    the number of stages."""
    from supernet.stages import build_stages

    stages = build_stages(net, mask, [0.5 if m else None for m in mask])
    export_chain(stages, torch.zeros(tuple(input_shape)), folder, normalisation={},
                 names=exit_names(len(mask), False), classes=[])
    return len(stages)
