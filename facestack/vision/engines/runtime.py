"""Inference runtime interface and the ONNX Runtime implementation.

A runtime loads one ONNX file into a :class:`Session`. Engines only ever see ``Session.run``; the
runtime behind it (ONNX Runtime on the CPU, its CUDA provider, later TensorRT) is chosen once by
:func:`create_runtime` from config.
"""
from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from facestack.vision.errors import RuntimeUnavailable

if TYPE_CHECKING:
    from facestack.vision.settings import RuntimeConfig

log = logging.getLogger(__name__)

RuntimeKind = Literal["onnxruntime", "onnxruntime-cuda", "tensorrt"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]  # None for a dynamic dimension


class Session(abc.ABC):
    """One loaded network. ``run`` is thread-safe and takes/returns float32 arrays."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @abc.abstractmethod
    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run a forward pass; positional inputs follow ``self.inputs``, outputs ``self.outputs``."""


class Runtime(abc.ABC):
    kind: str

    @abc.abstractmethod
    def load(self, path: Path, name: str) -> Session:
        """Load the ONNX file at ``path``."""


class OrtSession(Session):
    def __init__(self, sess: "object", name: str) -> None:
        self._sess = sess
        self.name = name
        self.inputs = tuple(TensorSpec(i.name, _dims(i.shape)) for i in sess.get_inputs())
        self.outputs = tuple(TensorSpec(o.name, _dims(o.shape)) for o in sess.get_outputs())
        self._in_names = [i.name for i in self.inputs]
        self._out_names = [o.name for o in self.outputs]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self._in_names):
            raise ValueError(f"{self.name}: expected {len(self._in_names)} inputs, got {len(inputs)}")
        feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self._in_names, inputs)}
        return self._sess.run(self._out_names, feed)  # type: ignore[attr-defined]


class OnnxRuntime(Runtime):
    """ONNX Runtime on the CPU, or with its CUDA provider when ``kind`` is onnxruntime-cuda."""

    def __init__(self, kind: RuntimeKind = "onnxruntime", intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.kind = kind
        self._threads = intra_op_threads
        available = ort.get_available_providers()
        if kind == "onnxruntime-cuda":
            if "CUDAExecutionProvider" not in available:
                raise RuntimeUnavailable(
                    "runtime onnxruntime-cuda needs onnxruntime-gpu with CUDA; providers here: "
                    + ", ".join(available)
                )
            self._providers: Sequence[str] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            self._providers = ["CPUExecutionProvider"]

    def load(self, path: Path, name: str) -> Session:
        opts = self._ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        sess = self._ort.InferenceSession(str(path), sess_options=opts, providers=list(self._providers))
        log.debug("loaded %s from %s with %s", name, path, self._providers)
        return OrtSession(sess, name)


def create_runtime(kind: str, intra_op_threads: int = 0, config: "RuntimeConfig | None" = None) -> Runtime:
    """The one factory: pick the runtime named in config, or fail clearly.

    ``config`` carries the TensorRT settings (engine cache, precision, profiles); without it the
    defaults of :class:`facestack.vision.settings.RuntimeConfig` apply.
    """
    if kind in ("onnxruntime", "onnxruntime-cuda"):
        return OnnxRuntime(kind, intra_op_threads)  # type: ignore[arg-type]
    if kind == "tensorrt":
        from facestack.vision.settings import RuntimeConfig
        from facestack.vision.engines.tensorrt import TensorRTRuntime
        from facestack.vision.engines.tensorrt_profiles import TensorRTSettings

        return TensorRTRuntime(TensorRTSettings.from_config(config if config is not None else RuntimeConfig()))
    raise RuntimeUnavailable(f"unknown inference runtime {kind!r}; choose onnxruntime, onnxruntime-cuda or tensorrt")


def check_runtime(kind: str, config: "RuntimeConfig | None" = None) -> None:
    """Fail as :func:`create_runtime` would at start (no GPU for ``tensorrt``, no CUDA provider...);
    what ``--check-config`` runs."""
    runtime = create_runtime(kind, 1, config)
    close = getattr(runtime, "close", None)
    if callable(close):
        close()


def _dims(shape: Sequence[object]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in shape)
