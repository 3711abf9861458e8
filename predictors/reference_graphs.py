"""Reference models as ONNX graphs, built here with ``onnx.helper`` (no downloads, no exporter).

Each graph follows the published architecture layer by layer (torchvision layouts: conv without
bias + ``BatchNormalization``, ReLU6 = ``Clip(0, 6)``), so :func:`predictors.onnx_graph.graph_params`
gives the published parameter count and :func:`predictors.onnx_graph.graph_kernels` the MACs.
Weights are zeros (``weights="zeros"``: a valid model onnxruntime can run) or, for kernel
extraction only, ``weights="shape-only"``: big initializers carry their dims but no data (small,
fast; not runnable).

Example::

    model = reference_graph("mobilenet_v2")              # 1x3x224x224 -> 1x1000
    graph_params(model)                                  # 3_504_872
    reference_kernels("resnet50", fusion="tensorrt")     # 53 kernels, 4.09 GMAC at 224x224
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hw_profiles import REFERENCE_MODELS
from hw_profiles.reference import MIN_RESOLUTION
from predictors.kernels import Kernel
from predictors.onnx_graph import OPSET, graph_kernels
from supernet.errors import ConfigError, unknown

Weights = Literal["zeros", "shape-only"]
_SMALL = 64  # same threshold as onnx_graph: small constants always carry data


class _G:
    """Appends nodes and initializers; tracks the current tensor's channels and spatial size."""

    def __init__(self, batch: int, resolution: int, weights: Weights) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.weights, self.batch, self.n = weights, batch, 0
        self.x, self.c, self.h = "image", 3, resolution

    def uid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def w(self, name: str, shape: tuple[int, ...]) -> str:
        """A float32 weight of ``shape`` (zeros, or dims only in ``shape-only`` mode)."""
        if self.weights == "shape-only" and int(np.prod(shape)) > _SMALL:
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
        else:
            t = numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)
        self.inits.append(t)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, self.uid(name)))
        return self.inits[-1].name

    def node(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        out = f"{name}:out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def act(self, x: str, act: str, name: str) -> str:
        if act == "relu":
            return self.node("Relu", [x], f"{name}.relu")
        if act == "hswish":
            return self.node("HardSwish", [x], f"{name}.hswish")
        if act == "hsigmoid":  # torch's hardsigmoid: relu6(x + 3) / 6
            return self.node("HardSigmoid", [x], f"{name}.hsigmoid", alpha=1 / 6, beta=0.5)
        if act == "relu6":
            lo, hi = self.const("zero", np.array(0.0, np.float32)), self.const("six", np.array(6.0, np.float32))
            return self.node("Clip", [x, lo, hi], f"{name}.relu6")
        return x

    def conv_bn(self, name: str, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "none",
                x: str | None = None, cin: int | None = None, h: int | None = None, bn: bool = True,
                pad: int | None = None) -> str:
        """Conv (bias only when ``bn`` is off) + BN + activation; moves the main path unless ``x`` is given.
        ``pad`` defaults to ``k // 2`` (0 for a patch embedding)."""
        side = x is not None
        x, cin, h_in = x or self.x, cin or self.c, h or self.h
        p = k // 2 if pad is None else pad
        inputs = [x, self.w(f"{name}.weight", (cout, cin // groups, k, k))]
        if not bn:
            inputs.append(self.w(f"{name}.bias", (cout,)))
        y = self.node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride], pads=[p] * 4, group=groups)
        if bn:
            y = self.node("BatchNormalization", [y, *(self.w(f"{name}.bn.{s}", (cout,)) for s in
                                                      ("weight", "bias", "running_mean", "running_var"))], f"{name}.bn")
        y = self.act(y, act, name)
        h_out = (h_in + 2 * p - k) // stride + 1
        if not side:
            self.x, self.c, self.h = y, cout, h_out
        return y

    def add(self, a: str, b: str, name: str, act: str = "none") -> str:
        self.x = self.act(self.node("Add", [a, b], name), act, name)
        return self.x

    def classifier(self, classes: int = 1000) -> str:
        y = self.node("GlobalAveragePool", [self.x], "avgpool")
        y = self.node("Flatten", [y], "flatten", axis=1)
        return self.node("Gemm", [y, self.w("fc.weight", (classes, self.c)), self.w("fc.bias", (classes,))], "fc",
                         transB=1)

    def model(self, name: str, outputs: list[tuple[str, list[int]]]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [self.batch, 3, 0, 0])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o, shape in outputs],
            initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dynnas")
        model.ir_version = 8
        return model


def _resnet(g: _G, blocks: tuple[int, ...], bottleneck: bool) -> str:
    """torchvision ResNet; bottleneck ResNets are v1.5 (stride on the 3x3 conv)."""
    g.conv_bn("conv1", 64, 7, 2, act="relu")
    p = g.node("MaxPool", [g.x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    g.x, g.h = p, (g.h + 2 - 3) // 2 + 1
    expansion = 4 if bottleneck else 1
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            name, x, cin, h, cout = f"layer{stage + 1}.{b}", g.x, g.c, g.h, width * expansion
            if bottleneck:
                g.conv_bn(f"{name}.conv1", width, 1, act="relu")
                g.conv_bn(f"{name}.conv2", width, 3, stride, act="relu")
                g.conv_bn(f"{name}.conv3", cout, 1)
            else:
                g.conv_bn(f"{name}.conv1", width, 3, stride, act="relu")
                g.conv_bn(f"{name}.conv2", width, 3)
            short = x
            if stride != 1 or cin != cout:
                short = g.conv_bn(f"{name}.downsample", cout, 1, stride, x=x, cin=cin, h=h)
            g.add(g.x, short, f"{name}.add", act="relu")
    return g.classifier()


def _mobilenet_v1(g: _G, width: float = 1.0) -> str:
    """Howard et al. Table 1 at width multiplier ``width`` (TF-slim's channels: ``max(int(c * width), 8)``)."""
    depth = lambda c: max(int(c * width), 8)  # noqa: E731
    g.conv_bn("conv0", depth(32), 3, 2, act="relu6")
    for i, (c, s) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                                (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)), start=1):
        g.conv_bn(f"conv{i}.dw", g.c, 3, s, groups=g.c, act="relu6")
        g.conv_bn(f"conv{i}.pw", depth(c), 1, act="relu6")
    return g.classifier()


def _inverted_residuals(g: _G, table: tuple[tuple[int, int, int, int, int], ...], prefix: str,
                        width: float = 1.0) -> None:
    """MBConv blocks (kernel, stride, expand, out, repeats): expand, depthwise, project, residual add; output
    channels at width multiplier ``width`` (rounded to a multiple of 8)."""
    i = 0
    for k, stride, t, c_base, reps in table:
        c = _make_divisible(c_base * width)
        for r in range(reps):
            x, cin, s = g.x, g.c, stride if r == 0 else 1
            name = f"{prefix}.{i}"
            if t != 1:
                g.conv_bn(f"{name}.expand", cin * t, 1, act="relu6")
            g.conv_bn(f"{name}.dw", g.c, k, s, groups=g.c, act="relu6")
            g.conv_bn(f"{name}.project", c, 1)
            if s == 1 and cin == c:
                g.add(g.x, x, f"{name}.add")
            i += 1


def _mobilenet_v2(g: _G, width: float = 1.0) -> str:
    """torchvision MobileNetV2 (Sandler et al. Table 2) at width multiplier ``width``: every layer's channels
    rounded to a multiple of 8; the last 1x1 conv keeps 1280 channels below width 1 (as torchvision and Keras)."""
    g.conv_bn("features.0", _make_divisible(32 * width), 3, 2, act="relu6")
    _inverted_residuals(g, ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (3, 2, 6, 32, 3), (3, 2, 6, 64, 4),
                            (3, 1, 6, 96, 3), (3, 2, 6, 160, 3), (3, 1, 6, 320, 1)), "features", width)
    g.conv_bn("features.18", _make_divisible(1280 * max(1.0, width)), 1, act="relu6")
    return g.classifier()


# EfficientNet-B0's MBConv stages (kernel, stride, expand, out, repeats); Lite0 drops SE, uses ReLU6.
EFFICIENTNET_B0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))


def _efficientnet_lite0(g: _G) -> str:
    """EfficientNet-Lite0 (tensorflow/tpu efficientnet/lite): B0's stages without squeeze-excite, ReLU6, stem 32
    and head 1280."""
    g.conv_bn("stem", 32, 3, 2, act="relu6")
    _inverted_residuals(g, EFFICIENTNET_B0_STAGES, "blocks")
    g.conv_bn("head", 1280, 1, act="relu6")
    return g.classifier()


def _vit(g: _G, *, patch: int = 16, dim: int = 768, depth: int = 12, heads: int = 12, mlp: int = 3072,
         classes: int = 1000) -> str:
    """torchvision ``vit_b_16``: patch conv, class token, position embedding, pre-norm encoder, head."""
    n, tokens, hd = g.batch, (g.h // patch) ** 2 + 1, dim // heads
    i64 = lambda *v: g.const("shape", np.array(v, dtype=np.int64))  # noqa: E731
    g.conv_bn("conv_proj", dim, patch, patch, bn=False, pad=0)
    y = g.node("Reshape", [g.x, i64(n, dim, tokens - 1)], "patches")
    y = g.node("Transpose", [y], "patches.t", perm=[0, 2, 1])
    cls = g.node("Expand", [g.w("class_token", (1, 1, dim)), i64(n, 1, dim)], "class_token.expand")
    y = g.node("Concat", [cls, y], "tokens", axis=1)
    x = g.node("Add", [y, g.w("encoder.pos_embedding", (1, tokens, dim))], "pos_embedding")

    def ln(x: str, name: str) -> str:
        return g.node("LayerNormalization", [x, g.w(f"{name}.weight", (dim,)), g.w(f"{name}.bias", (dim,))], name,
                      axis=-1, epsilon=1e-6)

    def linear(x: str, name: str, cin: int, cout: int) -> str:
        y = g.node("MatMul", [x, g.w(f"{name}.weight", (cin, cout))], name)
        return g.node("Add", [y, g.w(f"{name}.bias", (cout,))], f"{name}.bias_add")

    def heads_of(x: str, name: str, perm: list[int]) -> str:
        return g.node("Transpose", [g.node("Reshape", [x, i64(n, tokens, heads, hd)], f"{name}.split")],
                      f"{name}.heads", perm=perm)

    for layer in range(depth):
        p = f"encoder.layers.{layer}"
        h = ln(x, f"{p}.ln_1")
        q = heads_of(linear(h, f"{p}.attn.q", dim, dim), f"{p}.attn.q", [0, 2, 1, 3])
        k = heads_of(linear(h, f"{p}.attn.k", dim, dim), f"{p}.attn.k", [0, 2, 3, 1])
        v = heads_of(linear(h, f"{p}.attn.v", dim, dim), f"{p}.attn.v", [0, 2, 1, 3])
        s = g.node("MatMul", [q, k], f"{p}.attn.scores")
        s = g.node("Div", [s, g.const("scale", np.array(np.sqrt(hd), np.float32))], f"{p}.attn.scale")
        s = g.node("Softmax", [s], f"{p}.attn.softmax", axis=-1)
        a = g.node("MatMul", [s, v], f"{p}.attn.context")
        a = g.node("Reshape", [g.node("Transpose", [a], f"{p}.attn.merge", perm=[0, 2, 1, 3]), i64(n, tokens, dim)],
                   f"{p}.attn.merge.reshape")
        x = g.node("Add", [x, linear(a, f"{p}.attn.out_proj", dim, dim)], f"{p}.add_1")
        h = linear(ln(x, f"{p}.ln_2"), f"{p}.mlp.0", dim, mlp)
        # exact GELU at opset 17: 0.5 * x * (1 + erf(x / sqrt 2))
        e = g.node("Erf", [g.node("Div", [h, g.const("sqrt2", np.array(np.sqrt(2), np.float32))], f"{p}.gelu.div")],
                   f"{p}.gelu.erf")
        e = g.node("Add", [e, g.const("one", np.array(1.0, np.float32))], f"{p}.gelu.add")
        e = g.node("Mul", [g.node("Mul", [h, e], f"{p}.gelu.mul"), g.const("half", np.array(0.5, np.float32))],
                   f"{p}.gelu.half")
        x = g.node("Add", [x, linear(e, f"{p}.mlp.3", mlp, dim)], f"{p}.add_2")
    x = ln(x, "encoder.ln")
    x = g.node("Gather", [x, g.const("cls_index", np.array(0, dtype=np.int64))], "class_token.select", axis=1)
    return g.node("Gemm", [x, g.w("heads.head.weight", (classes, dim)), g.w("heads.head.bias", (classes,))],
                  "heads.head", transB=1)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (to a multiple of ``divisor``, never below 90 % of ``v``)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


# MobileNetV3-Large's bneck table (Howard et al. 2019, Table 1): kernel, expand, out, squeeze-excite, activation,
# stride.
_V3_LARGE = ((3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
             (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
             (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
             (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
             (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1))


def _mobilenet_v3(g: _G, table: tuple[tuple[int, int, int, bool, str, int], ...], last: int, hidden: int,
                  width: float = 1.0) -> str:
    """torchvision MobileNetV3 (Howard et al. 2019) at width multiplier ``width``: squeeze-excite with
    hard-sigmoid; channels rounded to multiples of 8 (torchvision's ``adjust_channels``)."""
    ch = lambda c: _make_divisible(c * width)  # noqa: E731
    g.conv_bn("features.0", ch(16), 3, 2, act="hswish")
    for i, (k, exp_base, out_base, se, act, stride) in enumerate(table, start=1):
        x, cin, name, exp, out = g.x, g.c, f"features.{i}", ch(exp_base), ch(out_base)
        if exp != cin:
            g.conv_bn(f"{name}.expand", exp, 1, act=act)
        y = g.conv_bn(f"{name}.dw", exp, k, stride, groups=exp, act=act)
        if se:
            sq = _make_divisible(exp // 4)
            p = g.node("GlobalAveragePool", [y], f"{name}.se.pool")
            p = g.conv_bn(f"{name}.se.fc1", sq, 1, act="relu", x=p, cin=exp, h=1, bn=False)
            p = g.conv_bn(f"{name}.se.fc2", exp, 1, act="hsigmoid", x=p, cin=sq, h=1, bn=False)
            g.x = g.node("Mul", [y, p], f"{name}.se.scale")
        g.conv_bn(f"{name}.project", out, 1)
        if stride == 1 and cin == out:
            g.add(g.x, x, f"{name}.add")
    last_c, hidden_c = ch(last), ch(hidden) if width > 1.0 else hidden
    g.conv_bn(f"features.{len(table) + 1}", last_c, 1, act="hswish")
    y = g.node("Flatten", [g.node("GlobalAveragePool", [g.x], "avgpool")], "flatten", axis=1)
    y = g.node("Gemm", [y, g.w("classifier.0.weight", (hidden_c, last_c)), g.w("classifier.0.bias", (hidden_c,))],
               "classifier.0", transB=1)
    y = g.act(y, "hswish", "classifier.0")
    return g.node("Gemm", [y, g.w("classifier.3.weight", (1000, hidden_c)), g.w("classifier.3.bias", (1000,))],
                  "classifier.3", transB=1)


def _shufflenet_v2(g: _G, stages: tuple[int, int, int] = (116, 232, 464), repeats: tuple[int, int, int] = (4, 8, 4),
                   last: int = 1024) -> str:
    """torchvision ``shufflenet_v2_x1_0`` (Ma et al. 2018, Table 5): channel split, two-branch units, concat and
    channel shuffle (reshape, transpose, reshape)."""
    n = g.batch
    i64 = lambda *v: g.const("shape", np.array(v, dtype=np.int64))  # noqa: E731
    g.conv_bn("conv1", 24, 3, 2, act="relu")
    g.x, g.h = g.node("MaxPool", [g.x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), \
        (g.h + 2 - 3) // 2 + 1

    def branch(x: str, cin: int, h: int, out: int, stride: int, name: str) -> tuple[str, int]:
        y = g.conv_bn(f"{name}.0", out, 1, act="relu", x=x, cin=cin, h=h)
        y = g.conv_bn(f"{name}.3", out, 3, stride, groups=out, x=y, cin=out, h=h)
        h2 = (h + 2 - 3) // stride + 1
        return g.conv_bn(f"{name}.5", out, 1, act="relu", x=y, cin=out, h=h2), h2

    def shuffle(x: str, c: int, h: int, name: str) -> str:
        y = g.node("Reshape", [x, i64(n, 2, c // 2, h, h)], f"{name}.shuffle.split")
        y = g.node("Transpose", [y], f"{name}.shuffle", perm=[0, 2, 1, 3, 4])
        return g.node("Reshape", [y, i64(n, c, h, h)], f"{name}.shuffle.merge")

    for s, (out, reps) in enumerate(zip(stages, repeats, strict=True), start=2):
        half = out // 2
        for r in range(reps):
            name, x, cin, h = f"stage{s}.{r}", g.x, g.c, g.h
            if r == 0:
                b1 = g.conv_bn(f"{name}.branch1.0", cin, 3, 2, groups=cin, x=x, cin=cin, h=h)
                b1 = g.conv_bn(f"{name}.branch1.2", half, 1, act="relu", x=b1, cin=cin, h=(h + 2 - 3) // 2 + 1)
                b2, h2 = branch(x, cin, h, half, 2, f"{name}.branch2")
            else:
                out_names = [f"{name}.split:out0", f"{name}.split:out1"]
                g.nodes.append(helper.make_node("Split", [x, i64(half, half)], out_names, name=f"{name}.split", axis=1))
                b1 = out_names[0]
                b2, h2 = branch(out_names[1], half, h, half, 1, f"{name}.branch2")
            y = g.node("Concat", [b1, b2], f"{name}.concat", axis=1)
            g.x, g.c, g.h = shuffle(y, out, h2, name), out, h2
    g.conv_bn("conv5", last, 1, act="relu")
    return g.classifier()


SSD_CLASSES = 91


def _ssd_mobilenet_v1(g: _G) -> list[tuple[str, list[int]]]:
    """MLPerf SSD-MobileNet-v1 (as :func:`predictors.kernels._ssd_mobilenet_v1`): class scores
    ``N x anchors x 91`` and box offsets ``N x anchors x 4``, before anchor decoding and NMS."""
    g.conv_bn("Conv2d_0", 32, 3, 2, act="relu6")
    maps = []
    for i, (c, s) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                                (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)), start=1):
        g.conv_bn(f"Conv2d_{i}_depthwise", g.c, 3, s, groups=g.c, act="relu6")
        g.conv_bn(f"Conv2d_{i}_pointwise", c, 1, act="relu6")
        if i in (11, 13):
            maps.append((g.x, g.c, g.h))
    for j, d in enumerate((512, 256, 256, 128), start=2):
        g.conv_bn(f"Conv2d_13_1_Conv2d_{j}_1x1_{d // 2}", d // 2, 1, act="relu6")
        g.conv_bn(f"Conv2d_13_2_Conv2d_{j}_3x3_s2_{d}", d, 3, 2, act="relu6")
        maps.append((g.x, g.c, g.h))
    heads: dict[str, list[str]] = {"class": [], "box": []}
    total = 0
    for m, (x, c, h) in enumerate(maps):
        anchors = 3 if m == 0 else 6
        total += anchors * h * h
        for head, per in (("class", SSD_CLASSES), ("box", 4)):
            name = f"BoxPredictor_{m}.{head}"
            y = g.conv_bn(name, anchors * per, 1, x=x, cin=c, h=h, bn=False)
            y = g.node("Transpose", [y], f"{name}.nhwc", perm=[0, 2, 3, 1])
            shape = g.const("shape", np.array([g.batch, anchors * h * h, per], dtype=np.int64))
            heads[head].append(g.node("Reshape", [y, shape], f"{name}.flat"))
    scores = g.node("Concat", heads["class"], "scores", axis=1)
    boxes = g.node("Concat", heads["box"], "boxes", axis=1)
    return [(scores, [g.batch, total, SSD_CLASSES]), (boxes, [g.batch, total, 4])]


_BUILDERS: dict[str, Callable[[_G], str | list[tuple[str, list[int]]]]] = {
    "resnet50": lambda g: _resnet(g, (3, 4, 6, 3), bottleneck=True),
    "resnet18": lambda g: _resnet(g, (2, 2, 2, 2), bottleneck=False),
    "mobilenet_v1": _mobilenet_v1,
    **{f"mobilenet_v1_{w}": functools.partial(_mobilenet_v1, width=float(w)) for w in ("0.5", "0.25")},
    "mobilenet_v2": _mobilenet_v2,
    **{f"mobilenet_v2_{w}": functools.partial(_mobilenet_v2, width=float(w)) for w in ("1.4", "0.75", "0.5", "0.35")},
    "efficientnet_lite0": _efficientnet_lite0,
    "vit_b16": _vit,
    "mobilenet_v3_large": functools.partial(_mobilenet_v3, table=_V3_LARGE, last=960, hidden=1280),
    "shufflenet_v2": _shufflenet_v2,
    "ssd_mobilenet_v1": _ssd_mobilenet_v1,
}


def reference_graph_names() -> list[str]:
    """Reference models :func:`reference_graph` can build."""
    return sorted(_BUILDERS)


def reference_graph(name: str, resolution: int | None = None, *, batch: int = 1,
                    weights: Weights = "zeros") -> onnx.ModelProto:
    """ONNX model of reference model ``name`` (input ``image``: ``batch x 3 x r x r``; output the logits,
    or for ``ssd_mobilenet_v1`` the class scores and box offsets)."""
    if name not in _BUILDERS:
        raise unknown("reference graph", name, reference_graph_names())
    if weights not in ("zeros", "shape-only"):
        raise ConfigError(f"weights must be 'zeros' or 'shape-only', but got {weights!r}.")
    r = REFERENCE_MODELS[name].resolution if resolution is None else int(resolution)
    if r < MIN_RESOLUTION or batch < 1:
        raise ConfigError(f"need resolution >= {MIN_RESOLUTION} and batch >= 1, but got {r=}, {batch=}.")
    g = _G(batch, r, weights)
    out = _BUILDERS[name](g)
    model = g.model(name, [(out, [batch, 1000])] if isinstance(out, str) else out)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = r
    return model


def reference_kernels(name: str, resolution: int | None = None, bytes_per_element: int = 4, *, batch: int = 1,
                      fusion: str = "tensorrt") -> list[Kernel]:
    """Kernels of reference model ``name`` as the runtime ``fusion`` launches them (a runtime of
    ``fusion_rules.yaml``; a device's is :func:`predictors.onnx_graph.runtime_fusion` of its ``runtime``).

    The one kernel source of a reference model, for the calibration fits and for ``dynnas latency``
    alike: :func:`reference_graph`'s ONNX graph read by :func:`predictors.onnx_graph.graph_kernels`.
    SSD's anchor decoding and NMS are not in the graph (they run after the network, on few values).
    Cached: a fit asks for the same few models many times.
    """
    if name not in _BUILDERS:
        raise unknown("reference model", name, reference_graph_names())
    r = REFERENCE_MODELS[name].resolution if resolution is None else int(resolution)
    return list(_reference_kernels(name, r, int(bytes_per_element), int(batch), fusion))


@functools.lru_cache(maxsize=512)
def _reference_kernels(name: str, resolution: int, bytes_per_element: int, batch: int,
                       fusion: str) -> tuple[Kernel, ...]:
    graph = reference_graph(name, resolution, batch=batch, weights="shape-only")
    return tuple(graph_kernels(graph, bytes_per_element=bytes_per_element, fusion=fusion))
