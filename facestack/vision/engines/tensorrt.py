"""TensorRT runtime: ONNX files of the model pack built into engines, run through pycuda.

:class:`TensorRTRuntime` parses each ONNX file with TensorRT's ONNX parser, gives every dynamic
input an optimization profile (:mod:`facestack.vision.engines.tensorrt_profiles`), builds the engine (FP16
where config allows) or takes it from the on-disk cache (:mod:`facestack.vision.engines.tensorrt_cache`), and
returns a :class:`ChunkedSession` whose chunks run on the GPU with pinned host buffers, device
buffers grown to the profile's max batch, and one CUDA stream and execution context per engine.
Written against the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``).

``tensorrt`` and ``pycuda`` are imported only when the runtime is constructed: importing this
module works everywhere, and asking for the runtime where they or a GPU are missing raises
:class:`RuntimeUnavailable` naming what was found.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np

from facestack.vision.engines.runtime import Runtime, Session, TensorSpec
from facestack.vision.engines.tensorrt_cache import EngineCache, EngineKey, builder_flags
from facestack.vision.engines.tensorrt_profiles import (ChunkedSession, InputProfile, Precision, TensorRTSettings,
                                             grown_capacity, input_profile)
from facestack.vision.errors import RuntimeUnavailable
from facestack.core.registry_fetch import sha256_file

log = logging.getLogger(__name__)

MIN_TENSORRT_MAJOR = 10


@dataclass(frozen=True)
class GpuStack:
    """What this machine has for the TensorRT runtime; ``problems`` is empty when it is usable."""

    trt: Any = None
    cuda: Any = None
    tensorrt_version: str | None = None
    device_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """``found: ...`` followed by the problems, for error messages."""
        found = []
        if self.tensorrt_version:
            found.append(f"tensorrt {self.tensorrt_version}")
        if self.cuda is not None:
            found.append("pycuda")
        if self.device_name and self.compute_capability:
            found.append(f"GPU {self.device_name} (sm_{self.compute_capability[0]}{self.compute_capability[1]})")
        return "found: " + ("; ".join(found + list(self.problems)) or "nothing")


def probe_gpu_stack(device: int = 0) -> GpuStack:
    """Import tensorrt and pycuda and look for CUDA device ``device``; never raises."""
    problems: list[str] = []
    trt = cuda = version = name = cc = None
    try:
        import tensorrt as trt  # type: ignore[import-not-found, no-redef]

        version = str(trt.__version__)
        if int(version.split(".")[0]) < MIN_TENSORRT_MAJOR:
            problems.append(f"tensorrt {version} is older than {MIN_TENSORRT_MAJOR}")
    except Exception as exc:  # ImportError, or a missing libnvinfer (OSError)
        trt = None
        problems.append(f"tensorrt: not importable ({exc})")
    try:
        import pycuda.driver as cuda  # type: ignore[import-not-found, no-redef]
    except Exception as exc:
        cuda = None
        problems.append(f"pycuda: not importable ({exc})")
    if cuda is None:
        problems.append("NVIDIA GPU: not checked (needs pycuda)")
    else:
        try:
            cuda.init()
            count = cuda.Device.count()
            if count == 0:
                problems.append("NVIDIA GPU: none visible to CUDA")
            elif device >= count:
                problems.append(f"NVIDIA GPU: device {device} asked for, {count} visible")
            else:
                dev = cuda.Device(device)
                name = str(dev.name())
                major, minor = dev.compute_capability()
                cc = (int(major), int(minor))
        except Exception as exc:  # pycuda's driver errors: no driver, no device
            problems.append(f"NVIDIA GPU: CUDA driver unusable ({exc})")
    return GpuStack(trt, cuda, version, name, cc, tuple(problems))


@dataclass(frozen=True)
class LoadReport:
    """How one network was loaded (the tests check cache hits with it, the benchmark prints it)."""

    name: str
    precision: Precision
    key: str
    engine_path: Path
    cache_hit: bool
    seconds: float
    profiles: tuple[InputProfile, ...] = field(default=())


class TensorRTRuntime(Runtime):
    """TensorRT engines on one NVIDIA GPU. ``load`` builds or reuses an engine per ONNX file."""

    kind = "tensorrt"

    def __init__(self, settings: TensorRTSettings, stack: GpuStack | None = None) -> None:
        stack = stack if stack is not None else probe_gpu_stack(settings.device)
        if not stack.ok:
            raise RuntimeUnavailable("runtime tensorrt needs the tensorrt and pycuda packages and an NVIDIA GPU; "
                                     f"{stack.describe()} (use runtime.kind: onnxruntime on this machine)")
        self.settings = settings
        self._trt = stack.trt
        self._cuda = stack.cuda
        self.gpu_name = str(stack.device_name)
        self.compute_capability = stack.compute_capability or (0, 0)
        self.tensorrt_version = str(stack.tensorrt_version)
        if settings.fp16 or settings.facen_fp16:
            if getattr(self._trt.BuilderFlag, "FP16", None) is None:
                raise RuntimeUnavailable(f"tensorrt {self.tensorrt_version} has no BuilderFlag.FP16; "
                                         "set runtime.fp16: false and runtime.facen_fp16: false")
        self._ctx = self._cuda.Device(settings.device).retain_primary_context()
        self._logger = _make_logger(self._trt)
        with self.cuda_context():
            self._trt_runtime = self._trt.Runtime(self._logger)
        self._cache = EngineCache(settings.cache_dir)
        self._executors: list[_Executor] = []
        self.loads: list[LoadReport] = []
        log.info("TensorRT %s on %s (sm_%d%d), engine cache %s", self.tensorrt_version, self.gpu_name,
                 *self.compute_capability, self._cache.directory)

    @contextlib.contextmanager
    def cuda_context(self) -> Iterator[None]:
        """Make this runtime's CUDA context current on the calling thread."""
        self._ctx.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def load(self, path: Path, name: str) -> Session:
        started = time.perf_counter()
        precision = self.settings.precision_for(name)
        onnx_sha = sha256_file(path)
        with self.cuda_context():
            builder, network, _parser = self._parse(path, name)
            in_specs = [network.get_input(i) for i in range(network.num_inputs)]
            out_names = [network.get_output(i).name for i in range(network.num_outputs)]
            profiles = tuple(input_profile(t.name, tuple(t.shape), self.settings) for t in in_specs)
            flags = builder_flags(precision, self.settings.workspace_mb)
            key = EngineKey(onnx_sha, self.gpu_name, self.compute_capability, self.tensorrt_version,
                            precision, profiles, flags)
            digest = key.digest()
            meta = {"network": name, "onnx": str(path), **key.ingredients()}
            engine, hit = self._cache.get_or_build(
                digest, lambda: self._build(builder, network, profiles, precision, name, path),
                self._deserialize, meta, what=name)
            executor = _Executor(name, engine, self._trt, self._cuda, self.cuda_context,
                                 [p.name for p in profiles], out_names, {p.name: p.max_rows for p in profiles})
            inputs = tuple(TensorSpec(t.name, _dims(t.shape)) for t in in_specs)
            outputs = tuple(TensorSpec(n, _dims(engine.get_tensor_shape(n))) for n in out_names)
        self._executors.append(executor)
        report = LoadReport(name, precision, digest, self._cache.path_for(digest), hit,
                            time.perf_counter() - started, profiles)
        self.loads.append(report)
        log.info("%s: %s engine %s in %.1f s (%s)", name, precision, "from cache" if hit else "built",
                 report.seconds, report.engine_path.name)
        return ChunkedSession(name, inputs, outputs, profiles, executor.execute)

    def close(self) -> None:
        """Free every engine's buffers and release the CUDA context (sessions are unusable after)."""
        with self.cuda_context():
            for ex in self._executors:
                ex.close()
        self._executors.clear()
        self._ctx.detach()

    # --- building ---------------------------------------------------------------------------
    def _parse(self, path: Path, name: str) -> tuple[Any, Any, Any]:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeUnavailable(f"{name}: TensorRT cannot parse {path}: {errors or 'unknown error'}")
        return builder, network, parser

    def _build(self, builder: Any, network: Any, profiles: Sequence[InputProfile], precision: Precision,
               name: str, path: Path) -> bytes:
        trt = self._trt
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.settings.workspace_mb << 20)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if any(p.dynamic for p in profiles):
            profile = builder.create_optimization_profile()
            for p in profiles:
                profile.set_shape(p.name, p.min, p.opt, p.max)
            config.add_optimization_profile(profile)
        log.info("%s: building a %s TensorRT engine from %s (profiles %s)", name, precision, path.name,
                 [(p.name, p.min, p.opt, p.max) for p in profiles])
        started = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeUnavailable(f"{name}: TensorRT could not build an engine from {path} "
                                     "(its errors are logged above)")
        log.info("%s: engine built in %.1f s", name, time.perf_counter() - started)
        return bytes(memoryview(serialized))

    def _deserialize(self, payload: bytes) -> Any | None:
        try:
            return self._trt_runtime.deserialize_cuda_engine(payload)
        except Exception as exc:  # a TensorRT that refuses the plan may raise instead of returning None
            log.warning("TensorRT refused a cached engine: %s", exc)
            return None


@dataclass
class _Buffer:
    host: Any  # pinned numpy array (cuda.pagelocked_empty), flat
    device: Any  # cuda.DeviceAllocation
    capacity: int  # elements


class _Executor:
    """One engine's execution context, stream and buffers; callers serialize (ChunkedSession's lock)."""

    def __init__(self, name: str, engine: Any, trt: Any, cuda: Any,
                 context: Callable[[], ContextManager[None]], inputs: list[str], outputs: list[str],
                 max_rows: dict[str, int]) -> None:
        self.name = name
        self._engine = engine
        self._cuda = cuda
        self._enter = context
        self._inputs = inputs
        self._outputs = outputs
        self._max_rows = min(max_rows.values(), default=1)
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in inputs + outputs}
        self._ctx = engine.create_execution_context()
        if self._ctx is None:
            raise RuntimeUnavailable(f"{name}: TensorRT could not create an execution context (GPU memory?)")
        self._stream = cuda.Stream()
        self._buffers: dict[str, _Buffer] = {}

    def _buffer(self, tensor: str, needed: int, rows: int) -> _Buffer:
        buf = self._buffers.get(tensor)
        current = buf.capacity if buf is not None else 0
        if needed <= current and buf is not None:
            return buf
        size = grown_capacity(current, needed, rows, self._max_rows)
        dtype = self._dtypes[tensor]
        if buf is not None:
            buf.device.free()
        buf = _Buffer(self._cuda.pagelocked_empty(size, dtype), self._cuda.mem_alloc(max(size, 1) * dtype.itemsize), size)
        self._buffers[tensor] = buf
        log.debug("%s: %s buffer grown to %d elements", self.name, tensor, size)
        return buf

    def execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        cuda, ctx, stream = self._cuda, self._ctx, self._stream
        with self._enter():
            rows = int(inputs[0].shape[0]) if inputs[0].ndim else 1
            for tensor, x in zip(self._inputs, inputs):
                buf = self._buffer(tensor, x.size, rows)
                host = buf.host[:x.size].reshape(x.shape)
                np.copyto(host, x, casting="same_kind")
                cuda.memcpy_htod_async(buf.device, host, stream)
                if not ctx.set_input_shape(tensor, tuple(x.shape)):
                    raise ValueError(f"{self.name}: TensorRT rejects shape {x.shape} for {tensor}")
                ctx.set_tensor_address(tensor, int(buf.device))
            pending = []
            for tensor in self._outputs:
                shape = tuple(ctx.get_tensor_shape(tensor))
                if any(d < 0 for d in shape):
                    raise RuntimeError(f"{self.name}: output {tensor} has unresolved shape {shape}")
                size = math.prod(shape)
                buf = self._buffer(tensor, size, rows)
                ctx.set_tensor_address(tensor, int(buf.device))
                pending.append((buf, shape, size))
            if not ctx.execute_async_v3(stream.handle):
                raise RuntimeError(f"{self.name}: TensorRT execution failed (see the TensorRT log)")
            for buf, shape, size in pending:
                cuda.memcpy_dtoh_async(buf.host[:size], buf.device, stream)
            stream.synchronize()
            return [np.array(buf.host[:size].reshape(shape), dtype=np.float32) for buf, shape, size in pending]

    def close(self) -> None:
        for buf in self._buffers.values():
            buf.device.free()
        self._buffers.clear()
        self._ctx = None


def _make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that forwards TensorRT's messages to :mod:`logging` (verbose ones dropped)."""
    sev = trt.ILogger.Severity
    levels = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING,
              sev.INFO: logging.DEBUG}
    trt_log = logging.getLogger(__name__ + ".trt")

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity)
            if level is not None:
                trt_log.log(level, "%s", msg)

    return _Logger()


def _dims(shape: Sequence[int]) -> tuple[int | None, ...]:
    return tuple(int(d) if int(d) >= 0 else None for d in shape)
