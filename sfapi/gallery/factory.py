"""The one place that picks the gallery backend from config."""
from __future__ import annotations

from sfapi.config import GalleryConfig
from sfapi.errors import StorageError
from sfapi.gallery.backend import GalleryBackend


def create_backend(cfg: GalleryConfig) -> GalleryBackend:
    if cfg.backend == "embedded":
        from sfapi.gallery.embedded import EmbeddedStore

        path = cfg.resolved_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedStore(path, shards=cfg.shards, synchronous=cfg.synchronous)
    if cfg.backend == "milvus":
        from sfapi.gallery.milvus import MilvusStore

        idx = cfg.milvus_index
        return MilvusStore(cfg.milvus_uri, token=cfg.milvus_token, db_name=cfg.milvus_db,
                           prefix=cfg.milvus_prefix, timeout_s=cfg.milvus_timeout_s,
                           consistency=cfg.milvus_consistency, window=cfg.milvus_window,
                           index_type=idx.type, index_params=dict(idx.params),
                           search_params=dict(idx.search_params))
    raise StorageError(f"unknown gallery backend {cfg.backend!r}; use embedded or milvus")
