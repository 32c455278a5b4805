"""The sfapi aiohttp application: built from config, resources set up and torn down in order."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

from aiohttp import web

from sfapi.config import SfapiConfig
from facestack.core.audit import Auditor
from facestack.core.audit_store import attach as attach_audit_store
from facestack.core.auth import Authenticator
from facestack.vision.engines.analyzer import FaceAnalyzer
from facestack.vision.engines.runtime import create_runtime
from facestack.vision.models.pack import check_pack, ensure_pack
from sfapi.netpolicy import Resolver
from sfapi.errors import ModelPackError
from sfapi.gallery.factory import create_backend
from sfapi.server import api_detect, api_erase, api_galleries, api_service
from sfapi.server.cache import create_cache
from sfapi.server.metrics import SfapiMetrics
from sfapi.server.middleware import make_middlewares
from sfapi.server.state import STATE, SfapiState
from sfapi.server.url_fetch import UrlFetcher

log = logging.getLogger(__name__)


def load_analyzer(cfg: SfapiConfig, metrics: SfapiMetrics) -> FaceAnalyzer:
    models_dir = cfg.models.resolved_dir()
    if cfg.models.fetch_if_missing:
        ensure_pack(models_dir)
    else:
        problems = check_pack(models_dir, verify_hashes=False)
        if problems:
            raise ModelPackError(f"model pack at {models_dir} is not usable: {'; '.join(problems)} "
                                 "(run: sfapi models fetch)")
    runtime = create_runtime(cfg.runtime.kind, cfg.runtime.intra_op_threads, config=cfg.runtime)
    return FaceAnalyzer(models_dir, cfg, runtime, observer=metrics.observe_batch)


def create_app(cfg: SfapiConfig, analyzer: FaceAnalyzer | None = None, *,
               resolver: Resolver | None = None) -> web.Application:
    """Build the app. ``analyzer`` may be shared (tests start several apps on one loaded pack);
    ``resolver`` looks up the hosts of image URLs (default: the system's; tests pass a stub)."""
    metrics = SfapiMetrics()
    auth = Authenticator.from_config(cfg.auth, cfg.host, "sfapi")
    auditor = Auditor("sfapi")
    app = web.Application(middlewares=make_middlewares(metrics, auth, auditor),
                          client_max_size=cfg.limits.max_image_bytes + 64 * 1024)
    app.router.add_post("/v2/detect", api_detect.detect)
    app.router.add_post("/v2/detect/erase", api_erase.erase_detections)
    app.router.add_get("/v2/detect/{id}", api_detect.get_detection)
    app.router.add_post("/v2/verify", api_detect.verify)
    app.router.add_get("/v2/verify", api_detect.verify)
    app.router.add_get("/v2/version", api_service.version)
    app.router.add_get("/healthz", api_service.healthz)
    app.router.add_get("/metrics", api_service.metrics)
    app.router.add_get("/docs/spec", api_service.spec)
    api_galleries.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = analyzer is None
        # loading (and maybe building) the pack takes seconds of CPU: off the event loop
        an = analyzer if analyzer is not None else await asyncio.to_thread(load_analyzer, cfg, metrics)
        executor = ThreadPoolExecutor(cfg.runtime.detect_workers, thread_name_prefix="sfapi-cpu")
        cache = create_cache(cfg.cache)
        store = create_backend(cfg.gallery)
        await store.open()
        fetcher = UrlFetcher(cfg.limits, cfg.url_fetch, resolver) if cfg.limits.allow_urls else None
        app[STATE] = SfapiState(cfg, an, cache, metrics, executor, store, fetcher)
        log.info("sfapi ready: runtime %s, models %s, galleries %s", cfg.runtime.kind, an.versions, cfg.gallery.backend)
        try:
            yield
        finally:
            await store.close()
            await cache.close()
            executor.shutdown(wait=True, cancel_futures=True)
            if own:
                an.close()

    app.cleanup_ctx.append(lifecycle)
    attach_audit_store(app, auditor, cfg.audit)
    return app
