"""Prometheus metrics of the router, in a registry of its own (built once per router).

* ``facerouter_plugin_calls_total{plugin,hook}``, ``facerouter_plugin_errors_total{plugin,hook,kind}``
  (kind: ``error`` | ``timeout`` | ``bad_result``), ``facerouter_plugin_latency_seconds{plugin,hook}``;
* ``facerouter_frames_total{cam_id,status}`` (status: the HTTP status answered);
* ``facerouter_duplicate_frames_total``: frames whose Idempotency-Key was already handled;
* ``facerouter_frame_latency_seconds``, ``facerouter_frames_inflight``;
* ``facerouter_sfapi_latency_seconds{call}`` -- every sfapi call, the router's and the plugins',
  timed by a trace on the client's HTTP session (call: ``detect``, ``search``, ``face_add`` ...).
"""
from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Sequence

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["RouterMetrics", "sfapi_call_name"]

_FACE_PATH = re.compile(r"^/v2/galleries/[^/]+/faces/(search|[^/]+)$")


def sfapi_call_name(method: str, path: str) -> str:
    """A low-cardinality name of an sfapi call from its method and path (no ids in it)."""
    path = path.split("?", 1)[0]
    marker = path.find("/v2/")
    path = path[marker:] if marker >= 0 else path
    if path == "/v2/detect":
        return "detect"
    if path.startswith("/v2/detect/"):
        return "get_detection"
    match = _FACE_PATH.match(path)
    if match:
        if match.group(1) == "search":
            return "search"
        return {"POST": "face_add", "GET": "face_get", "PATCH": "face_update",
                "DELETE": "face_delete"}.get(method, "face_other")
    if path == "/v2/galleries":
        return "list_galleries"
    if path.startswith("/v2/galleries/"):
        return {"POST": "gallery_create", "DELETE": "gallery_drop"}.get(method, "gallery_other")
    return "other"


class RouterMetrics:
    """The router's metrics. ``buckets`` (seconds) are used by every latency histogram."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.duplicates = Counter("facerouter_duplicate_frames",
                                  "Frames answered from the idempotency-key store", registry=reg)
        self.plugin_calls = Counter("facerouter_plugin_calls", "Plugin hook calls",
                                    ["plugin", "hook"], registry=reg)
        self.plugin_errors = Counter("facerouter_plugin_errors",
                                     "Plugin hook calls that raised, timed out or returned a bad "
                                     "result", ["plugin", "hook", "kind"], registry=reg)
        self.plugin_latency = Histogram("facerouter_plugin_latency_seconds",
                                        "Plugin hook call duration", ["plugin", "hook"],
                                        buckets=buckets, registry=reg)
        self.frames = Counter("facerouter_frames", "Frames answered, by camera and HTTP status",
                              ["cam_id", "status"], registry=reg)
        self.frame_latency = Histogram("facerouter_frame_latency_seconds",
                                       "Time from a parsed frame to its answer", buckets=buckets,
                                       registry=reg)
        self.inflight = Gauge("facerouter_frames_inflight", "Frames being handled", registry=reg)
        self.sfapi_latency = Histogram("facerouter_sfapi_latency_seconds",
                                       "sfapi call duration (router and plugins)", ["call"],
                                       buckets=buckets, registry=reg)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace that times each request of a session into ``sfapi_latency``."""
        trace = aiohttp.TraceConfig()

        async def start(session: aiohttp.ClientSession, ctx: SimpleNamespace,
                        params: aiohttp.TraceRequestStartParams) -> None:
            ctx.started = time.perf_counter()

        async def done(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
            started = getattr(ctx, "started", None)
            if started is None:
                return
            method = getattr(params, "method", "GET")
            url = getattr(params, "url", None)
            name = sfapi_call_name(method, url.raw_path if url is not None else "")
            self.sfapi_latency.labels(name).observe(time.perf_counter() - started)

        trace.on_request_start.append(start)
        trace.on_request_end.append(done)
        trace.on_request_exception.append(done)
        return trace
