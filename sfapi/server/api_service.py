"""Service endpoints: /healthz, /metrics, /v2/version, /docs/spec."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import sfapi
from sfapi.server.openapi import build_spec
from sfapi.server.state import STATE


async def healthz(request: web.Request) -> web.Response:
    st = request.app[STATE]
    return web.json_response({"status": "ok", "inflight": st.inflight, "queue_depth": st.analyzer.pending_rows,
                              "cached_detections": len(st.cache)})


async def metrics(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.metrics.queue_depth.set(st.analyzer.pending_rows)
    body = generate_latest(st.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def version(request: web.Request) -> web.Response:
    st = request.app[STATE]
    return web.json_response({"service": "sfapi", "version": sfapi.__version__, "models": st.analyzer.versions,
                              "runtime": st.cfg.runtime.kind})


async def spec(request: web.Request) -> web.Response:
    return web.json_response(build_spec(sfapi.__version__))
