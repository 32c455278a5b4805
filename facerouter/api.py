"""Tornado handlers of the router: ``POST /v0/frame``, ``GET /healthz``, ``GET /metrics``,
``GET /openapi.json`` (:mod:`facerouter.openapi`).

Every error answer is JSON ``{"code", "reason"[, "param", "value"]}``, as sfapi's are. A 200
with ``timings`` (see :mod:`facerouter.frames`) gets ``total_s`` (from the handler's start to the
answer, multipart parsing included) and ``started_at`` (unix seconds) added.
"""
from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from facerouter.errors import FrameError, Overloaded
from facerouter.openapi import build_document
from facerouter.plugin import FrHTTPRequest
from facestack.core.tornado_json import JsonHandler
from facerouter.request import parse_frame

if TYPE_CHECKING:
    from facerouter.app import Router

__all__ = ["FrameHandler", "HealthHandler", "MetricsHandler", "OpenApiHandler"]

log = logging.getLogger(__name__)

try:
    _VERSION = importlib.metadata.version("facestack")
except importlib.metadata.PackageNotFoundError:
    _VERSION = "0"


class _JsonHandler(JsonHandler):
    """Answers JSON, including Tornado's own errors (bad multipart, 405 ...)."""

    def initialize(self, router: Router) -> None:
        self.router = router


class FrameHandler(_JsonHandler):
    """``POST /v0/frame``: one face event from the video worker."""

    async def post(self) -> None:
        router = self.router
        cam_id = "-"
        status = 500
        started = time.perf_counter()
        started_at = time.time()
        try:
            if router.stopping:
                raise Overloaded("facerouter is stopping; retry later")
            router.admission.enter()
        except Overloaded as exc:
            self.set_header("Retry-After", "1")
            self._answer_error(exc, cam_id)
            return
        try:
            params = parse_frame(self.request)
            cam_id = params.cam_id
            router.pipeline.check(params)
            body = await router.pipeline.handle(FrHTTPRequest.of(self.request, params))
            timings = body.get("timings")
            if isinstance(timings, dict):
                timings["total_s"] = round(time.perf_counter() - started, 6)
                timings["started_at"] = round(started_at, 6)
            status = 200
            self.send_json(200, body)
            router.metrics.frames.labels(cam_id, "200").inc()
        except FrameError as exc:
            if exc.status == 503:
                self.set_header("Retry-After", "1")
            self._answer_error(exc, cam_id)
            status = exc.status
        finally:
            router.admission.leave()
            router.metrics.frame_latency.observe(time.perf_counter() - started)
            log.debug("frame from camera %s: HTTP %d in %.1f ms", cam_id, status,
                      (time.perf_counter() - started) * 1000)

    def _answer_error(self, exc: FrameError, cam_id: str) -> None:
        if exc.status >= 500:
            log.warning("frame from camera %s: HTTP %d %s: %s", cam_id, exc.status, exc.code,
                        exc.reason)
        else:
            log.info("frame from camera %s refused: %s", cam_id, exc.reason)
        self.router.metrics.frames.labels(cam_id, str(exc.status)).inc()
        self.send_json(exc.status, exc.to_json())


class HealthHandler(_JsonHandler):
    """``GET /healthz``: 200 while serving, 503 once stopping."""

    def get(self) -> None:
        router = self.router
        self.send_json(503 if router.stopping else 200, {
            "status": "stopping" if router.stopping else "ok",
            "inflight": router.inflight,
            "max_inflight": router.max_inflight,
            "node_id": router.idgen.node_id,
            "plugins": router.registry.names(),
        })


class MetricsHandler(_JsonHandler):
    """``GET /metrics``: Prometheus text format."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.router.metrics.render())


class OpenApiHandler(_JsonHandler):
    """``GET /openapi.json``: the router's OpenAPI document, the plugins' routes included."""

    def get(self) -> None:
        router = self.router
        self.send_json(200, build_document(router.app, dict(router.registry.objects), _VERSION))
