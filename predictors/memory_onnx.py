"""Memory of any ONNX model (path (a) of :mod:`predictors.memory`): liveness over the graph's tensors.

:func:`onnx_memory` runs onnx shape inference, orders the nodes topologically and walks them, keeping
each tensor live from its producer to its last consumer under the
:class:`~predictors.memory_rules.LivenessRules` (aliases, in-place ops, conv + add fusion, ``If``
branches, onnxruntime's blocked layout).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from predictors.memory_rules import LivenessRules, MemoryEstimate, _precision_bytes, _up
from predictors.onnx_graph import GraphError, _light_model, load_model

__all__ = ["onnx_memory"]

ALIAS_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout"})
INPLACE_OPS = frozenset({"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "Elu", "Selu",
                         "Gelu", "Erf", "Softplus", "Mish", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Floor",
                         "Ceil", "Round", "Sign", "BatchNormalization"})
_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})
# what onnxruntime's NCHWc pass converts besides Conv (rule 5)
# element-wise with a constant second operand (a bias add, a scale): fused into the producer by onnxruntime
# (MatMulAddFusion, MatMulScaleFusion) and TensorRT, so they run in place like a unary op (rule 2)
CONST_OPERAND_OPS = frozenset({"Add", "Sub", "Mul", "Div"})
NCHWC_POOLS = frozenset({"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"})
NCHWC_UNARY = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish",
                         "BatchNormalization"})
NCHWC_BINARY = frozenset({"Add", "Sum", "Mul"})


# ---- path (a): any ONNX graph ---------------------------------------------------------------------------
def _elem_bytes(data_type: int, bpe: int | None) -> int:
    if bpe is not None and data_type in _FLOATS:
        return bpe
    if data_type == TensorProto.UNDEFINED:
        raise GraphError("a tensor has an undefined element type after shape inference; export the model with "
                         "typed outputs.")
    return int(helper.tensor_dtype_to_np_dtype(data_type).itemsize)


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]


def _walk_graphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for g in _subgraphs(node):
            yield from _walk_graphs(g)


def _reads(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs plus every outer tensor the node's subgraphs read (implicit inputs)."""
    names = [i for i in node.input if i]
    for g in _subgraphs(node):
        inner = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
        for n in g.node:
            names.extend(r for r in _reads(n) if r not in inner)
        names.extend(o.name for o in g.output if o.name not in inner)
    return list(dict.fromkeys(names))


def _order(graph: onnx.GraphProto, known: set[str]) -> list[int]:
    """Node indices in a topological order, the file's order where it already is one (stable Kahn)."""
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    deps = [{producer[r] for r in _reads(n) if r in producer and r not in known} for n in nodes]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    missing = [len(d) for d in deps]
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users.get(i, []):
            missing[j] -= 1
            if missing[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        raise GraphError(f"graph '{graph.name}' has a cycle ({len(nodes) - len(order)} nodes never become ready); "
                         "pass a valid ONNX model (onnx.checker.check_model).")
    return order


def _topological(graph: onnx.GraphProto, known: set[str]) -> list[onnx.NodeProto]:
    nodes = list(graph.node)
    return [nodes[i] for i in _order(graph, known)]


class _Graphs:
    """Types, shapes and constants of a model and all its subgraphs, after shape inference."""

    def __init__(self, light: onnx.ModelProto, original: onnx.ModelProto, bpe: int | None) -> None:
        self.bpe = bpe
        self.types: dict[str, tuple[int, tuple[int, ...] | None]] = {}
        for g in [*_walk_graphs(light.graph), *_walk_graphs(original.graph)]:
            for vi in [*g.input, *g.value_info, *g.output]:
                tt = vi.type.tensor_type
                shape = (tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in tt.shape.dim)
                         if tt.HasField("shape") else None)
                old = self.types.get(vi.name)
                if old is None or (old[1] is None or -1 in old[1]) and shape is not None:
                    self.types[vi.name] = (tt.elem_type, shape)
            for t in g.initializer:
                self.types[t.name] = (t.data_type, tuple(t.dims))
        self.initializers = {t.name for g in _walk_graphs(original.graph) for t in g.initializer}
        self.padded: dict[str, int] = {}  # rule 5: tensor -> its channel count in the blocked layout
        self.padded_inits: dict[str, tuple[int, ...]] = {}  # rule 5: conv filter / bias -> its padded dims

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.types.get(name, (TensorProto.UNDEFINED, None))[1]

    def nbytes(self, name: str, at: str) -> int:
        dtype, shape = self.types.get(name, (TensorProto.UNDEFINED, None))
        if shape is None or any(d < 0 for d in shape):
            raise GraphError(f"shape of tensor '{name}' (at node '{at}') is unknown after shape inference; pass "
                             "input_shape / batch, or export the model with static shapes.")
        if name in self.padded:
            shape = (shape[0], self.padded[name], *shape[2:])
        return math.prod(shape) * _elem_bytes(dtype, self.bpe)


def _weight_bytes(original: onnx.ModelProto, bpe: int | None, padded: Mapping[str, tuple[int, ...]]) -> int:
    total = 0
    for g in _walk_graphs(original.graph):
        for t in g.initializer:
            if len(t.dims) > 0:
                total += math.prod(padded.get(t.name, t.dims)) * _elem_bytes(t.data_type, bpe)
        for n in g.node:
            if n.op_type != "Constant":
                continue
            for a in n.attribute:
                if a.name == "value" and len(a.t.dims) > 0:
                    total += math.prod(a.t.dims) * _elem_bytes(a.t.data_type, bpe)
                elif a.name in ("value_floats", "value_ints") and len(a.floats or a.ints) > 0:
                    dt = TensorProto.FLOAT if a.name == "value_floats" else TensorProto.INT64
                    total += len(a.floats or a.ints) * _elem_bytes(dt, bpe)
    return total


def _folded(node: onnx.NodeProto, consts: set[str]) -> bool:
    """Whether the session folds the node away: a Constant, a node on constants only, a static Shape/Size."""
    return (node.op_type in ("Constant", "Shape", "Size")
            or (not _subgraphs(node) and all(r in consts for r in _reads(node))))


def _blocked_layout(nodes: list[onnx.NodeProto], info: _Graphs, block: int, consts: set[str],
                    outputs: list[str]) -> tuple[list[onnx.NodeProto], list[str]]:
    """Rule 5 on the main graph: mark the tensors onnxruntime's NCHWc pass pads (``info.padded``), the padded
    conv filters and biases (``info.padded_inits``), and insert the reorders it adds; returns the nodes and
    the graph outputs after the rewrite."""
    consts = set(consts)
    out: list[onnx.NodeProto] = []
    copies: dict[str, str] = {}

    def plain(t: str) -> str:  # an NCHW copy of padded tensor ``t`` (ReorderOutput), made once
        if t not in copies:
            copies[t] = f"{t}/nchw"
            out.append(helper.make_node("ReorderOutput", [t], [copies[t]], name=f"ReorderOutput({t})",
                                        domain="com.microsoft.nchwc"))
            info.types[copies[t]] = info.types[t]
        return copies[t]

    def four_d(t: str) -> bool:
        shape = info.shape(t)
        return shape is not None and len(shape) == 4 and info.types[t][0] == TensorProto.FLOAT

    for node in nodes:
        if _folded(node, consts):
            consts.update(o for o in node.output if o)
            out.append(node)
            continue
        ins = [x for x in node.input if x]
        data, res = (ins[0] if ins else ""), (node.output[0] if node.output else "")
        op = node.op_type if node.domain in ("", "ai.onnx") else ""
        weight = ins[1] if op == "Conv" and len(ins) > 1 else ""
        if weight in info.initializers and len(info.shape(weight) or ()) == 4 and four_d(res):
            o, i, kh, kw = info.shape(weight)  # type: ignore[misc]
            group = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
            if data not in info.padded and (group > 1 or i >= block):  # ReorderInput: a padded copy
                copy = f"{data}/nchwc"
                out.append(helper.make_node("ReorderInput", [data], [copy], name=f"ReorderInput({data})",
                                            domain="com.microsoft.nchwc"))
                info.types[copy] = info.types[data]
                info.padded[copy] = _up(info.shape(data)[1], block)  # type: ignore[index]
                node = _renamed(node, {data: copy})
            reads_padded = group == 1 and (node.input[0] in info.padded)
            info.padded_inits[weight] = (_up(o, block), _up(i, block) if reads_padded else i, kh, kw)
            if len(ins) > 2 and ins[2] in info.initializers:
                info.padded_inits[ins[2]] = (_up(o, block),)
            info.padded[res] = _up(o, block)
        elif (op in NCHWC_POOLS or op in NCHWC_UNARY) and data in info.padded and four_d(res):
            info.padded[res] = info.padded[data]
        elif (op in NCHWC_BINARY and ins and all(x in info.padded for x in ins)
              and len({info.shape(x) for x in [*ins, res]}) == 1):
            info.padded[res] = info.padded[data]
        else:  # any other op reads the NCHW copies of padded tensors
            reads = [r for r in _reads(node) if r in info.padded]
            if reads:
                swap = {r: plain(r) for r in reads}
                node = _renamed(node, swap)
                node.input.extend(swap[r] for r in reads if r not in node.input and swap[r] not in node.input)
        out.append(node)
    return out, [plain(o) if o in info.padded else o for o in outputs]


def _inplace_operand(node: onnx.NodeProto, consts: set[str]) -> str:
    """The input a node may overwrite under rule 2 ('' when none): a unary op's input, or the one
    activation of an element-wise op whose other operand is a constant (either order)."""
    if node.op_type in INPLACE_OPS:
        return node.input[0] if node.input else ""
    if node.op_type in CONST_OPERAND_OPS and len(node.input) == 2:
        a, b = node.input
        if (a in consts) != (b in consts):
            return b if a in consts else a
    return ""


def _renamed(node: onnx.NodeProto, names: Mapping[str, str]) -> onnx.NodeProto:
    new = onnx.NodeProto()
    new.CopyFrom(node)
    for k, x in enumerate(new.input):
        new.input[k] = names.get(x, x)
    return new


def _peak(graph: onnx.GraphProto, info: _Graphs, rules: LivenessRules, outer: set[str], consts: set[str],
          nodes: list[onnx.NodeProto] | None = None, outputs: list[str] | None = None) -> tuple[int, str]:
    """Arena peak of ``graph``'s own tensors (``outer`` ones are live already and not counted); ``nodes`` and
    ``outputs`` replace the graph's (a rewritten main graph)."""
    external = set(outer) | {i.name for i in graph.input}
    consts = set(consts) | {t.name for t in graph.initializer}
    if nodes is None:
        nodes = _topological(graph, external | consts)
    end = len(nodes)
    last: dict[str, int] = {o: end for o in (outputs if outputs is not None else [o.name for o in graph.output])}
    for i, n in enumerate(nodes):
        for r in _reads(n):
            last[r] = max(last.get(r, -1), i)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for r in set(_reads(n)):
            consumers.setdefault(r, []).append(i)

    buffer_of: dict[str, int] = {}  # tensor -> buffer id
    names_of: dict[int, list[str]] = {}  # buffer -> the tensors aliasing it
    size: dict[int, int] = {}
    live: set[int] = set()
    fused: dict[str, tuple[int, str]] = {}  # rule 3: conv output -> (its Add's index, the Add's other operand)
    if rules.fuse_conv_add:
        for j, n in enumerate(nodes):
            ins = [x for x in n.input if x]
            if n.op_type != "Add" or len(ins) != 2 or ins[0] == ins[1]:
                continue
            out_shape = info.types.get(n.output[0], (0, None))[1]
            cands = [(producer[a], a, b) for a, b in (ins, ins[::-1]) if a in producer
                     and nodes[producer[a]].op_type == "Conv" and consumers.get(a) == [j] and last.get(a) == j
                     and out_shape is not None and info.types.get(a, (0, None))[1] == out_shape]
            if cands:
                _, a, b = max(cands)  # the later conv is the one fused (its partner exists when it runs)
                fused[a] = (j, b)
    fused_add: dict[int, str] = {}  # Add node index -> the conv output it aliases

    def new(name: str, nbytes: int) -> None:
        bid = len(size)
        size[bid], names_of[bid], buffer_of[name] = nbytes, [name], bid
        live.add(bid)

    def alias(name: str, of: str) -> None:
        bid = buffer_of[of]
        buffer_of[name] = bid
        names_of[bid].append(name)

    def dies_at(bid: int, i: int) -> bool:
        return max(last.get(n, i) for n in names_of[bid]) <= i

    peak, peak_at = 0, ""
    for i, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{i}"
        reads = _reads(node)
        subs = _subgraphs(node)
        outs = [o for o in node.output if o]
        if _folded(node, consts):
            consts.update(outs)  # folded when the session is built (shapes are static here)
            continue
        if subs and node.op_type != "If":
            raise GraphError(f"node '{name}' is a {node.op_type}; memory of Loop/Scan subgraphs is not modelled "
                             "(If is): unroll it or pass a model without it.")
        extra = 0
        data = node.input[0] if node.input else ""
        if node.op_type == "If":
            visible = external | consts | set(buffer_of)
            branch = max((_peak(g, info, rules, visible | set(producer), consts)[0] for g in subs), default=0)
            out_bytes = sum(info.nbytes(o, name) for o in outs)
            extra = max(branch - out_bytes, 0)  # the outputs are allocated below; the branch's peak holds them
            for o in outs:
                new(o, info.nbytes(o, name))
        elif node.op_type in ALIAS_OPS and data in buffer_of:
            alias(outs[0], data)
            for o in outs[1:]:  # Dropout's mask
                new(o, info.nbytes(o, name))
        elif i in fused_add:
            alias(outs[0], fused_add[i])  # fused into the conv before it: no tensor of its own
        elif node.op_type == "Conv" and outs and outs[0] in fused:
            j, b = fused[outs[0]]
            bid = buffer_of.get(b)
            if bid is not None and b not in node.input and dies_at(bid, j) and size[bid] == info.nbytes(outs[0], name):
                alias(outs[0], b)  # the conv accumulates into the residual operand's buffer
            else:
                new(outs[0], info.nbytes(outs[0], name))
            fused_add[j] = outs[0]
        elif (rules.inplace_activations and (data := _inplace_operand(node, consts)) in buffer_of
              and dies_at(buffer_of[data], i) and size[buffer_of[data]] >= info.nbytes(outs[0], name)):
            alias(outs[0], data)
            for o in outs[1:]:
                new(o, info.nbytes(o, name))
        else:
            for o in outs:
                new(o, info.nbytes(o, name))
        current = sum(size[b] for b in live) + extra
        if current > peak:
            peak, peak_at = current, name
        for bid in {buffer_of[r] for r in reads if r in buffer_of} | {buffer_of[o] for o in outs if o in buffer_of}:
            if bid in live and dies_at(bid, i):
                live.discard(bid)
    return peak, peak_at


def _probe_shapes(model: onnx.ModelProto, info: _Graphs, inputs: list[str]) -> None:
    """Shapes onnx's inference leaves unknown (e.g. a ``Pad`` whose pads are computed), read from one
    onnxruntime run on zeros with every such main-graph tensor made a graph output."""
    consts = set(info.initializers)
    unknown: list[str] = []
    for node in model.graph.node:
        if _folded(node, consts):
            consts.update(o for o in node.output if o)
            continue
        for o in node.output:
            shape = info.shape(o) if o else ()
            if o and (shape is None or -1 in shape) and info.types.get(o, (0,))[0] != TensorProto.UNDEFINED:
                unknown.append(o)
    if not unknown:
        return
    import onnxruntime as ort  # only for models onnx cannot infer

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_tensor_value_info(o, info.types[o][0], None) for o in unknown
                              if o not in known)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    feeds = {}
    for name in inputs:
        dtype, shape = info.types[name]
        if shape is None or -1 in shape:
            return  # the input's own shape is unknown: nbytes names it
        feeds[name] = np.zeros(shape, dtype=helper.tensor_dtype_to_np_dtype(dtype))
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, feeds)
    except Exception:  # noqa: BLE001 - any failure leaves the shapes unknown; nbytes then names the tensor
        return
    for name, value in zip(names, values, strict=True):
        if name in unknown and isinstance(value, np.ndarray):
            info.types[name] = (info.types[name][0], tuple(int(d) for d in value.shape))


def onnx_memory(model: onnx.ModelProto | bytes | str | Path, *,
                input_shape: Sequence[int] | Mapping[str, Sequence[int]] | None = None, batch: int | None = None,
                precision: str | None = None, rules: LivenessRules = LivenessRules()) -> MemoryEstimate:
    """Memory of any ONNX model (see :mod:`predictors.memory` for the definition).

    ``input_shape`` / ``batch`` fix symbolic input dimensions (as for
    :func:`predictors.onnx_graph.graph_kernels`); ``precision`` (``fp32``/``fp16``/``int8``) counts
    every float tensor at that precision, ``None`` at the stored types. ``model`` is a model, its
    serialised bytes or a path. Shapes onnx's inference cannot give (computed pads, data-dependent
    sizes) are read from one onnxruntime run on zeros. Raises :class:`GraphError`.
    """
    if batch is not None and batch <= 0:
        raise GraphError(f"batch must be >= 1, but got {batch}.")
    bpe = _precision_bytes(precision)
    if isinstance(model, bytes):
        try:
            model = onnx.load_from_string(model)
        except Exception as e:  # protobuf's DecodeError and onnx's errors
            raise GraphError(f"the bytes given are not a serialised ONNX model ({type(e).__name__}); pass a "
                             "ModelProto, its SerializeToString() or a path.") from None
    original = load_model(model)
    known = {i.name for i in original.graph.input} | {t.name for t in original.graph.initializer}
    order = _order(original.graph, known)
    if order != sorted(order):  # shape inference needs a topological order
        ordered = onnx.ModelProto()
        ordered.CopyFrom(original)
        del ordered.graph.node[:]
        ordered.graph.node.extend(original.graph.node[i] for i in order)
        original = ordered
    light = _light_model(original, input_shape, batch)
    info = _Graphs(light, original, bpe)
    inputs = [i.name for i in original.graph.input if i.name not in info.initializers]
    _probe_shapes(original, info, inputs)
    input_bytes = sum(info.nbytes(n, "graph input") for n in inputs)
    nodes, outputs = list(original.graph.node), [o.name for o in original.graph.output]
    if rules.channel_block > 1:
        nodes, outputs = _blocked_layout(nodes, info, rules.channel_block, set(info.initializers), outputs)
    arena, at = _peak(original.graph, info, rules, set(inputs), set(info.initializers), nodes, outputs)
    return MemoryEstimate(weight_bytes=_weight_bytes(original, bpe, info.padded_inits), input_bytes=input_bytes,
                          arena_bytes=arena, peak_at=at)
