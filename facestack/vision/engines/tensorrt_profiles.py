"""TensorRT settings, optimization profiles and batch chunking: the parts that need no GPU.

A TensorRT engine only accepts input shapes inside the optimization profile it was built with, so
this module decides those profiles from a network's input shape (``["N", 3, 150, 150]`` in the
manifest, ``(-1, 3, 150, 150)`` from the ONNX parser) and splits a forward pass whose batch is
larger than the profile's into chunks. :class:`ChunkedSession` is the :class:`Session` engines see;
the GPU work behind it is one ``execute`` callable (``facestack.vision.engines.tensorrt``), so everything here
is tested on the CPU with a fake ``execute``.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Sequence

import numpy as np

from facestack.vision.engines.runtime import Session, TensorSpec

if TYPE_CHECKING:
    from facestack.vision.settings import RuntimeConfig

log = logging.getLogger(__name__)

Precision = Literal["fp16", "fp32"]
Execute = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
#: The network whose precision is chosen by ``facen_fp16`` (its accuracy is checked against ONNX Runtime).
FACEN = "facen"


@dataclass(frozen=True)
class TensorRTSettings:
    """How engines are built and cached.

    ``max_batch``/``opt_batch``: batch range of the profile of a network whose only dynamic axis is
    the batch (larger batches are split). A network with dynamic height/width (the detector's P-Net)
    gets sides in ``min_input_side..max_input_side`` (tuned for ``opt_input_side``) and a batch of
    at most ``spatial_max_batch``: its activation memory grows with batch x height x width.
    """

    cache_dir: Path
    fp16: bool = True
    facen_fp16: bool | None = None  # None: same as fp16
    max_batch: int = 64
    opt_batch: int = 16
    min_input_side: int = 12
    opt_input_side: int = 384
    max_input_side: int = 1280
    spatial_max_batch: int = 1
    workspace_mb: int = 1024
    device: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= opt_batch <= max_batch, got opt_batch={self.opt_batch} max_batch={self.max_batch}")
        if not 1 <= self.min_input_side <= self.max_input_side:
            raise ValueError(f"need 1 <= min_input_side <= max_input_side, got {self.min_input_side}, {self.max_input_side}")
        if self.spatial_max_batch < 1 or self.workspace_mb < 1 or self.device < 0:
            raise ValueError("spatial_max_batch and workspace_mb must be >= 1 and device >= 0")

    @classmethod
    def from_config(cls, cfg: "RuntimeConfig") -> "TensorRTSettings":
        return cls(cache_dir=cfg.resolved_engine_cache_dir(), fp16=cfg.fp16, facen_fp16=cfg.facen_fp16,
                   max_batch=cfg.max_batch, opt_batch=cfg.opt_batch, max_input_side=cfg.max_input_side,
                   workspace_mb=cfg.workspace_mb, device=cfg.device)

    def precision_for(self, network: str) -> Precision:
        """FP16 when config allows it for ``network`` (facen has its own switch), else FP32."""
        fp16 = self.fp16
        if network == FACEN and self.facen_fp16 is not None:
            fp16 = self.facen_fp16
        return "fp16" if fp16 else "fp32"


@dataclass(frozen=True)
class InputProfile:
    """Shape range of one input: TensorRT's (min, opt, max) of an optimization profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    @property
    def max_rows(self) -> int:
        """Largest batch one execution takes (1 for a rank-0 input)."""
        return self.max[0] if self.max else 1

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def check(self, shape: tuple[int, ...], network: str) -> None:
        """Raise ValueError unless ``shape`` fits (the batch axis is not checked: it is chunked)."""
        if len(shape) != len(self.max):
            raise ValueError(f"{network}: input {self.name} needs {len(self.max)} dimensions, got shape {shape}")
        for axis in range(1, len(shape)):
            lo, hi = self.min[axis], self.max[axis]
            if not lo <= shape[axis] <= hi:
                hint = " (raise runtime.max_input_side)" if lo != hi and shape[axis] > hi else ""
                raise ValueError(f"{network}: input {self.name} axis {axis} is {shape[axis]}, "
                                 f"the engine takes {lo}..{hi}{hint}; shape {shape}")


def is_dynamic(dim: object) -> bool:
    """A manifest dimension (``"N"``), an ONNX parser one (``-1``) or ``None`` is dynamic."""
    return not (isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim > 0)


def input_profile(name: str, shape: Sequence[object], s: TensorRTSettings) -> InputProfile:
    """The profile of one input from its declared shape; axis 0 is the batch, other dynamic axes are sides."""
    dims = list(shape)
    spatial = any(is_dynamic(d) for d in dims[1:])
    lo: list[int] = []
    opt: list[int] = []
    hi: list[int] = []
    for axis, d in enumerate(dims):
        if not is_dynamic(d):
            rng = (int(d),) * 3  # type: ignore[call-overload]
        elif axis == 0:
            top = s.spatial_max_batch if spatial else s.max_batch
            rng = (1, min(s.opt_batch, top), top)
        else:
            rng = (s.min_input_side, max(s.min_input_side, min(s.opt_input_side, s.max_input_side)), s.max_input_side)
        lo.append(rng[0])
        opt.append(rng[1])
        hi.append(rng[2])
    return InputProfile(name, tuple(lo), tuple(opt), tuple(hi))


def row_chunks(rows: int, limit: int) -> list[slice]:
    """Slices of at most ``limit`` rows covering ``rows`` rows, in order."""
    if limit < 1:
        raise ValueError(f"chunk limit must be >= 1, got {limit}")
    return [slice(i, min(i + limit, rows)) for i in range(0, rows, limit)]


def grown_capacity(current: int, needed: int, rows: int, max_rows: int) -> int:
    """Elements a buffer grows to when ``needed`` (for ``rows`` rows) exceeds ``current``.

    It grows at once to the profile's ``max_rows`` of the same row size, so a network reallocates
    at most once per row shape instead of at every new batch size.
    """
    if needed <= current:
        return current
    per_row = needed // max(rows, 1)
    return max(needed, per_row * max(max_rows, rows))


class ChunkedSession(Session):
    """A :class:`Session` over one engine: checks shapes, splits big batches, serializes runs.

    ``execute`` runs one chunk that fits the profiles and returns the outputs in ``outputs`` order;
    it owns buffers that one run at a time may use, hence the lock.
    """

    def __init__(self, name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 profiles: Sequence[InputProfile], execute: Execute) -> None:
        if [p.name for p in profiles] != [i.name for i in inputs]:
            raise ValueError(f"{name}: profiles {[p.name for p in profiles]} do not match inputs {[i.name for i in inputs]}")
        self.name = name
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.profiles = tuple(profiles)
        self._execute = execute
        self._limit = min((p.max_rows for p in self.profiles), default=1)
        self._lock = threading.Lock()

    @property
    def max_rows(self) -> int:
        return self._limit

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"{self.name}: expected {len(self.inputs)} inputs, got {len(inputs)}")
        arrays = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
        for arr, prof in zip(arrays, self.profiles):
            prof.check(arr.shape, self.name)
        rows = {a.shape[0] for a in arrays}
        if len(rows) != 1:
            raise ValueError(f"{self.name}: inputs disagree on the batch size: {[a.shape for a in arrays]}")
        n = rows.pop()
        if n == 0:  # an engine takes no empty batch: run one zero row for the output shapes
            one = [np.zeros((1,) + a.shape[1:], np.float32) for a in arrays]
            with self._lock:
                return [o[:0].copy() for o in self._execute(one)]
        with self._lock:
            parts = [self._execute([a[s] for a in arrays]) for s in row_chunks(n, self._limit)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]
