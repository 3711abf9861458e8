"""Run an exported dynnas subnet: a chain of ONNX stages with per-sample early exits.

This file imports only numpy and onnxruntime (OpenVINO when asked for), so it can be copied to a
device on its own::

    from runtime import DynamicSession          # or: from supernet.runtime import DynamicSession
    sess = DynamicSession("runs/demo/subnets/3f2a9c1e")   # the folder holding manifest.json
    logits, exit_index = sess.run(images)       # float32 NCHW in [0, 1]; any batch size

The folder's ``manifest.json`` (format ``dynnas-segments``, version 1; see ``docs`` or the
export's README) lists the stages in order. Each stage is one ONNX graph; it reads named tensors
(the ``image``, or a hidden tensor an earlier stage wrote) and writes named tensors. A stage with
an exit writes ``logits`` and ``score`` tensors: a sample leaves there when ``score >= threshold``;
the last stage has no threshold (every sample still running leaves there).

At batch N every stage runs only on the samples that have not left yet (batch compaction), and
the outputs come back in the input order: per sample, the same result as at batch 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "dynnas-segments"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENGINES = ("onnxruntime", "openvino")
SCORE_RANGES = {"confidence": (0.0, 1.0), "entropy": (-1.0, 0.0)}  # the range of each criterion's score


class RuntimeInputError(ValueError):
    """A manifest, a stage file or an input the runtime cannot use; the message names the fix."""


def _bad(folder: Path, why: str) -> RuntimeInputError:
    return RuntimeInputError(f"export '{folder}' {why}")


def read_manifest(folder: str | os.PathLike[str], *, check_hashes: bool = False) -> dict[str, Any]:
    """Read and validate ``folder/manifest.json``; raises :class:`RuntimeInputError` naming the fix."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise _bad(folder, f"has no {MANIFEST}; pass the folder of one exported subnet (re-export with dynnas "
                           "export to write one).")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(folder, f"has an unreadable {MANIFEST} ({e.__class__.__name__}); re-export the subnet.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(folder, f"has a {MANIFEST} that is not a '{FORMAT}' manifest; pass a dynnas export folder.")
    if doc.get("format_version") != FORMAT_VERSION:
        raise _bad(folder, f"has manifest version {doc.get('format_version')!r}, but this runtime reads version "
                           f"{FORMAT_VERSION}; use the runtime that came with the export, or re-export it.")
    try:
        stages = doc["stages"]
        inp = doc["input"]
        shape, dtype, name = list(inp["shape"]), str(inp["dtype"]), str(inp["name"])
        if not stages or not isinstance(stages, list):
            raise ValueError("no stages")
        known = {name}
        for i, st in enumerate(stages):
            for key in ("name", "file", "inputs", "outputs", "exit"):
                if key not in st:
                    raise ValueError(f"stage {i} lacks '{key}'")
            missing = [t for t in st["inputs"] if t not in known]
            if missing:
                raise ValueError(f"stage {st['name']!r} reads {missing[0]!r} before any stage writes it")
            known.update(st["outputs"])
            rule = st["exit"]
            last = i == len(stages) - 1
            if rule.get("logits") not in st["outputs"]:
                raise ValueError(f"stage {st['name']!r} exits with {rule.get('logits')!r}, which it does not write")
            if last != (rule.get("threshold") is None):
                raise ValueError("only the last stage may (and must) have no threshold")
            if not last:
                _check_rule(folder, st["name"], rule, st["outputs"])
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, RuntimeInputError):
            raise
        raise _bad(folder, f"has a malformed {MANIFEST} ({e}); re-export the subnet.") from None
    if dtype != "float32" or len(shape) != 4:
        raise _bad(folder, f"declares input {name!r} as {dtype} {shape}; this runtime takes float32 NCHW images.")
    for st in stages:
        f = folder / st["file"]
        if Path(st["file"]).is_absolute() or ".." in Path(st["file"]).parts:
            raise _bad(folder, f"names stage file {st['file']!r} outside its folder; re-export the subnet.")
        if not f.is_file():
            raise _bad(folder, f"names stage file '{st['file']}', which is missing; copy the whole export folder.")
        want = (doc.get("sha256") or {}).get(st["file"])
        if check_hashes and want and hashlib.sha256(f.read_bytes()).hexdigest() != want:
            raise _bad(folder, f"stage file '{st['file']}' does not match its sha256 in {MANIFEST}; copy it again.")
    return doc


def _check_rule(folder: Path, stage: str, rule: dict[str, Any], outputs: list[str]) -> None:
    criterion = rule.get("criterion")
    if criterion not in SCORE_RANGES:
        raise _bad(folder, f"stage {stage!r} has exit criterion {criterion!r}; known: {', '.join(SCORE_RANGES)}.")
    if rule.get("score") not in outputs:
        raise _bad(folder, f"stage {stage!r} tests score {rule.get('score')!r}, which it does not write; "
                           "re-export the subnet.")
    lo, hi = SCORE_RANGES[criterion]
    t = rule["threshold"]
    if not isinstance(t, int | float) or not math.isfinite(t) or not lo <= t <= hi:
        raise _bad(folder, f"stage {stage!r} has threshold {t!r} outside the {criterion} score's range [{lo}, {hi}]; "
                           "fix the threshold in the manifest or re-export the subnet.")


class _OrtStage:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def __call__(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(names, feeds)


class _OpenVINOStage:
    def __init__(self, path: Path, threads: int) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeInputError("--engine openvino needs OpenVINO: pip install openvino") from None
        core = ov.Core()
        # f32: OpenVINO runs bf16 by default on CPUs with AMX or AVX-512 BF16, which moves logits by ~1e-2
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                  "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.ports = {name: port for port in self.compiled.outputs for name in port.get_names()}

    def __call__(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(feeds)
        return [np.array(res[self.ports[n]]) for n in names]


def open_graph(path: str | os.PathLike[str], *, engine: str = "onnxruntime", threads: int = 1) -> Any:
    """One ONNX graph on ``engine``: a callable ``(output_names, feeds) -> outputs`` (what each stage runs on)."""
    if engine not in ENGINES:
        raise RuntimeInputError(f"unknown engine {engine!r}; pass one of: {', '.join(ENGINES)}.")
    return (_OrtStage if engine == "onnxruntime" else _OpenVINOStage)(Path(path), threads)


class DynamicSession:
    """An exported subnet, ready to run: ``run(x)`` → ``(logits, exit_index)`` per sample (see module doc)."""

    def __init__(self, folder: str | os.PathLike[str], *, engine: str = "onnxruntime", threads: int = 1) -> None:
        if engine not in ENGINES:
            raise RuntimeInputError(f"unknown engine {engine!r}; pass one of: {', '.join(ENGINES)}.")
        if threads < 1:
            raise RuntimeInputError(f"threads must be >= 1, but got {threads}.")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.engine = engine
        inp = self.manifest["input"]
        self.input_name = str(inp["name"])
        self.input_shape = tuple(inp["shape"][1:])
        stages = self.manifest["stages"]
        self.stages = []
        for st in stages:
            rule = st["exit"]
            t = rule.get("threshold")
            wanted = list(st["outputs"])
            self.stages.append((open_graph(self.folder / st["file"], engine=engine, threads=threads),
                                list(st["inputs"]), wanted,
                                wanted.index(rule["logits"]),
                                None if t is None else wanted.index(rule["score"]), t, int(rule["index"])))
        self.n_stages = len(self.stages)
        # the tensors each stage's successors still read: all that batch compaction has to carry on
        self._needed = [sorted({k for later in self.stages[i + 1:] for k in later[1]}) for i in range(len(self.stages))]
        self.exit_names = list(self.manifest.get("exit_names", []))

    def with_thresholds(self, thresholds: list[float | None]) -> DynamicSession:
        """A copy that shares this session's graphs, with every non-final stage's threshold replaced
        (``None`` keeps one): timing a forced path without loading the graphs again."""
        out = object.__new__(DynamicSession)
        out.__dict__.update(self.__dict__)
        last = len(self.stages) - 1
        out.stages = [(*st[:5], st[5] if i == last or thresholds[i] is None else float(thresholds[i]), st[6])
                      for i, st in enumerate(self.stages)]
        return out

    def check_input(self, x: Any) -> np.ndarray:
        """``x`` as a contiguous float32 NCHW batch, or :class:`RuntimeInputError` naming the expected input."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise RuntimeInputError(f"input must be a float32 numpy array of shape (N, {', '.join(map(str, self.input_shape))}), "
                                    f"but got {getattr(x, 'dtype', type(x).__name__)}; convert with x.astype(np.float32).")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape or x.shape[0] < 1:
            raise RuntimeInputError(f"input must have shape (N, {', '.join(map(str, self.input_shape))}) with N >= 1, "
                                    f"but got {tuple(x.shape)}.")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, classes) float32, exit_index (N,) int64)``: each sample leaves at the first stage
        whose score reaches its threshold; later stages run only on the samples still going."""
        x = self.check_input(x)
        n = x.shape[0]
        env = {self.input_name: x}
        if n == 1:  # the latency path: no bookkeeping beyond the compare
            for call, inputs, outputs, li, si, t, index in self.stages:
                outs = call(outputs, {k: env[k] for k in inputs})
                if t is None or outs[si][0] >= t:
                    return outs[li], np.array([index], dtype=np.int64)
                env.update(zip(outputs, outs, strict=True))
            raise AssertionError("the last stage always exits")  # pragma: no cover
        alive = np.arange(n)
        logits: np.ndarray | None = None
        taken = np.full(n, -1, dtype=np.int64)
        for i, (call, inputs, outputs, li, si, t, index) in enumerate(self.stages):
            outs = call(outputs, {k: env[k] for k in inputs})
            if logits is None:
                logits = np.empty((n, outs[li].shape[1]), dtype=np.float32)
            if t is None:
                logits[alive] = outs[li]
                taken[alive] = index
                break
            go = outs[si] >= t
            logits[alive[go]] = outs[li][go]
            taken[alive[go]] = index
            stay = ~go
            if not stay.any():
                break
            alive = alive[stay]
            env.update(zip(outputs, outs, strict=True))
            env = {k: np.ascontiguousarray(env[k][stay]) for k in self._needed[i] if k in env}
        assert logits is not None
        return logits, taken
