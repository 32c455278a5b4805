"""Typed configuration of the sfapi service (``config/sfapi.yaml``)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field

from sfapi.auth import AuthConfig
from sfapi.configfile import StrictModel

DEFAULT_PORT = 18411


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
    """Inference runtime and its threads."""

    kind: Literal["onnxruntime", "onnxruntime-cuda", "tensorrt"] = "onnxruntime"
    intra_op_threads: int = Field(1, ge=0, le=64)
    detect_workers: int = Field(2, ge=1, le=64)


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


class LimitsConfig(StrictModel):
    """Input limits: anything past them is a 4xx, never an out-of-memory."""

    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1024)
    url_timeout_s: float = Field(10.0, gt=0, le=600)
    allow_urls: bool = True


class CacheConfig(StrictModel):
    """Detection cache (id -> facen and features)."""

    backend: Literal["memory", "memcached"] = "memory"
    ttl_s: float = Field(3600.0, gt=0)
    capacity: int = Field(100_000, ge=1)
    memcached_host: str = "127.0.0.1"
    memcached_port: int = Field(11211, ge=1, le=65535)


class GalleryConfig(StrictModel):
    """Gallery store: backend, where the embedded store keeps its data, and meta schemas."""

    backend: Literal["embedded", "milvus"] = "embedded"
    path: Path | None = None  # embedded: SQLite file; default: user data dir / galleries.db
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    shards: int | None = Field(None, ge=1, le=64)
    default_schema: dict[str, Literal["int", "string", "strings"]] = {}
    schemas: dict[str, dict[str, Literal["int", "string", "strings"]]] = {}

    def resolved_path(self) -> Path:
        if self.path is not None:
            return self.path
        return Path(platformdirs.user_data_dir("facestack")) / "galleries.db"

    def schema_for(self, gallery: str) -> dict[str, Literal["int", "string", "strings"]]:
        return dict(self.schemas.get(gallery, self.default_schema))


class SfapiConfig(StrictModel):
    """The whole sfapi config file."""

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    models: ModelsConfig = ModelsConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    batching: BatchingConfig = BatchingConfig()
    detector: DetectorConfig = DetectorConfig()
    normalized: NormalizedConfig = NormalizedConfig()
    limits: LimitsConfig = LimitsConfig()
    cache: CacheConfig = CacheConfig()
    gallery: GalleryConfig = GalleryConfig()
    auth: AuthConfig = AuthConfig()
