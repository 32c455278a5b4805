"""``webhook``: POST every face event as JSON to configured URLs, with retry and a bounded queue.

``process`` builds the event (and, with ``gallery`` set, looks up the best match there) and puts it
on a bounded queue; background workers deliver it to every URL, retrying connection failures, 429
and 5xx answers with exponential back-off. A full queue fails the plugin for that frame (the frame's
answer lists ``webhook`` in ``failed_plugins``). On shutdown the queue is drained for at most
``drain_timeout_s``. ``GET /plugins/webhook/status`` reports the queue and delivery counts.

The event::

    {"event_id": "123", "cam_id": "door", "timestamp": "2024-05-01T12:30:00+00:00",
     "bs_type": "overall", "labels": {...}, "bbox": [[x1, y1, x2, y2]],
     "detection": {"id": "...", "bbox": {...}, "features": {"gender": ..., "age": ...}},
     "face_jpeg": "<base64 of face0, or of photo without face0>",        # include_image: true
     "match": {"gallery": "staff", "face": 42, "confidence": 0.83, "meta": {...}} | null}
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Literal, Mapping

import aiohttp
import tornado.web
from pydantic import BaseModel, ConfigDict, Field

from facerouter.errors import PluginError
from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest
from sfapi.client import SFApiError, filters

log = logging.getLogger(__name__)


class WebhookConfig(BaseModel):
    """The ``webhook:`` section."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = []
    features: list[Literal["gender", "age", "emotions"]] = ["gender", "age", "emotions"]
    #: gallery searched for the best match (none: no match lookup)
    gallery: str | None = None
    threshold: float = Field(0.7, ge=0, le=1)
    include_image: bool = True
    headers: dict[str, str] = {}
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0, le=100)
    backoff_s: float = Field(0.5, ge=0)
    queue_size: int = Field(1000, ge=1)
    workers: int = Field(2, ge=1, le=64)
    drain_timeout_s: float = Field(5.0, ge=0)


config_model = WebhookConfig


class Webhook:
    """Queues events in ``process`` and delivers them from background workers."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.config: WebhookConfig = ctx.config
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.config.queue_size)
        self.stats = {"delivered": 0, "failed": 0, "retried": 0, "dropped": 0}
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        if not self.config.urls:
            log.warning("%s: no urls configured; events are not sent", name)

    async def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The configured features, plus facen when a match is looked up; nothing without urls."""
        if not self.config.urls:
            return ()
        wanted = tuple(self.config.features)
        return wanted + ("facen",) if self.config.gallery else wanted

    async def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]],
                      event_id: int, detection: DetectFace) -> None:
        """Build the event and queue it (raises when the queue is full)."""
        event = self._event(request.params, bbox, event_id, detection)
        if self.config.gallery and detection.id is not None:
            event["match"] = await self._best_match(detection)
        self.enqueue(event)

    def enqueue(self, event: dict[str, Any]) -> None:
        """Queue one JSON event (with an ``event_id`` key) for delivery to every URL.

        Public so that other plugins (``persons``) reuse the delivery with retry. Raises
        :class:`PluginError` when the queue is full.
        """
        self._start_workers()
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            raise PluginError(self.name, f"queue full ({self.config.queue_size} events); event "
                              f"{event['event_id']} not sent") from None

    def _event(self, params: Any, bbox: list[list[float]], event_id: int,
               detection: DetectFace) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": str(event_id), "cam_id": params.cam_id,
            "timestamp": params.timestamp.isoformat(), "bs_type": params.bs_type,
            "labels": params.labels, "bbox": bbox,
            "detection": {"id": detection.id, "bbox": detection.bbox.to_json(),
                          "features": detection.features,
                          "detection_score": detection.detection_score,
                          "quality": detection.quality},
            "match": None,
        }
        if self.config.include_image:
            image = params.face0 if params.face0 is not None else params.photo
            event["face_jpeg"] = base64.b64encode(image).decode("ascii")
        return event

    async def _best_match(self, detection: DetectFace) -> dict[str, Any] | None:
        assert self.config.gallery is not None
        try:
            hits = await self.ctx.sfapi[self.config.gallery].list(
                filters=[filters.Detection(detection, self.config.threshold)], limit=1)
        except SFApiError as exc:
            log.warning("%s: match lookup in %s failed: %s", self.name, self.config.gallery, exc)
            return None
        if not hits:
            return None
        hit = hits[0]
        return {"gallery": hit.id.gallery, "face": hit.id.face, "confidence": hit.confidence,
                "meta": hit.meta, "features": hit.features}

    # --- delivery ----------------------------------------------------------------------------

    def _start_workers(self) -> None:
        if self._workers:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        self._workers = [asyncio.create_task(self._worker(), name=f"{self.name}-{i}")
                         for i in range(self.config.workers)]

    async def _worker(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                body = json.dumps(event).encode("utf-8")
                for url in self.config.urls:
                    await self._deliver(url, body, event["event_id"])
            finally:
                self.queue.task_done()

    async def _deliver(self, url: str, body: bytes, event_id: str) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **self.config.headers}
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.stats["retried"] += 1
                await asyncio.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status < 300:
                        self.stats["delivered"] += 1
                        return
                    problem = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status != 429:
                        break  # the receiver refuses this event: retrying will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.info("%s: event %s to %s: %s (attempt %d)", self.name, event_id, url, problem,
                     attempt + 1)
        self.stats["failed"] += 1
        log.warning("%s: event %s not delivered to %s: %s", self.name, event_id, url, problem)

    async def shutdown(self) -> None:
        """Deliver what is queued (at most ``drain_timeout_s``), then stop the workers."""
        try:
            if self._workers and not self.queue.empty():
                try:
                    await asyncio.wait_for(self.queue.join(), self.config.drain_timeout_s)
                except TimeoutError:
                    log.warning("%s: %d event(s) still queued at shutdown are lost", self.name,
                                self.queue.qsize())
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    def status(self) -> dict[str, Any]:
        """Queue depth and delivery counters."""
        return {"queued": self.queue.qsize(), "queue_size": self.config.queue_size,
                "urls": len(self.config.urls), **self.stats}


class StatusHandler(tornado.web.RequestHandler):
    """``GET /plugins/webhook/status``."""

    def initialize(self, plugin: Webhook) -> None:
        self.plugin = plugin

    def get(self) -> None:
        self.write(self.plugin.status())


def activate(app: tornado.web.Application, ctx: Any, plugin_name: str,
             plugin_source: str) -> Webhook:
    """Build the plugin and add its status route to the router's app."""
    plugin = Webhook(ctx, plugin_name)
    app.add_handlers(r".*", [(rf"/plugins/{plugin_name}/status", StatusHandler,
                              {"plugin": plugin})])
    return plugin
