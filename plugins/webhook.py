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

import base64
import logging
from typing import Any, Literal, Mapping

import tornado.web
from pydantic import Field

from facerouter.delivery import DeliverySettings, JsonDelivery
from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest
from sfapi.client import SFApiError, filters

log = logging.getLogger(__name__)


class WebhookConfig(DeliverySettings):
    """The ``webhook:`` section: delivery settings plus what each event carries."""

    features: list[Literal["gender", "age", "emotions"]] = ["gender", "age", "emotions"]
    #: gallery searched for the best match (none: no match lookup)
    gallery: str | None = None
    threshold: float = Field(0.7, ge=0, le=1)
    include_image: bool = True


config_model = WebhookConfig


class Webhook:
    """Queues events in ``process`` and delivers them from background workers."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.config: WebhookConfig = ctx.config
        self.delivery = JsonDelivery(self.config, name)
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
        self.delivery.enqueue(event)

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

    async def shutdown(self) -> None:
        """Deliver what is queued (at most ``drain_timeout_s``), then stop."""
        await self.delivery.shutdown()

    def status(self) -> dict[str, Any]:
        """Queue depth and delivery counters."""
        return self.delivery.status()


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
