"""JSON event delivery for plugins: a bounded queue, background workers, retry with back-off.

The built-in ``webhook`` plugin and the ``persons`` plugin's entry webhooks both send events this
way; a user's plugin can too (``from facerouter.delivery import DeliverySettings, JsonDelivery``).
Each event goes to every URL; connection failures, 429 and 5xx answers are retried with
exponential back-off, other 4xx answers are not. A full queue raises :class:`PluginError` for that
event only. Any other failure with one event (e.g. an event ``json.dumps`` cannot encode) is logged
with its traceback, counted in ``errors`` and that event is dropped; the workers keep going.
``shutdown`` delivers what is queued for at most ``drain_timeout_s``. With a ``secret`` every
attempt is signed (``X-Facestack-Timestamp``, ``X-Facestack-Signature``: :mod:`facerouter.signing`).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from facerouter.errors import PluginError
from facerouter.signing import signed_headers
from facestack.core.tls import ClientTls

__all__ = ["DeliverySettings", "JsonDelivery"]

log = logging.getLogger(__name__)


class DeliverySettings(BaseModel):
    """Where and how events are sent (a plugin's config model extends it)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = []
    #: extra HTTP headers, e.g. {Authorization: Bearer ...}
    headers: dict[str, str] = {}
    #: the key of each delivery's HMAC-SHA256 signature (``facerouter.signing``); give the
    #: receiver the same one. Without it deliveries are unsigned (a warning at start)
    secret: SecretStr | None = Field(None, min_length=16)
    #: verifying https receivers: a CA bundle (a private CA), and a client certificate for
    #: receivers that ask for one (facestack.core.tls.ClientTls; default: the system's CAs)
    tls: ClientTls = ClientTls()
    #: per delivery attempt
    timeout_s: float = Field(5.0, gt=0)
    #: on connection errors, 429 and 5xx, with exponential back-off from backoff_s
    retries: int = Field(3, ge=0, le=100)
    backoff_s: float = Field(0.5, ge=0)
    #: events waiting for delivery; past it an event is refused
    queue_size: int = Field(1000, ge=1)
    #: concurrent deliveries
    workers: int = Field(2, ge=1, le=64)
    #: at shutdown, time to deliver what is queued
    drain_timeout_s: float = Field(5.0, ge=0)


class JsonDelivery:
    """Delivers JSON events (dicts with an ``event_id``) to ``settings.urls``; ``name`` is for logs."""

    def __init__(self, settings: DeliverySettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(settings.queue_size)
        self.stats = {"delivered": 0, "failed": 0, "retried": 0, "dropped": 0, "errors": 0}
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        if settings.urls and settings.secret is None:
            log.warning("%s: webhook deliveries are unsigned: set secret to sign them", name)

    def enqueue(self, event: dict[str, Any]) -> None:
        """Queue one event; raises :class:`PluginError` when the queue is full."""
        self._start_workers()
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            raise PluginError(self.name, f"queue full ({self.settings.queue_size} events); event "
                              f"{event.get('event_id')} not sent") from None

    def _start_workers(self) -> None:
        if self._workers:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            connector=aiohttp.TCPConnector(ssl=self.settings.tls.context()))
        self._workers = [asyncio.create_task(self._worker(), name=f"{self.name}-{i}")
                         for i in range(self.settings.workers)]

    async def _worker(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                event_id = event.get("event_id") if isinstance(event, dict) else None
                body = json.dumps(event, allow_nan=False).encode("utf-8")
                for url in self.settings.urls:
                    await self._deliver(url, body, event_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad event (or a bug) costs that event only, never the worker
                self.stats["errors"] += 1
                log.exception("%s: event %s dropped: cannot be delivered", self.name, event_id)
            finally:
                self.queue.task_done()

    async def _deliver(self, url: str, body: bytes, event_id: Any) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **self.settings.headers}
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self.stats["retried"] += 1
                await asyncio.sleep(self.settings.backoff_s * 2 ** (attempt - 1))
            if self.settings.secret is not None:  # each attempt with its own timestamp
                headers.update(signed_headers(self.settings.secret.get_secret_value(), body))
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
            log.info("%s: event %s to %s: %s (attempt %d)", self.name, event_id, url, problem, attempt + 1)
        self.stats["failed"] += 1
        log.warning("%s: event %s not delivered to %s: %s", self.name, event_id, url, problem)

    async def shutdown(self) -> None:
        """Deliver what is queued (at most ``drain_timeout_s``), then stop the workers."""
        try:
            if self._workers and not self.queue.empty():
                try:
                    await asyncio.wait_for(self.queue.join(), self.settings.drain_timeout_s)
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
        return {"queued": self.queue.qsize(), "queue_size": self.settings.queue_size,
                "urls": len(self.settings.urls), **self.stats}
