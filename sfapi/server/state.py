"""The objects one sfapi app runs on, built at start-up and torn down in reverse."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from aiohttp import web

from facestack.core.admission import Admission
from sfapi.config import SfapiConfig
from facestack.vision.engines.analyzer import FaceAnalyzer
from sfapi.errors import OverCapacity
from sfapi.gallery.backend import GalleryBackend
from sfapi.server.cache import DetectionCache
from sfapi.server.metrics import SfapiMetrics
from sfapi.server.url_fetch import UrlFetcher

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class SfapiState:
    cfg: SfapiConfig
    analyzer: FaceAnalyzer
    cache: DetectionCache
    metrics: SfapiMetrics
    executor: ThreadPoolExecutor
    gallery: GalleryBackend
    fetcher: UrlFetcher | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work in the bounded executor, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Admit one request or refuse it with OVER_CAPACITY when too many are in flight."""
        try:
            with self.admitted.admit():
                yield
        finally:
            self.metrics.queue_depth.set(self.analyzer.pending_rows)

    @property
    def inflight(self) -> int:
        return self.admitted.inflight

    def __post_init__(self) -> None:
        def refuse(inflight: int, limit: int) -> Exception:
            self.metrics.rejected.inc()
            return OverCapacity(f"{inflight} requests in flight (limit {limit}); retry later")

        self.admitted = Admission(self.cfg.batching.max_pending_requests, refuse, self.metrics.inflight.set)


STATE: web.AppKey[SfapiState] = web.AppKey("sfapi_state", SfapiState)
