"""Detection cache: detection id -> facen and features, with a TTL.

In-process TTL/LRU by default; memcached when several sfapi instances share one cache. Both sit
behind :class:`DetectionCache` and are chosen by :func:`create_cache` from config.
"""
from __future__ import annotations

import abc
import base64
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from sfapi.config import CacheConfig
from sfapi.errors import CacheError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedDetection:
    """What a detection id refers to: the face, its facen (L2-normalized) and its features."""

    id: str
    face: dict[str, Any]  # the face as answered by /v2/detect (bbox, score, features...), without facen
    facen: np.ndarray
    model: str  # facen model version

    def to_bytes(self) -> bytes:
        return json.dumps({"id": self.id, "face": self.face, "model": self.model,
                           "facen": base64.b64encode(self.facen.astype("<f4").tobytes()).decode()}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "CachedDetection":
        obj = json.loads(data)
        vec = np.frombuffer(base64.b64decode(obj["facen"]), dtype="<f4").astype(np.float32)
        return cls(obj["id"], obj["face"], vec, obj["model"])


class DetectionCache(abc.ABC):
    @abc.abstractmethod
    async def put(self, det: CachedDetection) -> None: ...

    @abc.abstractmethod
    async def get(self, det_id: str) -> CachedDetection | None: ...

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return 0


class MemoryCache(DetectionCache):
    """TTL + LRU in the process; touched only from the event loop, so no lock is needed."""

    def __init__(self, ttl_s: float, capacity: int) -> None:
        self._ttl = ttl_s
        self._capacity = capacity
        self._items: OrderedDict[str, tuple[float, CachedDetection]] = OrderedDict()

    async def put(self, det: CachedDetection) -> None:
        self._items[det.id] = (time.monotonic() + self._ttl, det)
        self._items.move_to_end(det.id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    async def get(self, det_id: str) -> CachedDetection | None:
        item = self._items.get(det_id)
        if item is None:
            return None
        expires, det = item
        if expires < time.monotonic():
            del self._items[det_id]
            return None
        self._items.move_to_end(det_id)
        return det

    def snapshot(self) -> list[CachedDetection]:
        """The detections held now (for erasure)."""
        now = time.monotonic()
        return [det for expires, det in self._items.values() if expires >= now]

    def drop(self, ids: list[str]) -> int:
        """Forget these detections; returns how many were held."""
        return sum(self._items.pop(i, None) is not None for i in ids)

    def __len__(self) -> int:
        return len(self._items)


class MemcachedCache(DetectionCache):
    """memcached through aiomcache; errors become CACHE_ERROR."""

    def __init__(self, host: str, port: int, ttl_s: float) -> None:
        try:
            import aiomcache
        except ImportError as exc:
            raise CacheError("cache backend memcached needs the aiomcache package "
                             "(pip install 'facestack[memcached]')") from exc
        self._client = aiomcache.Client(host, port)
        self._ttl = max(1, int(ttl_s))

    async def put(self, det: CachedDetection) -> None:
        try:
            await self._client.set(_key(det.id), det.to_bytes(), exptime=self._ttl)
        except Exception as exc:  # network errors of every kind
            raise CacheError(f"memcached unavailable: {exc}") from exc

    async def get(self, det_id: str) -> CachedDetection | None:
        try:
            data = await self._client.get(_key(det_id))
        except Exception as exc:
            raise CacheError(f"memcached unavailable: {exc}") from exc
        return None if data is None else CachedDetection.from_bytes(data)

    async def close(self) -> None:
        await self._client.close()


def _key(det_id: str) -> bytes:
    return ("sfapi:det:" + det_id).encode()


def create_cache(cfg: CacheConfig) -> DetectionCache:
    if cfg.backend == "memcached":
        return MemcachedCache(cfg.memcached_host, cfg.memcached_port, cfg.ttl_s)
    return MemoryCache(cfg.ttl_s, cfg.capacity)
