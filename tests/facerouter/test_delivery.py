"""Unit tests of facerouter.delivery.JsonDelivery against a receiver on loopback (issue 14 #16)."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from facerouter.delivery import DeliverySettings, JsonDelivery
from facerouter.errors import PluginError


class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200); keeps the bodies."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[Any] = []
        self.attempts = 0
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if status < 300:
            self.bodies.append(json.loads(await request.read()))
            self.got.set()
        return web.json_response({}, status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


def settings(url: str, **kw: Any) -> DeliverySettings:
    return DeliverySettings(urls=[url], backoff_s=0.0, **kw)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


async def test_delivers_in_order_with_headers(local_http) -> None:
    rx = Receiver()
    base = await local_http(rx.app())
    d = JsonDelivery(settings(base + "/hook", workers=1, headers={"X-Test": "1"}), "t")
    for i in range(5):
        d.enqueue({"event_id": str(i), "n": i})
    await until(lambda: len(rx.bodies) == 5)
    await d.shutdown()
    assert [b["n"] for b in rx.bodies] == list(range(5))
    assert d.status()["delivered"] == 5 and d.status()["errors"] == 0


async def test_retries_5xx_and_429_not_other_4xx(local_http) -> None:
    rx = Receiver([503, 429, 200, 400])
    base = await local_http(rx.app())
    d = JsonDelivery(settings(base + "/hook", workers=1, retries=3), "t")
    d.enqueue({"event_id": "a"})
    await until(lambda: d.stats["delivered"] == 1)
    d.enqueue({"event_id": "b"})  # answered 400: not retried
    await until(lambda: d.stats["failed"] == 1)
    await d.shutdown()
    assert rx.attempts == 4 and d.stats["retried"] == 2


async def test_gives_up_after_retries(local_http) -> None:
    rx = Receiver([500] * 10)
    base = await local_http(rx.app())
    d = JsonDelivery(settings(base + "/hook", workers=1, retries=2), "t")
    d.enqueue({"event_id": "a"})
    await until(lambda: d.stats["failed"] == 1)
    await d.shutdown()
    assert rx.attempts == 3


async def test_bad_event_is_logged_and_the_worker_goes_on(local_http, caplog) -> None:
    """A json.dumps TypeError (or a NaN) used to end the only worker silently: every later event was
    refused 'queue full'."""
    caplog.set_level(logging.ERROR, logger="facerouter.delivery")
    rx = Receiver()
    base = await local_http(rx.app())
    d = JsonDelivery(settings(base + "/hook", workers=1, queue_size=2), "t")
    d.enqueue({"event_id": "bad", "value": object()})
    d.enqueue({"event_id": "nan", "value": float("nan")})
    await until(lambda: d.stats["errors"] == 2)
    for i in range(4):  # the queue drains again: nothing is refused
        d.enqueue({"event_id": str(i)})
        await until(lambda: len(rx.bodies) == i + 1)
    await d.shutdown()
    assert d.status()["errors"] == 2 and d.status()["delivered"] == 4
    assert "event bad dropped" in caplog.text and "TypeError" in caplog.text


async def test_full_queue_refuses_that_event(unused_tcp_port: int) -> None:
    d = JsonDelivery(settings(f"http://127.0.0.1:{unused_tcp_port}/hook", workers=1, queue_size=1,
                              retries=0, drain_timeout_s=0), "t")
    d.queue.put_nowait({"event_id": "x"})  # filled before any worker runs
    d._start_workers = lambda: None  # type: ignore[method-assign]
    with pytest.raises(PluginError, match="queue full"):
        d.enqueue({"event_id": "y"})
    assert d.stats["dropped"] == 1
    await d.shutdown()


async def test_unreachable_receiver_is_counted_and_shutdown_drains(unused_tcp_port: int) -> None:
    d = JsonDelivery(settings(f"http://127.0.0.1:{unused_tcp_port}/hook", workers=2, retries=1), "t")
    for i in range(3):
        d.enqueue({"event_id": str(i)})
    await d.shutdown()  # waits (bounded) for the queue: every event was tried
    assert d.stats["failed"] == 3 and d.stats["delivered"] == 0
