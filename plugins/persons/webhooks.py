"""Webhooks for new entries, filtered by result and source, delivered with retry.

Delivery (bounded queue, background workers, retries on connection errors, 429 and 5xx with
exponential back-off, drain at shutdown) is :class:`facerouter.delivery.JsonDelivery`, the same
as the built-in ``webhook`` plugin's: one per ``webhooks`` subscription of the config. The event
sent::

    {"event_id": "<entry id>", "type": "entry", "entry": {<the entry as GET /entries/{id}>},
     "images": {"face": "<base64>", "photo": "<base64>"}}      # include_images: true
"""
from __future__ import annotations

import base64
import logging
from typing import Any

from facerouter.delivery import JsonDelivery

from .config import WebhookSubscription

__all__ = ["EntryWebhooks"]

log = logging.getLogger(__name__)


class EntryWebhooks:
    """One deliverer per subscription; :meth:`publish` queues an entry where the filters allow."""

    def __init__(self, plugin_name: str, subscriptions: list[WebhookSubscription]) -> None:
        self.subscriptions = subscriptions
        self._senders = [JsonDelivery(sub, f"{plugin_name}.webhooks[{i}]")
                         for i, sub in enumerate(subscriptions)]

    def publish(self, entry: dict[str, Any], images: dict[str, bytes]) -> None:
        """Queue ``entry`` for every subscription whose result and source filters match it."""
        for sub, sender in zip(self.subscriptions, self._senders):
            if sub.results and entry["result"] not in sub.results:
                continue
            if sub.sources and entry["source"]["name"] not in sub.sources:
                continue
            event: dict[str, Any] = {"event_id": entry["id"], "type": "entry", "entry": entry}
            if sub.include_images:
                event["images"] = {k: base64.b64encode(v).decode("ascii")
                                   for k, v in images.items()}
            try:
                sender.enqueue(event)
            except Exception as exc:  # noqa: BLE001 - a full queue loses this event only
                log.warning("persons: webhook %s: %s", sender.name, exc)

    def status(self) -> list[dict[str, Any]]:
        """Queue and delivery counters of each subscription."""
        return [sender.status() for sender in self._senders]

    async def shutdown(self) -> None:
        """Drain and stop every deliverer."""
        for sender in self._senders:
            await sender.shutdown()
