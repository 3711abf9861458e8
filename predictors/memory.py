"""Memory of a subnet: its weights plus the peak of its live activations, computed from the graph.

**Definition.** ``total = weights + graph inputs + arena``, in bytes, at one precision:

* **weights**: every initializer and ``Constant`` of at least one dimension (the parameters; scalars
  such as ``Clip`` bounds become kernel attributes once a runtime fuses them), at the precision's
  bytes per element (non-float tensors at their own size). BN is folded into the conv before it.
* **graph inputs**: the caller's buffers (the image batch), live for the whole run.
* **arena**: the peak, over the nodes in topological order, of the bytes of the intermediate and
  output tensors live while that node runs. A tensor is live from its producer until its last
  consumer (graph outputs until the end); a node's inputs and outputs are live together, so a
  chain's step costs input + output, plus any tensor kept for a later residual ``Add``.

**What a runtime really allocates**, and the rules that model it (:class:`LivenessRules`):

1. *Aliases* (``Reshape``, ``Flatten``, ``Squeeze``, ``Unsqueeze``, ``Identity``, ``Dropout``) share
   their input's buffer; constant subgraphs (shape arithmetic) are folded and cost nothing.
2. *In place* (``inplace_activations``): a unary element-wise op (``Relu``, ``Clip``, ``HardSwish``,
   …), an inference ``BatchNormalization`` or an element-wise op with a constant second operand (a
   bias ``Add``, a scale ``Mul``) reuses its input's buffer when that input dies there. This also
   covers conv + activation and MatMul + bias fusion (onnxruntime's ``FusedConv``, ``MatMulAddFusion``;
   TensorRT's conv-act): no tensor exists between them. Ops on two activations (a residual ``Add``,
   ``(x - mean) / std`` on the input) get a new buffer, as in onnxruntime's CPU kernels.
3. *Residual fusion* (``fuse_conv_add``): a ``Conv`` whose only consumer is an ``Add`` is fused with
   it, and when the ``Add``'s other operand dies there the conv writes its result into that
   operand's buffer (onnxruntime's NCHWc conv with a ``Sum`` input; TensorRT's conv + eltwise).
   A residual block's project step then costs block input + hidden tensor, not also its output.
4. ``If``: the branch that costs more, on top of everything live at the ``If`` (max over branches).
5. *Blocked layout* (``channel_block``, off by default): onnxruntime's CPU layout pass (NCHWc) runs
   convs, pools and element-wise ops on feature maps whose channels are padded to a multiple of the
   MLAS block (16 with AVX-512F, 8 on other x86-64: :func:`onnxruntime_cpu_rules`), pads conv
   filters and biases alike, and inserts a reorder (one more tensor) where such a map meets another
   op (``Flatten`` before the classifier). Only the main graph is converted (not ``If`` branches).

Not modelled: the allocator's own overhead. onnxruntime's BFC arena rounds chunks and its memory
pattern (from the second run on, one block laid out first-fit) can exceed the live-tensor peak by
fragmentation; the arena's first region is 1 MiB whatever the model needs; kernels' scratch
buffers (im2col) and prepacked weight copies are not graph tensors.
Nor is onnxruntime's allocation planner, which keeps a freed buffer for a later tensor of exactly
the same size (``enable_mem_reuse``): that can hold one more tensor at the peak.
``benchmarks/memory_predictor.py`` measures all of this against onnxruntime's arena statistics: with
rule 5 the predicted peak equals the bytes onnxruntime's kernels request with planner reuse off, on
every subnet measured, and the weights equal the initializers of the model onnxruntime optimised.

Two entry points that agree exactly on exported CNN subnets (tested):

* :func:`onnx_memory`: any ONNX model, from onnx shape inference and tensor lifetimes.
* :class:`MemoryPredictor`: the search's fast path from a family's layer table. A chain network
  keeps exactly one tensor live between units (the residual stream), so a subnet's arena peak is
  ``max(constant part, max_t table[t, choice_t], enabled exit heads)`` and its weights are
  ``constant + sum_t table[t, choice_t]``: two numpy gathers per batch of subnets.

:func:`onnx_memory` lives in :mod:`predictors.memory_onnx`, the rules and :class:`MemoryEstimate` that
both share in :mod:`predictors.memory_rules`; this module holds the layer-table path and re-exports
the others' names.

Example::

    pred = MemoryPredictor(PRESETS["cifar-default"], "fp32")
    pred.predict_bytes([space.smallest(), space.largest()])   # total bytes per subnet
    onnx_memory("model.onnx", batch=1).total_bytes
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from predictors.kernels import to_kernel
from predictors.memory_onnx import onnx_memory
from predictors.memory_rules import (
    LivenessRules,
    MemoryEstimate,
    _precision_bytes,
    _up,
    mlas_channel_block,
    onnxruntime_cpu_rules,
    rules_for_device,
)
from supernet.cost import CostedConfig, check_costed, unit_of
from supernet.errors import ConfigError
from supernet.space import SearchSpace, SubnetConfig

__all__ = ["LivenessRules", "MemoryEstimate", "MemoryPredictor", "mlas_channel_block", "onnx_memory",
           "onnxruntime_cpu_rules", "rules_for_device", "subnet_memory"]


# ---- path (b): a family's layer table --------------------------------------------------------------------
_PRODUCERS = frozenset({"conv", "dwconv", "linear", "pool", "maxpool", "norm", "attention", "reduce"})
_BLOCKED = frozenset({"conv", "dwconv", "pool", "maxpool", "add"})  # layers that run in the blocked layout


def _out_elems(layer: Mapping[str, Any], channels: int | None = None) -> int:
    """Elements per image of a layer's output tensor (``channels`` replaces its channel count)."""
    op = layer["op"]
    cin, rows = int(layer.get("cin", 0)), int(layer.get("rows", 1))
    cout, h_out = int(layer.get("cout", cin)), int(layer.get("h_out", 1))
    c = cout if channels is None else channels
    if op in ("conv", "dwconv", "pool", "maxpool"):
        return c * h_out * h_out
    if op == "linear":
        return rows * cout
    if op == "add":
        return rows * c * h_out * h_out
    if op in ("norm", "act"):
        return rows * cin * int(layer.get("h_in", 1)) ** 2
    if op == "attention":  # one output row per query (the CLS token alone in a CLS-only block)
        return int(layer.get("queries", layer["tokens"])) * int(layer["heads"]) * int(layer["head_dim"])
    if op == "reduce":
        return int(layer["tokens_out"]) * cin
    raise ConfigError(f"layer '{layer['name']}' has op '{op}', which the layer-table memory model does not cover "
                      "(conv, dwconv, linear, pool, maxpool, add, norm, act, attention, reduce, decide); "
                      "export the subnet and use onnx_memory.")


def _in_elems(layer: Mapping[str, Any], channels: int | None = None) -> int:
    """Elements per image of the tensor a layer reads (``channels`` replaces its channel count)."""
    op = layer["op"]
    cin, rows, h_in = int(layer.get("cin", 0)), int(layer.get("rows", 1)), int(layer.get("h_in", 1))
    if op == "linear":
        return rows * cin
    if op == "attention":  # q (one row per query), k and v (one per token)
        d = int(layer["heads"]) * int(layer["head_dim"])
        return (int(layer.get("queries", layer["tokens"])) + 2 * int(layer["tokens"])) * d
    if op == "reduce":
        return int(layer["tokens_in"]) * cin
    c = cin if channels is None else channels
    if op in ("conv", "dwconv", "pool", "maxpool") and "h_in" in layer:  # a feature map (``rows`` counts pixels)
        return c * h_in * h_in
    return rows * c * h_in * h_in


def _residual(layer: Mapping[str, Any]) -> bool:
    """A residual ``add`` (two activations); an ``add`` with parameters adds a weight (positions, a bias)."""
    return layer["op"] == "add" and not int(layer.get("params", 0))


@dataclass
class _Tensor:
    """The chain's current tensor: its bytes, its bytes without channel padding, its layout."""

    nbytes: int = 0  # 0: a graph input or a tensor counted in ``held``
    plain: int = 0
    blocked: bool = False


class _Chain:
    """Live bytes and parameters of a chain network, layer by layer (the layer-table rules of the module doc).

    Every layer reads the previous layer's output. An ``add`` adds the *residual stream*: the
    tensor current at the unit's start, after the previous ``add`` or after a token ``reduce``; it
    is kept alive from there to the ``add``. ``held`` bytes are live throughout (the block output
    while an exit head runs, a cascade scout's logits).
    """

    def __init__(self, bpe: int, batch: int, rules: LivenessRules, *, held: int = 0,
                 cur: _Tensor | None = None) -> None:
        self.bpe, self.batch, self.rules, self.held = bpe, batch, rules, held
        self.block = rules.channel_block
        self.cur = cur or _Tensor()
        self.partner = 0  # bytes of the residual stream kept for an ``add`` (when not the current tensor)
        self.partner_is_cur = False
        self.peak, self.at = 0, ""
        self.params = 0  # parameter elements of the layers run
        self.trace: dict[str, _Tensor] | None = None  # when a dict: the current tensor before each layer
        self.pending = 0  # outputs of parallel projections not yet read

    @staticmethod
    def _feeds_attention(rest: Sequence[Mapping[str, Any]]) -> bool:
        """Whether ``rest`` starts with two or more linears and then an attention (parallel projections)."""
        k = 0
        while k < len(rest) and rest[k]["op"] == "linear":
            k += 1
        return k >= 2 and k < len(rest) and rest[k]["op"] == "attention"

    def nbytes(self, elems: int) -> int:
        return elems * self.bpe * self.batch

    def step(self, name: str, live: int) -> None:
        live += self.held
        if live > self.peak:
            self.peak, self.at = live, name

    def _reset(self, rest: Sequence[Mapping[str, Any]]) -> None:
        """The current tensor becomes the residual stream if an ``add`` consumes it before a ``reduce``."""
        self.partner, self.partner_is_cur = 0, False
        for layer in rest:
            if layer["op"] == "reduce":
                return
            if _residual(layer):
                self.partner_is_cur = True
                return

    def _partner(self) -> int:
        return 0 if self.partner_is_cur else self.partner

    def _advance(self, out: _Tensor) -> None:
        """The current tensor is consumed (kept if it is the residual stream); ``out`` becomes current."""
        if self.partner_is_cur:
            self.partner, self.partner_is_cur = self.cur.nbytes, False
        self.cur = out

    def _output(self, layer: Mapping[str, Any]) -> _Tensor:
        op = layer["op"]
        plain = self.nbytes(_out_elems(layer))
        blocked = self.block > 1 and (op in ("conv", "dwconv") or (op in _BLOCKED and self.cur.blocked
                                                                   and (op != "add" or _residual(layer))))
        if not blocked:
            return _Tensor(plain, plain, False)
        return _Tensor(self.nbytes(_out_elems(layer, _up(int(layer.get("cout", layer.get("cin", 0))), self.block))),
                       plain, True)

    def _layout(self, layer: Mapping[str, Any]) -> None:
        """Rule 5: reorder the current tensor when the layer needs the other layout."""
        op, name = layer["op"], str(layer["name"])
        if self.block == 1:
            return
        if op in ("conv", "dwconv") and not self.cur.blocked and (op == "dwconv" or int(layer["cin"]) >= self.block):
            copy = _Tensor(self.nbytes(_in_elems(layer, _up(int(layer["cin"]), self.block))),
                           self.nbytes(_in_elems(layer)), True)
        elif (op not in _BLOCKED or (op == "add" and not _residual(layer))) and self.cur.blocked:
            copy = _Tensor(self.cur.plain, self.cur.plain, False)
        else:
            return
        self.step(f"{name}.reorder", self._partner() + self.cur.nbytes + copy.nbytes)
        self._advance(copy)

    def _count(self, layer: Mapping[str, Any]) -> None:
        op = layer["op"]
        if op == "decide":
            return
        if self.block == 1 or op not in ("conv", "dwconv"):
            self.params += int(layer["params"]) if "params" in layer else to_kernel(dict(layer)).params
            return
        cout, k = _up(int(layer["cout"]), self.block), int(layer.get("kernel", 1))
        if op == "dwconv":  # filter (C, 1, k, k)
            self.params += cout * k * k + cout
        else:  # a blocked input has padded channels; an NCHW input (fewer channels than a block) keeps its own
            cin = _up(int(layer["cin"]), self.block) if self.cur.blocked else int(layer["cin"])
            self.params += cout * cin // int(layer.get("groups", 1)) * k * k + cout

    def unit(self, layers: Sequence[Mapping[str, Any]]) -> None:
        """Run one unit (stem, block, tail or exit head)."""
        self._reset(layers)
        skip = False
        for k, layer in enumerate(layers):
            if skip:  # an add fused into the conv before it
                skip = False
                self._reset(layers[k + 1:])
                continue
            op, name = layer["op"], str(layer["name"])
            nxt = layers[k + 1]["op"] if k + 1 < len(layers) else ""
            if self.trace is not None:
                self.trace.setdefault(name, dataclasses.replace(self.cur))
            self._layout(layer)
            self._count(layer)
            if op in ("conv", "dwconv") and k + 1 < len(layers) and _residual(layers[k + 1]) \
                    and self.rules.fuse_conv_add:
                out = self._output(layer)
                if not self.partner_is_cur and self.partner == out.nbytes:  # written into the residual stream
                    self.step(name, self.partner + self.cur.nbytes)
                else:
                    self.step(name, self._partner() + self.cur.nbytes + out.nbytes)
                self.partner, self.partner_is_cur, self.cur = 0, False, out
                skip = True
            elif op == "linear" and nxt == "linear" and self._feeds_attention(layers[k:]):
                # projections that read the same input (q, then k and v of a CLS-only block): the input stays
                # live until the last one; their outputs together are what the attention reads
                out = self._output(layer)
                self.step(name, self._partner() + self.pending + self.cur.nbytes + out.nbytes)
                self.pending += out.nbytes
            elif op in _PRODUCERS or (op == "add" and not _residual(layer)):
                out = self._output(layer)
                if self.pending:  # the last parallel projection
                    out = _Tensor(out.nbytes + self.pending, out.plain + self.pending, False)
                    self.step(name, self._partner() + self.cur.nbytes + out.nbytes)
                    self.pending = 0
                    self._advance(out)
                    continue
                scratch = 0
                if op == "attention":  # four phases, as an exported (unfused) attention runs
                    queries, tokens = int(layer.get("queries", layer["tokens"])), int(layer["tokens"])
                    scores = self.nbytes(int(layer["heads"]) * queries * tokens)
                    v = self.nbytes(tokens * int(layer["heads"]) * int(layer["head_dim"]))
                    base = self._partner()
                    self.step(f"{name}.split", base + 2 * self.cur.nbytes)  # the head split copies q, k, v
                    self.step(f"{name}.scores", base + self.cur.nbytes + scores)  # q·kᵀ while q, k, v live
                    self.step(f"{name}.softmax", base + v + 2 * scores)  # q, k consumed; scores and their softmax
                    self.step(name, base + v + scores + out.nbytes)  # softmax·v
                    self._advance(out)
                    continue
                elif op == "reduce":
                    scratch = self.nbytes(int(layer["tokens_in"]))
                self.step(name, self._partner() + self.cur.nbytes + out.nbytes + scratch)
                self._advance(out)
                if op == "reduce":
                    self._reset(layers[k + 1:])
            elif op == "act":
                if self.rules.inplace_activations and not self.partner_is_cur and self.cur.nbytes > 0:
                    self.step(name, self._partner() + self.cur.nbytes)
                else:
                    out = self._output(layer)
                    self.step(name, self._partner() + self.cur.nbytes + out.nbytes)
                    self._advance(out)
            elif op == "add":  # a residual add
                out = self._output(layer)
                self.step(name, self._partner() + self.cur.nbytes + out.nbytes)
                self.partner, self.partner_is_cur, self.cur = 0, False, out
                self._reset(layers[k + 1:])
            elif op == "decide":  # softmax over the logits, then a boolean per image
                self.step(name, self.cur.nbytes + self.nbytes(int(layer["cin"])) + self.batch)
                self.cur = _Tensor(self.batch, self.batch, False)
            else:
                _out_elems(layer)  # raises the unsupported-op error
                raise AssertionError(op)

    def normalise(self, elems: int) -> None:
        """``(x - mean) / std`` on a graph input of ``elems`` per image: two new tensors (binary ops)."""
        t = self.nbytes(elems)
        self.step("normalise.sub", t)
        self.step("normalise.div", 2 * t)
        self.cur = _Tensor(t, t, False)


def _split_units(layers: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    out: list[tuple[str, list[Mapping[str, Any]]]] = []
    for layer in layers:
        u = unit_of(str(layer["name"]))
        if out and out[-1][0] == u:
            out[-1][1].append(layer)
        else:
            out.append((u, [layer]))
    return out


def _exits_of(config: CostedConfig, subnet: SubnetConfig) -> tuple[int, ...]:
    return tuple(subnet.exits) or (0,) * len(config.exit_blocks)


def _static(config: CostedConfig, subnet: SubnetConfig, bpe: int, batch: int, rules: LivenessRules,
            normalise_input: bool, held: int = 0) -> tuple[int, _Chain]:
    """Parameter bytes (without the input normalisation) and the finished chain of a subnet without a scout."""
    layers = config.layers(subnet)
    chain = _Chain(bpe, batch, rules, held=held)
    if normalise_input:
        chain.normalise(_in_elems(layers[0]))
    exits = _exits_of(config, subnet)
    after = {f"b{b}": e for e, b in enumerate(config.exit_blocks) if exits[e]}
    for u, unit_layers in _split_units(layers):
        chain.unit(unit_layers)
        if u in after:  # the block output stays live while the head runs
            head = _Chain(bpe, batch, rules, held=chain.held + chain.cur.nbytes,
                          cur=_Tensor(0, chain.cur.plain, chain.cur.blocked))
            head.unit(config.exit_layers(after[u]))
            chain.step(head.at, head.peak - chain.held)
            chain.params += head.params
    return chain.params * bpe, chain


def _normalise_weights(config: CostedConfig, bpe: int, normalise_input: bool) -> int:
    """``mean`` and ``std``: one value each per input channel."""
    first = config.layers(config.space().smallest())[0]
    return 2 * int(first.get("cin", 0)) * bpe if normalise_input else 0


def _cascade_space(config: CostedConfig) -> SearchSpace:
    """The config's space with every width-cascade scout allowed (the search adds the gene to it)."""
    space = config.space()
    return dataclasses.replace(space, n_cascade=len(space.width_choices) - 1)


def subnet_memory(arch_config: CostedConfig, subnet: SubnetConfig, *, precision: str = "fp32", batch: int = 1,
                  rules: LivenessRules = LivenessRules(), normalise_input: bool = True) -> MemoryEstimate:
    """Memory of one subnet from its layer table, layer by layer (the exact form of :class:`MemoryPredictor`).

    The subnet runs as exported (:mod:`supernet.static`): ``(x - mean) / std`` on the image when
    ``normalise_input``, the layers in order, each enabled exit head right after its block (the
    block output stays live; the head's tensors are freed after its decision), and with a cascade
    scout the scout first (its logits stay live while the subnet runs). Weights count every enabled
    head and the scout.
    """
    missing = [m for m in ("space", "layers", "exit_layers") if not hasattr(arch_config, m)]
    if missing:
        raise ConfigError(f"subnet_memory needs a supernet family's architecture config (e.g. CNNConfig), but "
                          f"{type(arch_config).__name__} lacks {', '.join(missing)}.")
    config = arch_config
    space = _cascade_space(config)
    space.validate(subnet)
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, but got {batch}.")
    bpe = _precision_bytes(precision)
    assert bpe is not None
    scout = space.scout(subnet)
    held, peak, at, weights = 0, 0, "", _normalise_weights(config, bpe, normalise_input)
    if scout is not None:
        w, c = _static(config, scout, bpe, batch, rules, normalise_input)
        peak, at, weights = c.peak, f"scout/{c.at}", weights + w
        held = batch * bpe * int(config.num_classes)  # the scout's logits, read by the cascade's branch
    main = space.without_cascade(subnet)
    w, chain = _static(config, main, bpe, batch, rules, normalise_input, held)
    if chain.peak >= peak:
        peak, at = chain.peak, chain.at
    image = _in_elems(config.layers(main)[0]) * bpe * batch
    return MemoryEstimate(weight_bytes=weights + w, input_bytes=image, arena_bytes=peak, peak_at=at)


class MemoryPredictor:
    """Vectorised memory of many subnets of one supernet (thousands per millisecond).

    ``predict_bytes`` gives ``weights + graph inputs + arena peak`` per subnet, exactly as
    :func:`subnet_memory` computes it (checked on every uniform subnet at construction), from
    per-term tables: weights add over terms, the arena peak is a max over terms because a chain
    network keeps only its residual stream live between units.

    Example::

        pred = MemoryPredictor(PRESETS["cifar-default"], "fp32")
        pred.predict_bytes(subnets) <= 2_000_000     # a --max-memory 2MB constraint
    """

    def __init__(self, arch_config: CostedConfig, precision: str = "fp32", *, batch: int = 1,
                 rules: LivenessRules = LivenessRules(), normalise_input: bool = True) -> None:
        self.config = check_costed(arch_config)
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, but got {batch}.")
        bpe = _precision_bytes(precision)
        assert bpe is not None
        self.precision, self.batch, self.rules, self.normalise_input = precision, batch, rules, normalise_input
        self.space = self.config.space()
        terms = self.config.cost_terms()
        n_terms, width = len(terms.variants), max(terms.n_variants, default=1)
        first = terms.stem[0] if terms.stem else terms.variants[0][0][0]
        self.input_bytes = _in_elems(first) * bpe * batch
        # the tensor each term, the tail and each head starts from: fixed shapes, taken from one full pass
        states = self._states(bpe)

        def run(layers: Sequence[Mapping[str, Any]], start: _Tensor, prologue: bool = False) -> _Chain:
            c = _Chain(bpe, batch, rules, cur=dataclasses.replace(start))
            if prologue:
                c.normalise(_in_elems(first))
            for _, unit_layers in _split_units(layers):
                c.unit(unit_layers)
            return c

        self.w_table = np.zeros((n_terms, width))
        self.p_table = np.zeros((n_terms, width))
        for t, variants in enumerate(terms.variants):
            for v, layers in enumerate(variants):
                if not layers:  # a term that runs nothing in this variant (no token reduction)
                    continue
                c = run(layers, self._start(states, layers[0], bpe))
                self.w_table[t, v], self.p_table[t, v] = c.params * bpe, c.peak
        stem = run(terms.stem, _Tensor(), normalise_input) if terms.stem else None
        tail = run(terms.tail, states[str(terms.tail[0]["name"])]) if terms.tail else None
        self.w_const = float(sum(c.params for c in (stem, tail) if c is not None) * bpe)
        self.w_norm = float(_normalise_weights(self.config, bpe, normalise_input))
        self.p_const = float(max([c.peak for c in (stem, tail) if c is not None], default=0))
        w_heads, p_heads = [], []
        for e in range(len(self.config.exit_blocks)):  # a head runs while its block's output stays live
            x = states[f"x{e}"]
            c = run(self.config.exit_layers(e), _Tensor(0, x.plain, x.blocked))
            w_heads.append(c.params * bpe)
            p_heads.append(c.peak + x.nbytes)
        self.w_heads, self.p_heads = np.asarray(w_heads, dtype=float), np.asarray(p_heads, dtype=float)
        scouts = [self.space.uniform(k) for k in range(len(self.space.width_choices) - 1)]  # cascade = k + 1
        self.w_scouts = self._weights(scouts, cascade=False) - self.w_norm
        self.p_scouts = self._arena(scouts, cascade=False)
        self.scout_held = float(batch * bpe * int(self.config.num_classes))
        self._check()

    def _start(self, states: dict[str, _Tensor], layer: Mapping[str, Any], bpe: int) -> _Tensor:
        """The tensor a term variant starts from: the traced one, unless the variant reads another size (a
        transformer's term after token reduction), which is then a plain tensor of the size its first layer reads."""
        st = states.get(str(layer["name"]))
        want = _in_elems(layer) * bpe * self.batch
        if st is not None and (st.blocked or st.plain == want):
            return st
        return _Tensor(want, want, False)

    def _states(self, bpe: int) -> dict[str, _Tensor]:
        """The current tensor before every layer of the smallest subnet (by layer name), and after each exit's
        block (``x<e>``)."""
        chain = _Chain(bpe, self.batch, self.rules)
        chain.trace = states = {}
        layers = self.config.layers(self.space.smallest())
        if self.normalise_input:
            chain.normalise(_in_elems(layers[0]))
        ends = {f"b{b}": e for e, b in enumerate(self.config.exit_blocks)}
        for u, unit_layers in _split_units(layers):
            chain.unit(unit_layers)
            if u in ends:
                states[f"x{ends[u]}"] = dataclasses.replace(chain.cur)
        return states

    # ---- vectorised parts ------------------------------------------------------------------------------
    def _choices(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        choices = np.asarray(self.config.term_choices(subnets), dtype=np.int64).reshape(len(subnets), -1)
        if choices.size and (choices.min() < 0 or choices.max() >= self.w_table.shape[1]):
            raise ConfigError(f"term choices must be in [0, {self.w_table.shape[1] - 1}], but got "
                              f"[{choices.min()}, {choices.max()}].")
        return choices

    def _exit_mask(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        n_exits = len(self.config.exit_blocks)
        return np.asarray([_exits_of(self.config, s) for s in subnets], dtype=float).reshape(len(subnets), n_exits)

    def _weights(self, subnets: Sequence[SubnetConfig], cascade: bool = True) -> np.ndarray:
        if not subnets:
            return np.zeros(0)
        rows = np.arange(self.w_table.shape[0])
        w = (self.w_norm + self.w_const + self.w_table[rows, self._choices(subnets)].sum(axis=1)
             + self._exit_mask(subnets) @ self.w_heads)
        if cascade:  # the scout's parameters; the model keeps one mean/std pair
            k = self._cascades(subnets)
            w = w + np.concatenate([[0.0], self.w_scouts])[k]
        return w

    def _arena(self, subnets: Sequence[SubnetConfig], cascade: bool = True) -> np.ndarray:
        if not subnets:
            return np.zeros(0)
        rows = np.arange(self.p_table.shape[0])
        p = np.maximum(self.p_const, self.p_table[rows, self._choices(subnets)].max(axis=1, initial=0.0))
        if self.p_heads.size:
            p = np.maximum(p, (self._exit_mask(subnets) * self.p_heads).max(axis=1))
        if cascade:
            k = self._cascades(subnets)
            scout_p = np.concatenate([[0.0], self.p_scouts])[k]
            p = np.where(k > 0, np.maximum(p + self.scout_held, scout_p), p)
        return p

    def _cascades(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        k = np.asarray([s.cascade for s in subnets], dtype=np.int64)
        if k.size and (k.min() < 0 or k.max() > len(self.w_scouts)):
            raise ConfigError(f"`cascade` must be in [0, {len(self.w_scouts)}] (a scout narrower than the widest "
                              f"subnet), but got {int(k.max() if k.max() > 0 else k.min())}.")
        return k

    def _check(self) -> None:
        """Every uniform subnet with its exits on (and the largest behind the narrowest scout): the tables
        must give what the layer-by-layer count gives."""
        exits = (1,) * len(self.space.exit_positions)
        checks = [dataclasses.replace(self.space.uniform(j), exits=exits) for j in range(len(self.space.width_choices))]
        if len(self.space.width_choices) > 1:
            checks.append(dataclasses.replace(checks[-1], cascade=1))
        for s in checks:
            exact = self.estimate(s)
            fast = (int(self._weights([s])[0]), int(self._arena([s])[0]))
            if fast != (exact.weight_bytes, exact.arena_bytes):
                raise ConfigError(f"the vectorised memory model disagrees with the layer-by-layer one on "
                                  f"{_cascade_space(self.config).format(s)} ({fast} vs "
                                  f"{(exact.weight_bytes, exact.arena_bytes)}): this family's cost terms do not "
                                  "start where only the residual stream is live; use subnet_memory.")

    # ---- public ----------------------------------------------------------------------------------------
    def predict_weight_bytes(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Parameter bytes of each subnet (enabled exit heads and cascade scout included)."""
        return self._weights(list(subnets))

    def predict_arena_bytes(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Peak bytes of live intermediate and output tensors of each subnet."""
        return self._arena(list(subnets))

    def predict_activation_bytes(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Peak bytes of live activations, the input batch included."""
        return self.input_bytes + self._arena(list(subnets))

    def predict_bytes(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Total memory of each subnet: weights + input batch + arena peak, in bytes."""
        subnets = list(subnets)
        return self._weights(subnets) + self.input_bytes + self._arena(subnets)

    def minimum_bytes(self) -> tuple[float, SubnetConfig]:
        """The least total memory any subnet needs, and that subnet: the smallest one (exits off, no scout),
        since every term's weights and peak grow with its variant (checked; a ConfigError otherwise)."""
        for name, table in (("weights", self.w_table), ("peak", self.p_table)):
            for t, n in enumerate(self.config.cost_terms().n_variants):
                if np.any(np.diff(table[t, :n]) < 0):
                    raise ConfigError(f"term {t}'s {name} do not grow with its variant ({table[t, :n].tolist()}), "
                                      "so the smallest subnet need not need the least memory; search the space "
                                      "with predict_bytes instead.")
        s = self.space.smallest()
        return float(self.predict_bytes([s])[0]), s

    def estimate(self, subnet: SubnetConfig) -> MemoryEstimate:
        """One subnet layer by layer, with where its peak occurs (:func:`subnet_memory`)."""
        return subnet_memory(self.config, subnet, precision=self.precision, batch=self.batch, rules=self.rules,
                             normalise_input=self.normalise_input)

    def describe(self) -> dict[str, Any]:
        """Definition and settings (JSON-serialisable), for run.json and reports."""
        return {"method": "weights + input batch + peak of live tensors (liveness over the layer table)",
                "precision": self.precision, "batch": self.batch, "rules": asdict(self.rules),
                "normalise_input": self.normalise_input, "input_bytes": int(self.input_bytes),
                "definition": ("weights: parameters at the precision (BN folded); arena: max over layers of the "
                               "bytes of tensors live while the layer runs (its input, its output, the residual "
                               "stream kept for an add), with conv+activation and conv+add fused as onnxruntime "
                               "and TensorRT run them"
                               + (f"; feature maps and conv filters padded to multiples of {self.rules.channel_block} "
                                  "channels (onnxruntime CPU's NCHWc layout), with a reorder copy before other ops"
                                  if self.rules.channel_block > 1 else "")
                               + "; allocator overhead (arena rounding, fragmentation, the planner's buffer reuse) "
                                 "and kernel scratch buffers not included")}
