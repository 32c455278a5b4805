"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

Pure Python: the net file is read with :mod:`facestack.vision.models.dlib_format` and the graph is written
with :mod:`onnx`; dlib itself is not needed.

A dlib net file stores each layer's parameters but not the topology: which tag a ``skip`` or an
``add_prev`` refers to lives only in the network's C++ type (``anet_type`` in dlib's
``dnn_face_recognition_ex.cpp``). That type is mirrored here by :func:`_face_net_spec`, and the
reader checks every layer it meets against it, so a file of any other shape fails with
:class:`~facestack.vision.errors.ModelPackError` instead of converting into something wrong.

File layout: every wrapper (``add_layer``, ``add_tag_layer``, ``add_skip_layer``, the loss) writes
its version and then the whole network inside it, so the file opens with the loss, then one
version integer per layer from the outside in, then the input layer, and then each layer's own
fields in forward order, each followed by three bools and (empty) gradient and output tensors.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facestack.vision.errors import ModelPackError
from facestack.vision.models.dlib_format import DlibReader

__all__ = [
    "AddPrev",
    "Affine",
    "Conv",
    "DlibNet",
    "FullyConnected",
    "Pool",
    "Relu",
    "Skip",
    "Tag",
    "convert_dlib_resnet",
    "read_dlib_resnet",
]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "descriptor"
OPSET = 17
IR_VERSION = 8

# Versions the wrappers write before their subnetwork.
_V_LOSS = 1
_V_TAG_OR_SKIP = 1
_V_LAYER = 2
_V_BOTTOM = 3

# ---------------------------------------------------------------------------------------------
# Parsed layers (forward order)


@dataclass(frozen=True)
class Conv:
    """Cross-correlation; ``filters`` is (out, in, kh, kw), ``bias`` is (out,)."""

    filters: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """Per-channel ``gamma * x + beta`` (dlib's inference-time batch norm, CONV_MODE)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    """``kind`` is "max" or "avg"; a size of (0, 0) pools the whole image."""

    kind: str
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FullyConnected:
    """``y = flatten(x) @ weights (+ bias)``; ``weights`` is (inputs, outputs)."""

    weights: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class Tag:
    tag: int


@dataclass(frozen=True)
class Skip:
    tag: int


@dataclass(frozen=True)
class AddPrev:
    tag: int


Layer = Conv | Affine | Relu | Pool | FullyConnected | Tag | Skip | AddPrev


@dataclass(frozen=True)
class DlibNet:
    """A parsed dlib network: input normalisation, layers in forward order and the loss."""

    input_size: tuple[int, int]
    means_rgb: tuple[float, float, float]
    layers: tuple[Layer, ...]
    loss: str
    margin: float
    distance_threshold: float

    @property
    def parameter_count(self) -> int:
        total = 0
        for layer in self.layers:
            if isinstance(layer, Conv):
                total += layer.filters.size + layer.bias.size
            elif isinstance(layer, Affine):
                total += layer.gamma.size + layer.beta.size
            elif isinstance(layer, FullyConnected):
                total += layer.weights.size + (0 if layer.bias is None else layer.bias.size)
        return total


# ---------------------------------------------------------------------------------------------
# The network type, outermost wrapper first (mirrors anet_type in dnn_face_recognition_ex.cpp)

_Spec = tuple[str, int]  # (kind, tag id); kind in con, affine, relu, max_pool, avg_pool, fc, tag,
#                           skip, add_prev


def _ares() -> list[_Spec]:
    # relu<add_prev1<affine<con<relu<affine<con<tag1<SUBNET>>>>>>>>
    return [("relu", 0), ("add_prev", 1), ("affine", 0), ("con", 0), ("relu", 0), ("affine", 0),
            ("con", 0), ("tag", 1)]


def _ares_down() -> list[_Spec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<affine<con<relu<affine<con<tag1<SUBNET>>>>>>>>>>>
    return [("relu", 0), ("add_prev", 2), ("avg_pool", 0), ("skip", 1), ("tag", 2), ("affine", 0),
            ("con", 0), ("relu", 0), ("affine", 0), ("con", 0), ("tag", 1)]


def _face_net_spec() -> list[_Spec]:
    level0 = _ares_down()
    level1 = _ares() * 2 + _ares_down()
    level2 = _ares() * 2 + _ares_down()
    level3 = _ares() * 3 + _ares_down()
    level4 = _ares() * 3
    stem = [("max_pool", 0), ("relu", 0), ("affine", 0), ("con", 0)]
    return [("fc", 0), ("avg_pool", 0)] + level0 + level1 + level2 + level3 + level4 + stem


_LAYER_NAMES = {
    "con": ("con_4",),
    "affine": ("affine_",),
    "relu": ("relu_",),
    "max_pool": ("max_pool_2",),
    "avg_pool": ("avg_pool_2",),
    "fc": ("fc_2",),
    "add_prev": ("add_prev_",),
}

# ---------------------------------------------------------------------------------------------
# Reading


def read_dlib_resnet(dat_path: Path) -> DlibNet:
    """Parse dlib's face recognition net file; the whole file must be consumed."""
    path = Path(dat_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelPackError(f"cannot read dlib net file {path}: {exc}") from exc
    reader = DlibReader(data, source=str(path))
    net = _read_net(reader)
    reader.expect_end()
    return net


def _read_net(r: DlibReader) -> DlibNet:
    r.expect_int(_V_LOSS)
    loss = r.expect_string("loss_metric_", "loss_metric_2")
    margin, threshold = (r.read_float(), r.read_float()) if loss == "loss_metric_2" else (0.04, 0.6)

    spec = _face_net_spec()
    for i, (kind, _) in enumerate(spec):
        if kind in ("tag", "skip"):
            expected = _V_TAG_OR_SKIP
        else:
            expected = _V_BOTTOM if i == len(spec) - 1 else _V_LAYER
        start = r.offset
        version = r.read_int()
        if version != expected:
            raise r.error(
                f"layer {i} ({kind}) from the outside: version {version}, expected {expected}; "
                "not dlib's face recognition ResNet",
                start,
            )

    r.expect_string("input_rgb_image_sized")
    means = (r.read_float(), r.read_float(), r.read_float())
    input_size = (r.read_int(), r.read_int())

    layers: list[Layer] = []
    forward = list(reversed(spec))
    for i, (kind, tag) in enumerate(forward):
        if kind == "tag":
            layers.append(Tag(tag))
            continue
        if kind == "skip":
            layers.append(Skip(tag))
            continue
        layers.append(_read_layer(r, kind, tag))
        _read_layer_trailer(r, bottom=(i == 0))
    return DlibNet(input_size, means, tuple(layers), loss, margin, threshold)


def _read_layer(r: DlibReader, kind: str, tag: int) -> Layer:
    start = r.offset
    r.expect_string(*_LAYER_NAMES[kind])
    if kind == "con":
        return _read_con(r, start)
    if kind == "affine":
        return _read_affine(r, start)
    if kind in ("max_pool", "avg_pool"):
        size = (r.read_int(), r.read_int())
        stride = (r.read_int(), r.read_int())
        padding = (r.read_int(), r.read_int())
        return Pool(kind.removesuffix("_pool"), size, stride, padding)
    if kind == "fc":
        return _read_fc(r, start)
    if kind == "add_prev":
        return AddPrev(tag)
    return Relu()


def _read_con(r: DlibReader, start: int) -> Conv:
    params = r.read_tensor().ravel()
    num_filters, nr, nc = r.read_int(), r.read_int(), r.read_int()
    stride = (r.read_int(), r.read_int())
    padding = (r.read_int(), r.read_int())
    f_shape = r.read_alias_tensor()
    b_shape = r.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.read_float()
    n_f, n_b = math.prod(f_shape), math.prod(b_shape)
    if (f_shape[0], f_shape[2], f_shape[3]) != (num_filters, nr, nc) or n_b != num_filters:
        raise r.error(f"inconsistent conv shapes {f_shape} / {b_shape}", start)
    if params.size != n_f + n_b:
        raise r.error(f"conv has {params.size} parameters, shapes need {n_f + n_b}", start)
    if min(stride) < 1 or min(padding) < 0:
        raise r.error(f"bad conv stride {stride} or padding {padding}", start)
    return Conv(params[:n_f].reshape(f_shape), params[n_f:].copy(), stride, padding)


def _read_affine(r: DlibReader, start: int) -> Affine:
    params = r.read_tensor().ravel()
    g_shape = r.read_alias_tensor()
    b_shape = r.read_alias_tensor()
    mode = r.read_int()
    if mode != 0:
        raise r.error(f"affine layer in FC_MODE ({mode}) is not supported", start)
    n = math.prod(g_shape)
    if g_shape != b_shape or params.size != 2 * n or g_shape[1] != n:
        raise r.error(f"inconsistent affine shapes {g_shape} / {b_shape} / {params.size}", start)
    return Affine(params[:n].copy(), params[n:].copy())


def _read_fc(r: DlibReader, start: int) -> FullyConnected:
    num_outputs, num_inputs = r.read_int(), r.read_int()
    params = r.read_tensor().ravel()
    w_shape = r.read_alias_tensor()
    b_shape = r.read_alias_tensor()
    bias_mode = r.read_int()
    for _ in range(4):
        r.read_float()
    if bias_mode not in (0, 1):
        raise r.error(f"unknown fc bias mode {bias_mode}", start)
    n_w, n_b = num_inputs * num_outputs, (num_outputs if bias_mode == 0 else 0)
    if w_shape[:2] != (num_inputs, num_outputs) or math.prod(b_shape) != n_b:
        raise r.error(f"inconsistent fc shapes {w_shape} / {b_shape}", start)
    if params.size != n_w + n_b:
        raise r.error(f"fc has {params.size} parameters, shapes need {n_w + n_b}", start)
    weights = params[:n_w].reshape(num_inputs, num_outputs)
    return FullyConnected(weights, params[n_w:].copy() if n_b else None)


def _read_layer_trailer(r: DlibReader, *, bottom: bool) -> None:
    # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled,
    # then x_grad, cached_output and params_grad (grad_final at the bottom), normally empty;
    # the bottom layer (version 3) ends with its sample expansion factor.
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        r.read_tensor()
    if bottom:
        start = r.offset
        factor = r.read_int()
        if factor != 1:
            raise r.error(f"sample expansion factor {factor}, expected 1", start)


# ---------------------------------------------------------------------------------------------
# ONNX graph


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: object) -> str:
        out = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(f"n_{op}"), **attrs))
        return out


def _fold(conv: Conv, affine: Affine | None, scale: float) -> tuple[np.ndarray, np.ndarray]:
    w = conv.filters.astype(np.float64) * scale
    b = conv.bias.astype(np.float64)
    if affine is not None:
        g = affine.gamma.astype(np.float64)
        w = w * g[:, None, None, None]
        b = b * g + affine.beta.astype(np.float64)
    return w.astype(np.float32), b.astype(np.float32)


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def _build_graph(net: DlibNet) -> onnx.ModelProto:
    g = _GraphBuilder()
    nr, nc = net.input_size
    shape = (3, nr, nc)
    means = np.array(net.means_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    cur = g.node("Sub", [INPUT_NAME, g.const("rgb_mean", means)])
    # dlib divides by 256 after subtracting the mean; scaling the first conv's filters by 1/256
    # instead is exact in float32 (a power of two), so it costs no extra node.
    input_scale = 1.0 / 256.0
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = net.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            affine = nxt if isinstance(nxt, Affine) else None
            if layer.filters.shape[1] != shape[0]:
                raise ModelPackError(
                    f"conv layer {i} takes {layer.filters.shape[1]} channels, gets {shape[0]}"
                )
            w, b = _fold(layer, affine, input_scale)
            input_scale = 1.0
            kh, kw = w.shape[2:]
            (sy, sx), (py, px) = layer.stride, layer.padding
            cur = g.node(
                "Conv",
                [cur, g.const("conv_w", w), g.const("conv_b", b)],
                kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px],
            )
            shape = (w.shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
            i += 2 if affine is not None else 1
            continue
        if input_scale != 1.0:
            raise ModelPackError("dlib net does not start with a convolution")
        if isinstance(layer, Affine):
            k = layer.gamma.size
            cur = g.node("Mul", [cur, g.const("affine_g", layer.gamma.reshape(1, k, 1, 1))])
            cur = g.node("Add", [cur, g.const("affine_b", layer.beta.reshape(1, k, 1, 1))])
        elif isinstance(layer, Relu):
            cur = g.node("Relu", [cur])
        elif isinstance(layer, Pool):
            cur, shape = _pool(g, layer, cur, shape)
        elif isinstance(layer, Tag):
            tags[layer.tag] = (cur, shape)
        elif isinstance(layer, Skip):
            cur, shape = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            cur, shape = _add_prev(g, (cur, shape), tags[layer.tag])
        elif isinstance(layer, FullyConnected):
            cur = g.node("Flatten", [cur], axis=1)
            if layer.weights.shape[0] != math.prod(shape):
                raise ModelPackError(f"fc takes {layer.weights.shape[0]} inputs, gets {shape}")
            cur = g.node("MatMul", [cur, g.const("fc_w", layer.weights)])
            if layer.bias is not None:
                cur = g.node("Add", [cur, g.const("fc_b", layer.bias)])
            shape = (layer.weights.shape[1], 1, 1)
        i += 1
    g.node("Identity", [cur], OUTPUT_NAME)

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, nr, nc])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", shape[0]])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facestack.vision.models.dlib_resnet",
        doc_string=(
            "dlib face recognition ResNet v1: raw RGB 0..255 NCHW chips from get_face_chip "
            "(150x150, padding 0.25) -> unnormalized 128-d descriptor"
        ),
    )
    model.ir_version = IR_VERSION
    return model


def _pool(
    g: _GraphBuilder, layer: Pool, cur: str, shape: tuple[int, int, int]
) -> tuple[str, tuple[int, int, int]]:
    if layer.size == (0, 0):
        op = "GlobalMaxPool" if layer.kind == "max" else "GlobalAveragePool"
        return g.node(op, [cur]), (shape[0], 1, 1)
    (kh, kw), (sy, sx), (py, px) = layer.size, layer.stride, layer.padding
    attrs: dict[str, object] = {
        "kernel_shape": [kh, kw], "strides": [sy, sx], "pads": [py, px, py, px],
    }
    if layer.kind == "avg":
        attrs["count_include_pad"] = 0
    op = "MaxPool" if layer.kind == "max" else "AveragePool"
    out = (shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
    return g.node(op, [cur], **attrs), out


def _add_prev(
    g: _GraphBuilder,
    a: tuple[str, tuple[int, int, int]],
    b: tuple[str, tuple[int, int, int]],
) -> tuple[str, tuple[int, int, int]]:
    # dlib adds tensors of different shapes as if the smaller were zero-padded at the end of
    # each dimension (more channels, bottom rows, right columns).
    out_shape = tuple(max(x, y) for x, y in zip(a[1], b[1]))
    names = []
    for name, shape in (a, b):
        if shape != out_shape:
            grow = [o - s for o, s in zip(out_shape, shape)]
            pads = np.array([0, 0, 0, 0, 0, *grow], dtype=np.int64)
            name = g.node("Pad", [name, g.const("pads", pads)], mode="constant")
        names.append(name)
    return g.node("Add", names), out_shape  # type: ignore[return-value]


def convert_dlib_resnet(dat_path: Path, onnx_path: Path) -> None:
    """Convert dlib's face recognition ResNet net file to an ONNX model.

    The model takes ``images``: float32 [N, 3, H, W] raw RGB values 0..255 (H = W = 150, chips
    cut by dlib's ``get_face_chip`` with padding 0.25) and returns ``descriptor``: float32
    [N, 128], dlib's unnormalized descriptor.
    """
    started = time.perf_counter()
    net = read_dlib_resnet(Path(dat_path))
    model = _build_graph(net)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelPackError(f"converted model fails the ONNX checker: {exc}") from exc
    out = Path(onnx_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, tmp)
    tmp.replace(out)
    log.info(
        "converted %s (%d layers, %d parameters) to %s in %.2f s",
        dat_path, len(net.layers), net.parameter_count, out, time.perf_counter() - started,
    )
