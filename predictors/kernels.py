"""A network as the list of kernels a runtime launches: shapes, FLOPs and bytes moved.

Both latency predictors start here. :func:`subnet_kernels` turns a supernet subnet into
kernels (from its family's kernel table, :meth:`supernet.cost.CostedConfig.layers`). Reference
models and any other ONNX graph get theirs from :mod:`predictors.onnx_graph`
(:func:`predictors.reference_graphs.reference_kernels`), with the fusion of the device's runtime.

Conventions (one place, so every kernel list agrees):

* ``flops = 2 * MACs``; element-wise ops (add, mul) and pools count 0 FLOPs.
* ``bytes`` = input activations + output activations + weights (BN folded into the conv, so
  a conv carries ``cout`` bias values), at ``bytes_per_element``; activations scale with batch,
  weights are read once per batch.
* BN and activations are fused into the conv before them (as TensorRT and onnxruntime do), so
  they are not separate kernels; residual adds and SE scales are.

Example::

    config = PRESETS["tiny"]
    ks = subnet_kernels(config, config.space().largest())
    assert sum(k.macs for k in ks) == count_macs(config, config.space().largest())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from supernet.cost import CostedConfig
from supernet.errors import ConfigError
from supernet.space import SubnetConfig

WEIGHTED_OPS = ("conv", "dwconv", "linear")


@dataclass(frozen=True, slots=True)
class Kernel:
    """One launched kernel. ``flops``/``bytes`` feed the roofline; ``shape_key`` keys a LUT."""

    name: str
    op: str  # conv | dwconv | linear | add | mul | pool | maxpool | decide | attention | norm | act | reduce
    flops: int
    bytes: int
    shape_key: str
    macs: int = 0
    params: int = 0
    batch: int = 1
    cin: int = 0
    cout: int = 0
    kernel: int = 0
    stride: int = 1
    groups: int = 1
    h_in: int = 1
    h_out: int = 1
    act: str = "none"  # the activation fused into this kernel: none | relu | relu6 | hswish
    # Set by predictors.onnx_graph (empty for kernels from layer tables):
    out_shape: tuple[int, ...] = ()  # shape of the kernel's output tensor
    branch: str = ""  # "<If node>.then" / ".else" (nested with "/") for kernels inside an If branch
    onnx_nodes: tuple[str, ...] = ()  # the ONNX nodes fused into this kernel, in order
    rows: int = 1  # tokens a token-wise kernel (linear, norm, attention) runs on; 1 for conv-net kernels
    variant: str = ""  # the token-reduction method of a ``reduce`` kernel (topk | tome)


def to_kernel(layer: dict[str, Any], *, batch: int = 1, bytes_per_element: int = 4) -> Kernel:
    """One layer dict of a family's kernel table (:meth:`supernet.cost.CostedConfig.layers`) → a :class:`Kernel`.

    Conv-net layers carry ``cin``/``cout``/``kernel``/``stride``/``groups``/``h_in``/``h_out``; token
    layers (a transformer's) carry ``rows`` (tokens) and ``cin``, and ``attention`` adds ``tokens``,
    ``heads`` and ``head_dim``, ``reduce`` adds ``method``, ``tokens_in`` and ``tokens_out``.
    """
    op = str(layer["op"])
    cin, cout = int(layer.get("cin", 0)), int(layer.get("cout", layer.get("cin", 0)))
    k, s, g = int(layer.get("kernel", 0)), int(layer.get("stride", 1)), int(layer.get("groups", 1))
    h_in, h_out, act = int(layer.get("h_in", 1)), int(layer.get("h_out", 1)), str(layer.get("act", "none"))
    rows = int(layer.get("rows", 1))
    macs = int(layer["macs"]) * batch
    tag, variant = "", ""
    if op in ("conv", "dwconv"):
        params = cout * (cin // g) * k * k + cout
        elements = batch * (cin * h_in * h_in + cout * h_out * h_out) + params
    elif op == "linear":
        params = cin * cout + cout
        elements = batch * rows * (cin + cout) + params
        tag = f":r{rows}" if rows != 1 else ""
    elif op == "add":  # two inputs, one output
        params, elements = 0, batch * 3 * cout * h_out * h_out * rows
        tag = f":r{rows}" if rows != 1 else ""
    elif op == "mul":  # SE scale: a feature map times a per-channel vector
        params, elements = 0, batch * (2 * cout * h_out * h_out + cout)
    elif op in ("pool", "maxpool"):
        params, elements = 0, batch * (cin * h_in * h_in + cout * h_out * h_out)
    elif op == "decide":  # an exit test: softmax over cin logits, max, compare, and the branch
        params, elements = 0, batch * 2 * cin
    elif op == "attention":  # softmax(Q K^T / sqrt(d)) V over all heads: reads q, k, v, writes the output
        t, h, d = int(layer["tokens"]), int(layer["heads"]), int(layer["head_dim"])
        q = int(layer.get("queries", t))  # the last ViT block asks only for the CLS token
        params, elements = 0, batch * (2 * q * h * d + 2 * t * h * d + 2 * h * q * t)  # + the scores, written and read
        cin = cout = h * d
        rows, g, h_in, h_out = t, h, t, q  # groups = heads; h_in/h_out = keys/queries
        tag = f":t{t}h{h}d{d}" + (f"q{q}" if q != t else "")
    elif op in ("norm", "act"):
        params = 2 * cin if op == "norm" else 0
        elements = batch * rows * 2 * cin + params
        tag = f":r{rows}"
    elif op == "reduce":  # token pruning / merging: scores, index selection and gathers (data movement)
        t_in, t_out = int(layer["tokens_in"]), int(layer["tokens_out"])
        params, elements = 0, batch * (t_in + t_out) * cin + batch * t_in
        rows, h_in, h_out = t_in, t_in, t_out  # h_in/h_out = tokens in/out
        variant = str(layer.get("method", "topk"))
        tag = f":{variant}{t_in}>{t_out}"
    else:
        raise ConfigError(f"unknown kernel op '{op}' in layer '{layer['name']}'; known: conv, dwconv, linear, add, "
                          "mul, pool, maxpool, decide, attention, norm, act, reduce.")
    key = f"{op}:{cin}>{cout}:k{k}s{s}g{g}:h{h_in}:b{batch}:{act}{tag}"
    return Kernel(name=str(layer["name"]), op=op, flops=2 * macs, bytes=elements * bytes_per_element, shape_key=key,
                  macs=macs, params=params, batch=batch, cin=cin, cout=cout, kernel=k, stride=s, groups=g,
                  h_in=h_in, h_out=h_out, act=act, rows=rows, variant=variant)


def subnet_kernels(arch_config: CostedConfig, subnet: SubnetConfig, *, bytes_per_element: int = 4,
                   batch: int = 1) -> list[Kernel]:
    """Kernels of one subnet of any family's supernet (its exits off), in execution order."""
    return layer_kernels(arch_config.layers(subnet), bytes_per_element=bytes_per_element, batch=batch)


def exit_kernels(arch_config: CostedConfig, e: int, *, bytes_per_element: int = 4, batch: int = 1) -> list[Kernel]:
    """Kernels of exit head ``e``, its exit test (``decide``) last."""
    return layer_kernels(arch_config.exit_layers(e), bytes_per_element=bytes_per_element, batch=batch)


def layer_kernels(layers: Sequence[dict[str, Any]], *, bytes_per_element: int = 4, batch: int = 1) -> list[Kernel]:
    """A kernel table → kernels."""
    return [to_kernel(layer, batch=batch, bytes_per_element=bytes_per_element) for layer in layers]


def total_macs(kernels: list[Kernel]) -> int:
    return int(sum(k.macs for k in kernels))


def total_params(kernels: list[Kernel]) -> int:
    return int(sum(k.params for k in kernels))
