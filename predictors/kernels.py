"""A network as the list of kernels a runtime launches: shapes, FLOPs and bytes moved.

Both latency predictors start here. :func:`subnet_kernels` turns a supernet subnet into
kernels (from :func:`supernet.cnn.cnn_layers`); :func:`reference_kernels` builds the same list
for the reference models whose published latencies calibrate a device profile.

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
    reference_kernels("resnet50")           # 72 kernels, 4.09 GMAC at 224x224
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hw_profiles import REFERENCE_MODELS
from supernet.cost import CostedConfig
from supernet.errors import ConfigError, unknown
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


def _layer(name: str, op: str, cin: int, cout: int, kernel: int, stride: int, groups: int, h_in: int, h_out: int,
           macs: int, act: str = "none") -> dict[str, Any]:
    return {"name": name, "op": op, "cin": cin, "cout": cout, "kernel": kernel, "stride": stride, "groups": groups,
            "h_in": h_in, "h_out": h_out, "macs": macs, "act": act}


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


# ---- reference models -----------------------------------------------------------------------------
class _Net:
    """Tracks the feature-map size while a layer table is written top to bottom."""

    def __init__(self, resolution: int, channels: int = 3) -> None:
        self.h, self.c, self.layers = resolution, channels, []

    def conv(self, name: str, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "none",
             cin: int | None = None, h: int | None = None, pad: int | None = None) -> int:
        """Append a conv on the current map (or on ``cin``/``h`` for a side branch); return h_out."""
        cin = self.c if cin is None else cin
        h_in = self.h if h is None else h
        pad = k // 2 if pad is None else pad
        h_out = (h_in + 2 * pad - k) // stride + 1
        op = "dwconv" if groups > 1 else "conv"
        macs = h_out * h_out * cout * (cin // groups) * k * k
        self.layers.append(_layer(name, op, cin, cout, k, stride, groups, h_in, h_out, macs, act))
        if h is None and cin == self.c:  # main path moves on; side branches (heads, shortcuts) don't
            self.h, self.c = h_out, cout
        return h_out

    def dw(self, name: str, k: int, stride: int = 1, act: str = "none") -> None:
        self.conv(name, self.c, k, stride, groups=self.c, act=act)

    def add(self, name: str) -> None:
        self.layers.append(_layer(name, "add", self.c, self.c, 0, 1, 1, self.h, self.h, 0))

    def maxpool(self, name: str, k: int, stride: int) -> None:
        h_out = (self.h + 2 * (k // 2) - k) // stride + 1
        self.layers.append(_layer(name, "maxpool", self.c, self.c, k, stride, 1, self.h, h_out, 0))
        self.h = h_out

    def global_pool(self, name: str) -> None:
        self.layers.append(_layer(name, "pool", self.c, self.c, self.h, 1, 1, self.h, 1, 0))

    def linear(self, name: str, cout: int, act: str = "none") -> None:
        self.layers.append(_layer(name, "linear", self.c, cout, 1, 1, 1, 1, 1, self.c * cout, act))
        self.c, self.h = cout, 1

    def se(self, name: str, squeeze: int) -> None:
        """Squeeze-excite: global pool, two 1×1 convs on the 1×1 map, then a channel-wise scale."""
        c, h = self.c, self.h
        self.layers.append(_layer(f"{name}.pool", "pool", c, c, h, 1, 1, h, 1, 0))
        self.conv(f"{name}.fc1", squeeze, 1, act="relu", cin=c, h=1)
        self.conv(f"{name}.fc2", c, 1, act="hsigmoid", cin=squeeze, h=1)
        self.layers.append(_layer(f"{name}.scale", "mul", c, c, 0, 1, 1, h, h, 0))


def _resnet(resolution: int, blocks: tuple[int, ...], bottleneck: bool) -> list[dict[str, Any]]:
    """torchvision ResNet; ResNet-50 is v1.5 (stride on the 3×3 conv)."""
    n = _Net(resolution)
    n.conv("conv1", 64, 7, 2, act="relu")
    n.maxpool("maxpool", 3, 2)
    expansion = 4 if bottleneck else 1
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            name, cin, h_in, cout = f"layer{stage + 1}.{b}", n.c, n.h, width * expansion
            if bottleneck:
                n.conv(f"{name}.conv1", width, 1, act="relu")
                n.conv(f"{name}.conv2", width, 3, stride, act="relu")
                n.conv(f"{name}.conv3", cout, 1)
            else:
                n.conv(f"{name}.conv1", width, 3, stride, act="relu")
                n.conv(f"{name}.conv2", width, 3)
            if stride != 1 or cin != cout:
                n.conv(f"{name}.downsample", cout, 1, stride, cin=cin, h=h_in)
            n.add(f"{name}.add")  # followed by ReLU, fused into the add
    n.global_pool("avgpool")
    n.linear("fc", 1000)
    return n.layers


def _mobilenet_v2(resolution: int) -> list[dict[str, Any]]:
    """torchvision MobileNetV2, width 1.0 (Sandler et al. Table 2)."""
    n = _Net(resolution)
    n.conv("features.0", 32, 3, 2, act="relu6")
    i = 1
    for t, c, reps, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                          (6, 160, 3, 2), (6, 320, 1, 1)):
        for r in range(reps):
            cin, stride = n.c, s if r == 0 else 1
            if t != 1:
                n.conv(f"features.{i}.expand", cin * t, 1, act="relu6")
            n.dw(f"features.{i}.dw", 3, stride, act="relu6")
            n.conv(f"features.{i}.project", c, 1)
            if stride == 1 and cin == c:
                n.add(f"features.{i}.add")
            i += 1
    n.conv("features.18", 1280, 1, act="relu6")
    n.global_pool("avgpool")
    n.linear("classifier", 1000)
    return n.layers


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _mobilenet_v3_large(resolution: int) -> list[dict[str, Any]]:
    """torchvision MobileNetV3-Large (Howard et al. Table 1), with squeeze-excite blocks."""
    n = _Net(resolution)
    n.conv("features.0", 16, 3, 2, act="hswish")
    # (kernel, expanded, out, se, activation, stride)
    table = ((3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
             (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
             (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
             (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
             (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1))
    for i, (k, exp, out, se, act, stride) in enumerate(table, start=1):
        cin = n.c
        if exp != cin:
            n.conv(f"features.{i}.expand", exp, 1, act=act)
        n.dw(f"features.{i}.dw", k, stride, act=act)
        if se:
            n.se(f"features.{i}.se", _make_divisible(exp // 4))
        n.conv(f"features.{i}.project", out, 1)
        if stride == 1 and cin == out:
            n.add(f"features.{i}.add")
    n.conv("features.16", 960, 1, act="hswish")
    n.global_pool("avgpool")
    n.linear("classifier.0", 1280, act="hswish")
    n.linear("classifier.3", 1000)
    return n.layers


def _ssd_mobilenet_v1(resolution: int) -> list[dict[str, Any]]:
    """MLPerf SSD-MobileNet-v1 (TF object-detection API, 91 classes), without box decoding and NMS.

    Backbone: MobileNetV1 width 1.0 up to Conv2d_13. Extra feature maps: four (1×1 conv to
    d/2, 3×3 stride-2 conv to d) with d = 512, 256, 256, 128. Box predictor: one 1×1 conv for
    classes (anchors × 91) and one for boxes (anchors × 4) on each of the six maps, with 3
    anchors on the first map and 6 on the others.
    """
    n = _Net(resolution)
    n.conv("Conv2d_0", 32, 3, 2, act="relu6")
    maps = []
    for i, (c, s) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                                (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)), start=1):
        n.dw(f"Conv2d_{i}_depthwise", 3, s, act="relu6")
        n.conv(f"Conv2d_{i}_pointwise", c, 1, act="relu6")
        if i in (11, 13):
            maps.append((n.c, n.h))
    for j, d in enumerate((512, 256, 256, 128), start=2):
        n.conv(f"Conv2d_13_1_Conv2d_{j}_1x1_{d // 2}", d // 2, 1, act="relu6")
        n.conv(f"Conv2d_13_2_Conv2d_{j}_3x3_s2_{d}", d, 3, 2, act="relu6")
        maps.append((n.c, n.h))
    for m, (c, h) in enumerate(maps):
        anchors = 3 if m == 0 else 6
        n.conv(f"BoxPredictor_{m}.class", anchors * 91, 1, cin=c, h=h)
        n.conv(f"BoxPredictor_{m}.box", anchors * 4, 1, cin=c, h=h)
    return n.layers


def _mobilenet_v1(resolution: int) -> list[dict[str, Any]]:
    """MobileNetV1 width 1.0 (Howard et al. Table 1): 13 depthwise-separable pairs, pool, FC."""
    n = _Net(resolution)
    n.conv("conv0", 32, 3, 2, act="relu6")
    for i, (c, s) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                                (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)), start=1):
        n.dw(f"conv{i}.dw", 3, s, act="relu6")
        n.conv(f"conv{i}.pw", c, 1, act="relu6")
    n.global_pool("avgpool")
    n.linear("fc", 1000)
    return n.layers


# EfficientNet-B0's MBConv stages (kernel, stride, expand, out, repeats); Lite0 drops SE, uses ReLU6.
EFFICIENTNET_B0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))


def _efficientnet_lite0(resolution: int) -> list[dict[str, Any]]:
    """EfficientNet-Lite0 (tensorflow/tpu efficientnet/lite): B0's stages without SE, ReLU6."""
    n = _Net(resolution)
    n.conv("stem", 32, 3, 2, act="relu6")
    for s, (k, stride, t, c, reps) in enumerate(EFFICIENTNET_B0_STAGES):
        for r in range(reps):
            cin, st = n.c, stride if r == 0 else 1
            if t != 1:
                n.conv(f"blocks.{s}.{r}.expand", cin * t, 1, act="relu6")
            n.dw(f"blocks.{s}.{r}.dw", k, st, act="relu6")
            n.conv(f"blocks.{s}.{r}.project", c, 1)
            if st == 1 and cin == c:
                n.add(f"blocks.{s}.{r}.add")
    n.conv("head", 1280, 1, act="relu6")
    n.global_pool("avgpool")
    n.linear("fc", 1000)
    return n.layers


_REFERENCE_BUILDERS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "resnet50": lambda r: _resnet(r, (3, 4, 6, 3), bottleneck=True),
    "resnet18": lambda r: _resnet(r, (2, 2, 2, 2), bottleneck=False),
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v3_large": _mobilenet_v3_large,
    "ssd_mobilenet_v1": _ssd_mobilenet_v1,
    "mobilenet_v1": _mobilenet_v1,
    "efficientnet_lite0": _efficientnet_lite0,
}
# Reference models that are not a stack of convs: their kernels come from the ONNX graph dynnas
# builds for them (predictors.reference_graphs), read by predictors.onnx_graph with TensorRT fusion.
_GRAPH_REFERENCES = ("vit_b16",)


def reference_kernels(model_name: str, resolution: int | None = None, bytes_per_element: int = 4, *,
                      batch: int = 1) -> list[Kernel]:
    """Kernels of a reference model of :data:`hw_profiles.REFERENCE_MODELS` (default: its own resolution).

    Approximations: BN and activations are fused into convs; SSD's anchor decoding and NMS are
    left out (they run after the network, on few values). Models that are not a conv stack
    (``vit_b16``) come from their ONNX graph (:mod:`predictors.reference_graphs`) with TensorRT fusion.
    """
    if model_name not in _REFERENCE_BUILDERS and model_name not in _GRAPH_REFERENCES:
        raise unknown("reference model", model_name, sorted([*_REFERENCE_BUILDERS, *_GRAPH_REFERENCES]))
    resolution = REFERENCE_MODELS[model_name].resolution if resolution is None else int(resolution)
    if resolution < 32:
        raise ConfigError(f"reference model resolution must be >= 32, but got {resolution}.")
    if model_name in _GRAPH_REFERENCES:  # imported here: onnx_graph builds on this module
        from predictors.onnx_graph import graph_kernels
        from predictors.reference_graphs import reference_graph

        graph = reference_graph(model_name, resolution, batch=batch, weights="shape-only")
        return graph_kernels(graph, bytes_per_element=bytes_per_element, fusion="tensorrt")
    layers = _REFERENCE_BUILDERS[model_name](resolution)
    return [to_kernel(layer, batch=batch, bytes_per_element=bytes_per_element) for layer in layers]


def total_macs(kernels: list[Kernel]) -> int:
    return int(sum(k.macs for k in kernels))


def total_params(kernels: list[Kernel]) -> int:
    return int(sum(k.params for k in kernels))
