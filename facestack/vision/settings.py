"""Settings of the vision layer: where the model pack is, the inference runtime, dynamic
batching, the detector and the normalized face crop. sfapi's config file holds them under the same
keys (``models``, ``runtime``, ``batching``, ``detector``, ``normalized``); the video worker has its own."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import platformdirs
from pydantic import Field, model_validator

from facestack.core.configfile import StrictModel


def default_models_dir() -> Path:
    """Where the model pack lives unless config says otherwise (``$SFAPI_MODELS_DIR`` wins)."""
    import os

    env = os.environ.get("SFAPI_MODELS_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("facestack")) / "models"


class ModelsConfig(StrictModel):
    """The model pack: where it is and whether to build it when missing."""

    dir: Path | None = None
    fetch_if_missing: bool = False

    def resolved_dir(self) -> Path:
        return self.dir if self.dir is not None else default_models_dir()


class RuntimeConfig(StrictModel):
    """Inference runtime, its threads, and the TensorRT engine settings.

    The TensorRT keys only matter with ``kind: tensorrt``: ``engine_cache_dir`` (default: user cache
    dir / tensorrt) keeps built engines, keyed by model hash, GPU, TensorRT version and the settings
    below; ``fp16`` builds every network in FP16, ``facen_fp16`` overrides it for the face descriptor
    (null: same as ``fp16``); ``max_batch``/``opt_batch`` bound and tune the batch of the engines
    (larger batches are split); ``max_input_side`` is the largest height/width the detector's first
    stage takes (its pyramid's largest level is ``detector.max_image_side * 12 / min_face_size``);
    ``workspace_mb`` is the builder's scratch memory; ``device`` the CUDA device index.
    """

    kind: Literal["onnxruntime", "onnxruntime-cuda", "tensorrt"] = "onnxruntime"
    intra_op_threads: int = Field(1, ge=0, le=64)
    detect_workers: int = Field(2, ge=1, le=64)
    engine_cache_dir: Path | None = None
    fp16: bool = True
    facen_fp16: bool | None = None
    max_batch: int = Field(64, ge=1, le=4096)
    opt_batch: int = Field(16, ge=1, le=4096)
    max_input_side: int = Field(1280, ge=12, le=8192)
    workspace_mb: int = Field(1024, ge=16, le=262144)
    device: int = Field(0, ge=0, le=63)

    @model_validator(mode="after")
    def _opt_within_max(self) -> "RuntimeConfig":
        if self.opt_batch > self.max_batch:
            raise ValueError(f"opt_batch ({self.opt_batch}) must not exceed max_batch ({self.max_batch})")
        return self

    def resolved_engine_cache_dir(self) -> Path:
        if self.engine_cache_dir is not None:
            return self.engine_cache_dir.expanduser()
        return Path(platformdirs.user_cache_dir("facestack")) / "tensorrt"


class BatchingConfig(StrictModel):
    """Dynamic batching: concurrent requests share forward passes."""

    max_batch: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(2.0, ge=0, le=1000)
    max_pending_requests: int = Field(64, ge=1, le=100000)


class DetectorConfig(StrictModel):
    """MTCNN detector settings."""

    min_face_size: int = Field(40, ge=12, le=4096)
    max_image_side: int = Field(1280, ge=64, le=16384)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.95)


class NormalizedConfig(StrictModel):
    """Geometry of a normalized face crop (``detector=normalized``; the video worker's face0)."""

    size: int = Field(200, ge=64, le=1024)
    padding: float = Field(0.4, ge=0.25, le=2.0)



class AnalyzerSettings(Protocol):
    """What :class:`~facestack.vision.engines.analyzer.FaceAnalyzer` reads (sfapi's config has it)."""

    @property
    def batching(self) -> BatchingConfig: ...

    @property
    def detector(self) -> DetectorConfig: ...

    @property
    def normalized(self) -> NormalizedConfig: ...
