"""Prometheus metrics of one sfapi app, kept in the app's own registry (no globals)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SfapiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("sfapi_requests_total", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("sfapi_request_seconds", "HTTP request latency by route", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.batch_size = Histogram("sfapi_batch_size", "rows per forward pass by network", ["network"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.batch_seconds = Histogram("sfapi_batch_seconds", "forward pass time by network", ["network"],
                                       registry=self.registry)
        self.queue_depth = Gauge("sfapi_queue_depth", "rows waiting for a forward pass", registry=self.registry)
        self.inflight = Gauge("sfapi_inflight_requests", "detect requests being processed", registry=self.registry)
        self.rejected = Counter("sfapi_over_capacity_total", "requests refused with OVER_CAPACITY",
                                registry=self.registry)
        self.faces = Counter("sfapi_faces_detected_total", "faces detected", registry=self.registry)

    def observe_batch(self, network: str, rows: int, seconds: float) -> None:
        self.batch_size.labels(network).observe(rows)
        self.batch_seconds.labels(network).observe(seconds)
