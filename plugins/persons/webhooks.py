"""Webhooks for new entries, filtered by result and source, delivered with retry.

Delivery (bounded queue, background workers, retries on connection errors, 429 and 5xx with
exponential back-off, drain at shutdown) is the built-in ``webhook`` plugin's :class:`Webhook`,
reused here: this module loads ``plugins/webhook.py`` (the sibling of this package) and builds one
``Webhook`` per ``webhooks`` subscription of the config. The event sent::

    {"event_id": "<entry id>", "type": "entry", "entry": {<the entry as GET /entries/{id}>},
     "images": {"face": "<base64>", "photo": "<base64>"}}      # include_images: true
"""
from __future__ import annotations

import base64
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from .config import WebhookSubscription

__all__ = ["EntryWebhooks", "load_webhook_module"]

log = logging.getLogger(__name__)

_ROUTER_MODULE = "facerouter_plugin_webhook"   # the name facerouter's loader gives webhook.py
_OWN_MODULE = "facerouter_persons_webhook"


def load_webhook_module() -> ModuleType:
    """The built-in webhook plugin's module (the router's copy when loaded, else our own)."""
    path = (Path(__file__).resolve().parent.parent / "webhook.py")
    for name in (_ROUTER_MODULE, _OWN_MODULE):
        module = sys.modules.get(name)
        if module is not None and Path(getattr(module, "__file__", "")).resolve() == path:
            return module
    if not path.is_file():
        raise ImportError(f"persons webhooks need the built-in webhook plugin at {path}")
    spec = importlib.util.spec_from_file_location(_OWN_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_OWN_MODULE] = module
    spec.loader.exec_module(module)
    return module


class EntryWebhooks:
    """One deliverer per subscription; :meth:`publish` queues an entry where the filters allow."""

    def __init__(self, plugin_name: str, subscriptions: list[WebhookSubscription]) -> None:
        self.subscriptions = subscriptions
        self._senders: list[Any] = []
        if not subscriptions:
            return
        module = load_webhook_module()
        for i, sub in enumerate(subscriptions):
            cfg = module.WebhookConfig(urls=sub.urls, features=[], include_image=False,
                                       headers=sub.headers, timeout_s=sub.timeout_s,
                                       retries=sub.retries, backoff_s=sub.backoff_s,
                                       queue_size=sub.queue_size, workers=sub.workers,
                                       drain_timeout_s=sub.drain_timeout_s)
            self._senders.append(module.Webhook(SimpleNamespace(config=cfg),
                                                f"{plugin_name}.webhooks[{i}]"))

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
