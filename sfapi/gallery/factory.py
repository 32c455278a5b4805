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
    raise StorageError(f"gallery backend {cfg.backend!r} is not built yet; use embedded")
