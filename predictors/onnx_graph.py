"""Kernels of any ONNX graph: op classes, FLOPs and bytes from inferred shapes, runtime fusion.

:func:`graph_kernels` reads a model (or a path), fixes its input shapes, runs
``onnx.shape_inference.infer_shapes`` and turns the nodes into the kernels a runtime launches,
fusing producer → consumer chains as that runtime does (``fusion_rules.yaml``).

Conventions (the same as :mod:`predictors.kernels`, so a CNN's ONNX gives the same MACs):

* ``flops = 2 * MACs``; only conv, linear (Gemm / MatMul with a constant weight) and matmul
  (two activations, e.g. attention) have MACs. Every other op counts 0 FLOPs: it is memory-bound.
* ``bytes`` = external input activations + output activations + weights, each element at
  ``bytes_per_element`` (the deployment precision); tensors inside a fused kernel are not moved.
* BN folded into the conv / linear before it (when the runtime fuses it) leaves ``cout`` bias
  values as the kernel's weights, whether or not the conv had a bias; ``params`` counts the same.
* Metadata ops (Reshape, Flatten, Squeeze, Unsqueeze, Shape, Identity, Dropout, Constant, …) and
  nodes computing only on constants (shape arithmetic, folded at build time) are no kernel.
* ``If``: both branches are read; their kernels carry ``branch="<node>.then"`` / ``".else"``
  so a caller can cost the taken and the not-taken path.
* Attention ``MatMul → [Div|Mul|Add|Where]* → Softmax → [Cast|Dropout]* → MatMul`` is detected;
  a runtime with ``attention: fused`` runs it as one ``attention`` kernel moving Q, K, V and the
  output (the scores stay on chip), otherwise its nodes are kernels of op class ``attention``.

Example::

    ks = graph_kernels(reference_graph("resnet50"), fusion="tensorrt")
    sum(k.macs for k in ks)     # 4.09e9
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx
import yaml
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from predictors.kernels import Kernel
from supernet.errors import ConfigError, unknown

# The ONNX opset every graph dynnas writes uses (exports, reference graphs, kernel graphs); hw_profiles/benches.py
# keeps its own copy, as hw_profiles imports no other dynnas package.
OPSET = 17

OP_CLASSES: Mapping[str, frozenset[str]] = {
    "norm": frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                       "LpNormalization", "RMSNormalization"}),
    "elementwise": frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Relu", "Clip", "Sigmoid", "HardSigmoid",
                              "HardSwish", "Gelu", "Erf", "Tanh", "Exp", "Log", "Neg", "Abs", "LeakyRelu", "PRelu",
                              "Elu", "Selu", "Softplus", "Mish", "Min", "Max", "Where", "Equal", "Greater", "Less",
                              "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Reciprocal", "Floor", "Ceil",
                              "Round", "Sign"}),
    "pool": frozenset({"GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool"}),
    "reduce": frozenset({"Softmax", "LogSoftmax", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd",
                         "ReduceL2", "ArgMax", "ArgMin", "CumSum"}),
    "data": frozenset({"Transpose", "Concat", "Gather", "GatherElements", "GatherND", "TopK", "ScatterND",
                       "ScatterElements", "Slice", "Split", "Expand", "Tile", "Pad", "Cast", "Resize", "DepthToSpace",
                       "SpaceToDepth", "Range", "NonZero"}),
    "free": frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Size", "Identity", "Constant",
                       "ConstantOfShape", "Dropout"}),
}
WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
SUPPORTED_OPS: frozenset[str] = frozenset().union(*OP_CLASSES.values(), WEIGHTED, {"If"})
_ACT_NAMES = {"Relu": "relu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid", "Sigmoid": "sigmoid",
              "Tanh": "tanh", "Gelu": "gelu", "LeakyRelu": "leakyrelu", "Elu": "elu"}
_SMALL = 64  # initializers up to this many elements stay in the graph shape inference sees (shapes, scalars)
RULES_FILE = Path(__file__).with_name("fusion_rules.yaml")


class GraphError(ConfigError):
    """An ONNX graph cannot be read into kernels (not ONNX, malformed, or shapes unknown)."""


class UnsupportedOpError(GraphError):
    """The graph uses ONNX ops the kernel extractor has no cost model for."""


class DynamicShapeError(GraphError):
    """An input has symbolic dimensions and no concrete shape was given."""


# ---- fusion rules -------------------------------------------------------------------------------
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _known_ops(ops: list[str]) -> list[str]:
    bad = sorted(set(ops) - SUPPORTED_OPS)
    if bad:
        raise ValueError(f"unknown ONNX ops {', '.join(bad)}; use ops of {', '.join(sorted(SUPPORTED_OPS))}")
    return ops


class Stage(_Frozen):
    """One optional step of a fusion chain: up to ``max`` consecutive nodes with an op in ``ops``."""

    ops: list[str] = Field(min_length=1)
    max: int = Field(default=1, ge=1)

    _ops = field_validator("ops")(classmethod(lambda cls, v: _known_ops(v)))


class Rule(_Frozen):
    """A chain starting at an ``anchor`` op, then the ``then`` stages in order."""

    anchor: list[str] = Field(min_length=1)
    then: list[Stage] = Field(default_factory=list)

    _anchor = field_validator("anchor")(classmethod(lambda cls, v: _known_ops(v)))


class Runtime(_Frozen):
    description: str
    source: str
    profile_runtimes: list[str] = Field(default_factory=list)  # device profiles' `runtime:` these rules stand for
    attention: Literal["fused", "split"]
    rules: list[Rule]
    elided: list[str] = Field(default_factory=list)  # ops the runtime removes (producers write their output in place)

    _elided = field_validator("elided")(classmethod(lambda cls, v: _known_ops(v)))


class FusionRules(_Frozen):
    format: Literal["dynnas-fusion-rules"]
    format_version: Literal[1]
    runtimes: dict[str, Runtime]

    @model_validator(mode="after")
    def _one_rule_set_per_profile_runtime(self) -> FusionRules:
        seen: dict[str, str] = {}
        for name, rt in self.runtimes.items():
            for r in rt.profile_runtimes:
                if r in seen:
                    raise ValueError(f"profile runtime {r!r} is listed under both {seen[r]!r} and {name!r}")
                seen[r] = name
        return self


@functools.cache
def fusion_rules(path: Path = RULES_FILE) -> FusionRules:
    """The runtimes' fusion rules, validated (``yaml.safe_load`` + pydantic)."""
    with open(path, encoding="utf-8") as f:
        return FusionRules.model_validate(yaml.safe_load(f))


def fusion_names() -> list[str]:
    """Names accepted by ``graph_kernels(fusion=...)``."""
    return sorted(fusion_rules().runtimes)


def runtime_fusion(runtime: str) -> str:
    """The fusion rules (a name of :func:`fusion_names`) a device profile's ``runtime:`` runs with."""
    for name, rt in fusion_rules().runtimes.items():
        if runtime in rt.profile_runtimes:
            return name
    known = sorted(r for rt in fusion_rules().runtimes.values() for r in rt.profile_runtimes)
    raise GraphError(f"runtime {runtime!r} has no fusion rules; add it to a runtime's profile_runtimes in "
                     f"predictors/fusion_rules.yaml (known: {', '.join(known)}).")


# ---- loading and shapes --------------------------------------------------------------------------
def load_model(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    """``model`` itself, or the ONNX file at that path; a :class:`GraphError` for anything else."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise GraphError(f"ONNX file '{path}' does not exist; pass the path of a .onnx model.")
    try:
        loaded = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise GraphError(f"'{path}' is not a readable ONNX model ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                         "pass a complete .onnx file.") from None
    if loaded.ir_version <= 0 or not loaded.graph.node or not loaded.graph.output:
        raise GraphError(f"'{path}' is not an ONNX model (no graph nodes or outputs; truncated or another format); "
                         "pass a complete .onnx file.")
    return loaded


def batch_is_dynamic(model: onnx.ModelProto | str | Path) -> bool:
    """True when the model has one data input whose only unset dimension is the first (the batch)."""
    g = load_model(model).graph
    init_names = {t.name for t in g.initializer}
    data_inputs = [i for i in g.input if i.name not in init_names]
    if len(data_inputs) != 1 or not data_inputs[0].type.tensor_type.HasField("shape"):
        return False
    dims = data_inputs[0].type.tensor_type.shape.dim
    unset = [j for j, d in enumerate(dims) if not d.HasField("dim_value") or d.dim_value <= 0]
    return unset == [0]


def _numel(dims: Iterable[int]) -> int:
    return int(math.prod(dims))


def _fix_inputs(graph: onnx.GraphProto, init_names: set[str],
                input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None, batch: int | None) -> None:
    data_inputs = [i for i in graph.input if i.name not in init_names]
    if isinstance(input_shape, Mapping):
        shapes = {str(k): tuple(int(d) for d in v) for k, v in input_shape.items()}
        missing = sorted(set(shapes) - {i.name for i in data_inputs})
        if missing:
            raise GraphError(f"--input-shape names inputs {', '.join(missing)} the graph does not have; its inputs: "
                             f"{', '.join(i.name for i in data_inputs)}.")
    elif input_shape is not None:
        if len(data_inputs) != 1:
            raise GraphError(f"the graph has {len(data_inputs)} inputs ({', '.join(i.name for i in data_inputs)}); "
                             "give one shape per input as a mapping name -> shape.")
        shapes = {data_inputs[0].name: tuple(int(d) for d in input_shape)}
    else:
        shapes = {}
    for inp in data_inputs:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in shapes:
            new = shapes[inp.name]
            if any(d <= 0 for d in new):
                raise GraphError(f"--input-shape for '{inp.name}' must be positive integers, but got {list(new)}.")
            if len(dims) and len(dims) != len(new):
                raise GraphError(f"input '{inp.name}' has {len(dims)} dimensions but --input-shape gives {len(new)} "
                                 f"({','.join(map(str, new))}); pass one size per dimension.")
            del dims[:]
            for d in new:
                dims.add().dim_value = d
        if batch is not None and len(dims) > 0:
            dims[0].Clear()
            dims[0].dim_value = batch
        symbolic = [d.dim_param or "?" for d in dims if not d.HasField("dim_value") or d.dim_value <= 0]
        if symbolic or not inp.type.tensor_type.HasField("shape"):
            raise DynamicShapeError(
                f"input '{inp.name}' has dynamic dimensions ({', '.join(symbolic) or 'no shape'}); pass its shape "
                "with --input-shape (e.g. --input-shape 1,3,224,224).")


def _light_model(model: onnx.ModelProto, input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None,
                 batch: int | None) -> onnx.ModelProto:
    """A copy without the big initializers' data (declared as inputs instead), shapes fixed: cheap to infer."""
    g = model.graph
    init_names = {t.name for t in g.initializer}
    small = [t for t in g.initializer if _numel(t.dims) <= _SMALL]
    declared = {i.name for i in g.input}
    moved = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
             for t in g.initializer if _numel(t.dims) > _SMALL and t.name not in declared]
    inputs = [i for i in g.input if i.name not in init_names or _numel(
        next(t.dims for t in g.initializer if t.name == i.name)) > _SMALL]
    light_graph = helper.make_graph(list(g.node), g.name or "graph", [*inputs, *moved], list(g.output),
                                    initializer=small, value_info=list(g.value_info))
    light = helper.make_model(light_graph, opset_imports=list(model.opset_import))
    light.ir_version = max(model.ir_version, 4)
    _fix_inputs(light.graph, init_names, input_shape, batch)
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx raises InferenceError, ValidationError or RuntimeError here
        raise GraphError(f"ONNX shape inference failed ({' '.join(str(e).split())[:200]}); check the model "
                         "with onnx.checker, or pass --input-shape if its inputs are wrong.") from None


@dataclass
class _Scope:
    """Shapes and constants visible in one graph (and its enclosing graphs)."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    consts: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)


def _collect(graph: onnx.GraphProto, scope: _Scope, init_dims: Mapping[str, tuple[int, ...]]) -> None:
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            scope.shapes[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in tt.shape.dim)
    for name, dims in init_dims.items():
        scope.shapes[name] = dims
        scope.consts.add(name)
    for t in graph.initializer:
        scope.shapes[t.name] = tuple(t.dims)
        scope.consts.add(t.name)
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _collect(a.g, scope, {})


# ---- per-node cost --------------------------------------------------------------------------------
@dataclass
class _Cost:
    op: str
    macs: int = 0
    params: int = 0  # weight elements the kernel reads (BN folded)
    cout: int = 0
    info: dict[str, int] = field(default_factory=dict)


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _shape(scope: _Scope, name: str, node: onnx.NodeProto) -> tuple[int, ...]:
    s = scope.shapes.get(name)
    if s is None or any(d < 0 for d in s):
        raise GraphError(f"shape of tensor '{name}' (at node '{node.name or node.op_type}', {node.op_type}) is unknown "
                         "after shape inference; pass --input-shape, or export the model with static shapes.")
    return s


def _cost(node: onnx.NodeProto, scope: _Scope) -> _Cost:
    op = node.op_type
    ins = [i for i in node.input if i]
    if op in ("Conv", "ConvTranspose"):
        x, w, y = (_shape(scope, n, node) for n in (ins[0], ins[1], node.output[0]))
        g = int(_attr(node, "group", 1))
        macs = _numel(y) * _numel(w[1:]) if op == "Conv" else _numel(x) * _numel(w[1:])
        cout = y[1]
        dw = op == "Conv" and g > 1 and g == x[1]
        k = int(w[2]) if len(w) > 2 else 1
        stride = list(_attr(node, "strides", [1]))[0]
        return _Cost("dwconv" if dw else "conv", macs, _numel(w) + (cout if len(ins) > 2 else 0), cout,
                     {"cin": x[1], "cout": cout, "kernel": k, "stride": int(stride), "groups": g,
                      "h_in": x[2] if len(x) > 2 else 1, "h_out": y[2] if len(y) > 2 else 1})
    if op in ("Gemm", "MatMul"):
        a, b, y = (_shape(scope, n, node) for n in (ins[0], ins[1], node.output[0]))
        trans_a = op == "Gemm" and int(_attr(node, "transA", 0))
        k = a[-2] if trans_a else a[-1]
        const_w = ins[1] in scope.consts
        params = (_numel(b) if const_w else 0) + (_numel(_shape(scope, ins[2], node)) if len(ins) > 2 else 0)
        return _Cost("linear" if const_w else "matmul", _numel(y) * k, params, y[-1],
                     {"cin": int(k), "cout": int(y[-1])})
    if op == "BatchNormalization":
        c = _shape(scope, ins[1], node)[0]
        return _Cost("norm", params=2 * c, cout=c)  # folded to a per-channel scale and shift
    cls = next(c for c, ops in OP_CLASSES.items() if op in ops)
    params = sum(_numel(_shape(scope, i, node)) for i in ins if i in scope.consts and _numel(scope.shapes[i]) > 1)
    if op == "ReduceMean":  # a mean over the spatial axes of a feature map is a pool
        x = _shape(scope, ins[0], node)
        axes = _attr(node, "axes", None)
        if len(x) == 4 and axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]:
            cls = "pool"
    if cls in ("data", "reduce", "pool") and op not in ("Concat", "Where"):
        params = 0  # index / axes / pads inputs are not weights
    return _Cost(cls, params=params)


# ---- graph walk --------------------------------------------------------------------------------
def _node_inputs(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs plus every tensor named inside the node's subgraphs (outer-scope reads)."""
    names = [i for i in node.input if i]
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            for n in a.g.node:
                names.extend(_node_inputs(n))
            names.extend(o.name for o in a.g.output)
    return names


def _node_name(node: onnx.NodeProto, i: int) -> str:
    return node.name or f"{node.op_type}_{i}"


@dataclass
class _Walk:
    scope: _Scope
    runtime: Runtime
    bpe: int
    kernels: list[Kernel] = field(default_factory=list)
    used_outside: Callable[[list[onnx.NodeProto]], set[str]] = lambda group: set()  # set per graph by _walk


def _attention_groups(nodes: Sequence[onnx.NodeProto], producer: Mapping[str, int],
                      consumers: Mapping[str, list[int]], scope: _Scope) -> dict[int, list[int]]:
    """First node index → indices of one detected attention block ``MatMul … Softmax … MatMul``."""
    def sole(t: str) -> int | None:
        c = consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in scope.outputs else None

    groups: dict[int, list[int]] = {}
    for s, node in enumerate(nodes):
        if node.op_type != "Softmax":
            continue
        back, i = [], s
        while True:  # scale / mask ops back to the QK^T matmul
            p = producer.get(nodes[i].input[0])
            if p is None or sole(nodes[p].output[0]) is None:
                break
            if nodes[p].op_type == "MatMul" and not any(x in scope.consts for x in nodes[p].input):
                back.append(p)
                break
            if nodes[p].op_type not in ("Div", "Mul", "Add", "Where", "Cast"):
                break
            back.append(p)
            i = p
        if not back or nodes[back[-1]].op_type != "MatMul":
            continue
        fwd, j = [], s
        while (c := sole(nodes[j].output[0])) is not None and nodes[c].op_type in ("Cast", "Dropout"):
            fwd.append(c)
            j = c
        c = sole(nodes[j].output[0])
        if c is None or nodes[c].op_type != "MatMul" or nodes[c].input[0] != nodes[j].output[0] \
                or nodes[c].input[1] in scope.consts:
            continue
        idx = sorted([*back, s, *fwd, c])
        groups[idx[0]] = idx
    return groups


def _chain(start: int, nodes: Sequence[onnx.NodeProto], rules: Sequence[Rule], consumers: Mapping[str, list[int]],
           taken: set[int], scope: _Scope) -> list[int]:
    """The longest chain a rule fuses from node ``start`` (just ``[start]`` when none applies)."""
    best = [start]
    for rule in rules:
        if nodes[start].op_type not in rule.anchor:
            continue
        chain, cur = [start], start
        for stage in rule.then:
            for _ in range(stage.max):
                outs = nodes[cur].output
                c = consumers.get(outs[0], []) if len(outs) == 1 else []
                if len(c) != 1 or outs[0] in scope.outputs or c[0] in taken or nodes[c[0]].op_type not in stage.ops:
                    break
                cur = c[0]
                chain.append(cur)
        if len(chain) > len(best):
            best = chain
    return best


def _act(nodes: Sequence[onnx.NodeProto], scope: _Scope) -> str:
    for n in nodes:
        if n.op_type == "Clip":
            return "relu6" if len(n.input) > 2 and n.input[2] else "clip"
        if n.op_type in _ACT_NAMES:
            return _ACT_NAMES[n.op_type]
    return "none"


def _emit(group: list[onnx.NodeProto], op: str, w: _Walk, branch: str, index: int) -> None:
    scope, costs = w.scope, [_cost(n, w.scope) for n in group]
    inside = {o for n in group for o in n.output}
    anchor = costs[0]
    macs = sum(c.macs for c in costs)
    if anchor.op in ("conv", "dwconv", "linear") and len(group) > 1:
        # BN folds into the weighted op (one bias per output channel unless it has one); a bias Add's
        # constant and any other absorbed constants are read as weights
        has_bias = len([i for i in group[0].input if i]) > 2 or any(
            n.op_type == "Add" and any(i in scope.consts for i in n.input) for n in group[1:])
        folds = any(n.op_type == "BatchNormalization" for n in group[1:])
        params = anchor.params + (anchor.cout if folds and not has_bias else 0)
        params += sum(c.params for n, c in zip(group[1:], costs[1:], strict=True) if n.op_type != "BatchNormalization")
    else:
        params = sum(c.params for c in costs)
    ext_inputs: list[str] = []
    for n in group:
        for i in n.input:
            if i and i not in inside and i not in ext_inputs and i not in scope.consts:
                ext_inputs.append(i)
    outputs = [o for n in group for o in n.output if o and (o in scope.outputs or o in w.used_outside(group))]
    if not outputs:
        outputs = [group[-1].output[0]]
    act_elems = sum(_numel(_shape(scope, t, group[0])) for t in ext_inputs)
    out_elems = sum(_numel(_shape(scope, t, group[-1])) for t in outputs)
    out_shape = _shape(scope, outputs[0], group[-1])
    batch = int(out_shape[0]) if out_shape else 1
    info = anchor.info
    names = tuple(_node_name(n, index + k) for k, n in enumerate(group))
    ops = "+".join(n.op_type for n in group)
    in_shapes = ",".join("x".join(map(str, _shape(scope, t, group[0]))) for t in ext_inputs)
    key = f"{op}:{ops}:{in_shapes}>{'x'.join(map(str, out_shape))}"
    w.kernels.append(Kernel(
        name=names[0], op=op, flops=2 * macs, bytes=(act_elems + out_elems + params) * w.bpe, shape_key=key,
        macs=macs, params=params, batch=batch, cin=int(info.get("cin", 0)), cout=int(info.get("cout", 0)),
        kernel=int(info.get("kernel", 0)), stride=int(info.get("stride", 1)), groups=int(info.get("groups", 1)),
        h_in=int(info.get("h_in", 1)), h_out=int(info.get("h_out", 1)), act=_act(group[1:], scope),
        out_shape=tuple(int(d) for d in out_shape), branch=branch, onnx_nodes=names))


def _walk(graph: onnx.GraphProto, w: _Walk, branch: str) -> None:
    nodes = list(graph.node)
    scope = w.scope
    scope.outputs |= {o.name for o in graph.output}
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in set(_node_inputs(n)):
            consumers.setdefault(t, []).append(i)
    w.used_outside = lambda group: {t for n in group for t in n.output  # noqa: E731
                                    if any(nodes[c] not in group for c in consumers.get(t, []))}
    attention = _attention_groups(nodes, producer, consumers, scope)
    in_attention = {i for idx in attention.values() for i in idx}
    taken: set[int] = set()
    for i, node in enumerate(nodes):
        if i in taken:
            continue
        if node.op_type == "Constant" or all(t in scope.consts for t in _node_inputs(node)):
            scope.consts.update(node.output)  # folded when the engine is built
            taken.add(i)
            continue
        if node.op_type in OP_CLASSES["free"] or node.op_type in w.runtime.elided:
            if node.op_type in ("Shape", "Size"):
                scope.consts.update(node.output)  # static shapes: shape arithmetic below folds
            taken.add(i)
            continue
        if node.op_type == "If":
            taken.add(i)
            name = _node_name(node, i)
            for a in sorted(node.attribute, key=lambda a: (a.name != "then_branch", a.name)):
                if a.type == onnx.AttributeProto.GRAPH:
                    sub = f"{branch}/{name}.{a.name.removesuffix('_branch')}".lstrip("/")
                    _walk(a.g, w, sub)
            w.used_outside = lambda group: {t for n in group for t in n.output  # noqa: E731
                                            if any(nodes[c] not in group for c in consumers.get(t, []))}
            continue
        if i in attention and w.runtime.attention == "fused":
            idx = attention[i]
            taken.update(idx)
            _emit([nodes[j] for j in idx], "attention", w, branch, i)
            continue
        chain = [i] if i in in_attention else _chain(i, nodes, w.runtime.rules, consumers, taken | in_attention,
                                                      scope)
        taken.update(chain)
        group = [nodes[j] for j in chain]
        op = "attention" if i in in_attention else _cost(node, scope).op
        _emit(group, op, w, branch, i)


def _check_ops(graph: onnx.GraphProto) -> None:
    seen: set[str] = set()

    def visit(g: onnx.GraphProto) -> None:
        for n in g.node:
            if n.domain not in ("", "ai.onnx"):
                seen.add(f"{n.domain}.{n.op_type}")
            else:
                seen.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    visit(a.g)

    visit(graph)
    bad = sorted(seen - SUPPORTED_OPS)
    if bad:
        raise UnsupportedOpError(f"unsupported ONNX ops: {', '.join(bad)}; covered ops: "
                                 f"{', '.join(sorted(SUPPORTED_OPS))}.")


def graph_kernels(model: onnx.ModelProto | str | Path, *,
                  input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None = None, batch: int | None = None,
                  bytes_per_element: int = 4, fusion: str = "tensorrt") -> list[Kernel]:
    """Kernels a runtime (``fusion``: a runtime of ``fusion_rules.yaml``) launches for an ONNX model.

    ``input_shape`` fixes the data input's shape (a mapping name → shape for several inputs);
    ``batch`` replaces every data input's first dimension. Raises :class:`UnsupportedOpError`,
    :class:`DynamicShapeError` or :class:`GraphError` with a one-line message.
    """
    rules = fusion_rules()
    if fusion not in rules.runtimes:
        raise unknown("fusion runtime", fusion, sorted(rules.runtimes))
    if batch is not None and batch <= 0:
        raise GraphError(f"batch must be >= 1, but got {batch}.")
    if bytes_per_element <= 0:
        raise GraphError(f"bytes_per_element must be >= 1, but got {bytes_per_element}.")
    original = load_model(model)
    _check_ops(original.graph)
    light = _light_model(original, input_shape, batch)
    scope = _Scope()
    big = {t.name: tuple(t.dims) for t in original.graph.initializer if _numel(t.dims) > _SMALL}
    _collect(light.graph, scope, big)
    w = _Walk(scope, rules.runtimes[fusion], bytes_per_element)
    _walk(light.graph, w, "")
    return w.kernels


def graph_params(model: onnx.ModelProto) -> int:
    """Trainable parameters of a model as torchvision counts them: every float initializer element,
    except BatchNormalization's running mean and variance (buffers, not parameters)."""
    buffers = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)
    return sum(_numel(t.dims) for t in model.graph.initializer
               if t.data_type in floats and t.name not in buffers and len(t.dims) > 0)  # scalars: Clip bounds etc.
