"""Typed configuration of the sfapi service (``config/sfapi.yaml``)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator, model_validator

from facestack.core.auth import AuthConfig
from facestack.core.tls import ServerTls
from facestack.core.audit_store import AuditStoreConfig
from facestack.core.configfile import StrictModel
from sfapi.netpolicy import Rule

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


class LimitsConfig(StrictModel):
    """Input limits: anything past them is a 4xx, never an out-of-memory."""

    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1024)
    url_timeout_s: float = Field(10.0, gt=0, le=600)
    allow_urls: bool = True


class UrlFetchConfig(StrictModel):
    """Outbound fetches of ``{"url": ...}`` images (see :mod:`sfapi.netpolicy`).

    Loopback, private, link-local, multicast, unspecified/reserved and cloud-metadata addresses are
    refused unless an ``allow`` entry admits them; ``deny`` entries refuse hosts that would otherwise
    be fetched (``"*"``: every host; names are then refused before any lookup). Entries are
    addresses, CIDR networks, host names or ``*.suffix`` names. Every redirect hop (at most
    ``max_redirects``) is checked the same way.
    """

    allow: list[str] = []
    deny: list[str] = []
    max_redirects: int = Field(3, ge=0, le=10)

    @field_validator("allow", "deny")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        for entry in value:
            Rule.parse(entry)
        return value


class CacheConfig(StrictModel):
    """Detection cache (id -> facen and features)."""

    backend: Literal["memory", "memcached"] = "memory"
    ttl_s: float = Field(3600.0, gt=0)
    capacity: int = Field(100_000, ge=1)
    memcached_host: str = "127.0.0.1"
    memcached_port: int = Field(11211, ge=1, le=65535)


class MilvusIndexConfig(StrictModel):
    """Vector index of the Milvus gallery collections (applied when a gallery's collection is
    created, at its first face). ``FLAT`` is exact; ``HNSW`` and ``IVF_FLAT`` are approximate and
    faster on large galleries. ``params``: build parameters (HNSW ``M``, ``efConstruction``;
    IVF_FLAT ``nlist``); ``search_params``: per-search parameters (HNSW ``ef``, IVF ``nprobe``)."""

    type: Literal["FLAT", "HNSW", "IVF_FLAT"] = "FLAT"
    params: dict[str, int | float | str] = {}
    search_params: dict[str, int | float | str] = {}


class GalleryConfig(StrictModel):
    """Gallery store: backend, where the embedded store keeps its data, and meta schemas.

    The ``milvus_*`` keys apply to ``backend: milvus``: ``milvus_uri`` is a Milvus server or proxy
    (``http://host:19530``) or a local ``*.db`` path, which runs the embedded milvus-lite;
    ``milvus_token`` is ``user:password`` or an API key; ``milvus_prefix`` starts every collection
    name of this store; ``milvus_timeout_s`` bounds each Milvus call; ``milvus_consistency`` is the
    consistency level of face reads (``Strong``: an acknowledged add, by any instance, is seen by
    the next search; ``Session``: those of this process, without waiting for the server's time
    tick); ``milvus_window`` is the most rows one Milvus query or search returns (the server's
    top-k / result window limit).
    """

    backend: Literal["embedded", "milvus"] = "embedded"
    path: Path | None = None  # embedded: SQLite file; default: user data dir / galleries.db
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    shards: int | None = Field(None, ge=1, le=64)
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: str = ""
    milvus_db: str = ""
    milvus_prefix: str = Field("sfapi_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
    milvus_timeout_s: float = Field(10.0, gt=0, le=3600)
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"
    milvus_window: int = Field(16384, ge=10_002, le=1_000_000)
    milvus_index: MilvusIndexConfig = MilvusIndexConfig()
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
    url_fetch: UrlFetchConfig = UrlFetchConfig()
    cache: CacheConfig = CacheConfig()
    gallery: GalleryConfig = GalleryConfig()
    auth: AuthConfig = AuthConfig()
    #: HTTPS (cert + key) and mutual TLS (client_ca): facestack.core.tls
    tls: ServerTls = ServerTls()
    #: audit records also stored in a database (the persons database): facestack.core.audit_store
    audit: AuditStoreConfig = AuditStoreConfig()
