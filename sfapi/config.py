"""Typed configuration of the sfapi service (``config/sfapi.yaml``)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator

from facestack.core.auth import AuthConfig
from facestack.core.tls import ServerTls
from facestack.core.audit_store import AuditStoreConfig
from facestack.core.configfile import StrictModel
from facestack.vision.settings import (BatchingConfig, DetectorConfig, ModelsConfig, NormalizedConfig,
                                       RuntimeConfig, default_models_dir)
from sfapi.netpolicy import Rule

DEFAULT_PORT = 18411

#: the vision settings sfapi's file holds stay importable from here
__all__ = ["BatchingConfig", "DetectorConfig", "ModelsConfig", "NormalizedConfig", "RuntimeConfig",
           "default_models_dir", "DEFAULT_PORT", "LimitsConfig", "UrlFetchConfig", "CacheConfig",
           "MilvusIndexConfig", "GalleryConfig", "SfapiConfig"]


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
