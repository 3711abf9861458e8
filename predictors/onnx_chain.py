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

import numpy as np
import torch

from predictors.onnx_io import module_onnx_bytes
from supernet.files import atomic_write, write_json
from supernet.runtime import FORMAT, FORMAT_VERSION, MANIFEST, SCORE_RANGES
from supernet.stages import IMAGE, Stage

__all__ = ["compose_if_model", "exit_names", "export_chain", "static_manifest", "timing_chain"]

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


def compose_if_model(folder: Path, input_shape: Sequence[int], *, num_classes: int) -> bytes:
    """The single-file model of a segment chain: its stage graphs joined by nested ONNX ``If`` nodes (batch 1).

    Stage ``i``'s nodes run, then ``If(score_i >= threshold_i)``: the then-branch returns stage ``i``'s logits and
    exit index, the else-branch holds the next stage's nodes and its own ``If``; the last stage returns its logits.
    Built from the verified stage files by graph surgery, in milliseconds (no tracing); outputs ``logits``
    ``(1, classes)`` and ``exit_index`` ``(1,)`` int64, as the manifest's ``exit.index`` counts.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from predictors.onnx_io import INPUT_NAME, OUTPUT_NAME, clean_onnx
    from supernet.runtime import read_manifest

    stages = read_manifest(folder)["stages"]
    graphs = [onnx.load(str(Path(folder) / st["file"])) for st in stages]
    initializers: list[onnx.TensorProto] = []
    opset = max(op.version for g in graphs for op in g.opset_import if op.domain in ("", "ai.onnx"))
    global_names = {IMAGE: INPUT_NAME}  # a chain-level tensor name -> its name in the composed model

    def exit_index(i: int, index: int, out: str) -> onnx.NodeProto:
        value = numpy_helper.from_array(np.array([index], dtype=np.int64), f"s{i}/exit_index_value")
        return helper.make_node("Constant", [], [out], value=value)

    def inline(i: int, st: dict[str, Any]) -> list[onnx.NodeProto]:
        """Stage ``i``'s nodes, every tensor renamed ``s<i>/...`` (its inputs: the earlier stages' outputs)."""
        g = graphs[i].graph
        rename = {name: global_names[name] for name in st["inputs"]}

        def r(name: str) -> str:
            if not name:
                return name
            if name not in rename:
                rename[name] = f"s{i}/{name}"
            return rename[name]

        for t in g.initializer:
            t.name = r(t.name)
            initializers.append(t)
        nodes = []
        for n in g.node:
            n.input[:] = [r(x) for x in n.input]
            n.output[:] = [r(x) for x in n.output]
            n.name = f"s{i}/{n.name}"
            for a in n.attribute:  # a stage's own subgraphs (none today) would need the same renaming
                if a.g.node or a.graphs:
                    raise ValueError(f"stage {st['name']!r} has nested subgraphs; compose_if_model cannot inline it")
            nodes.append(n)
        for name in st["outputs"]:
            global_names[name] = r(name)
        return nodes

    def leave(i: int, logits: str, index: int) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Identity", [logits], [f"s{i}/leave_logits"]), exit_index(i, index, f"s{i}/leave_index")],
            f"leave_{i}", [], [helper.make_tensor_value_info(f"s{i}/leave_logits", TensorProto.FLOAT, [1, num_classes]),
                               helper.make_tensor_value_info(f"s{i}/leave_index", TensorProto.INT64, [1])])

    def chain_from(i: int, out_logits: str, out_index: str) -> list[onnx.NodeProto]:
        """Stage ``i`` onwards, writing ``out_logits`` / ``out_index``."""
        st = stages[i]
        nodes = inline(i, st)
        rule = st["exit"]
        logits = global_names[rule["logits"]]
        if i == len(stages) - 1:
            return [*nodes, helper.make_node("Identity", [logits], [out_logits]),
                    exit_index(i, int(rule["index"]), out_index)]
        thr = numpy_helper.from_array(np.array(float(rule["threshold"]), dtype=np.float32), f"s{i}/threshold")
        initializers.append(thr)
        cond = f"s{i}/passes"
        nodes.append(helper.make_node("GreaterOrEqual", [global_names[rule["score"]], thr.name], [cond]))
        rest_logits, rest_index = f"s{i}/rest_logits", f"s{i}/rest_index"
        rest = helper.make_graph(
            chain_from(i + 1, rest_logits, rest_index), f"rest_{i}", [],
            [helper.make_tensor_value_info(rest_logits, TensorProto.FLOAT, [1, num_classes]),
             helper.make_tensor_value_info(rest_index, TensorProto.INT64, [1])])
        nodes.append(helper.make_node("If", [cond], [out_logits, out_index], name=f"s{i}/exit",
                                      then_branch=leave(i, logits, int(rule["index"])), else_branch=rest))
        return nodes

    nodes = chain_from(0, OUTPUT_NAME, "exit_index")
    graph = helper.make_graph(
        nodes, "dynnas_chain_if", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, *input_shape[1:]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, num_classes]),
         helper.make_tensor_value_info("exit_index", TensorProto.INT64, [1])], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dynnas")
    model.ir_version = 8
    data = clean_onnx(model.SerializeToString())
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return data
