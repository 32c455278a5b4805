"""The entry stream: ``GET /v1/events/stream``, Server-Sent Events (``text/event-stream``).

Every entry the persons plugin writes (camera faces and uploads) is sent at once to every
client as::

    id: <entry id>
    event: entry
    data: <the entry as GET /v2/entries gives it, one JSON line>

Query filters (each optional, comma-separated lists): ``result`` (``new,exact,ha,junk,nm,det,
reinit``), ``cam_id`` (cameras), ``pid`` (persons). An idle stream gets a ``: keep-alive`` comment
every ``console.stream_keepalive_s`` seconds. The stream sends what happens from the moment a
client connects; after a reconnect, read what was missed from ``GET /v2/entries?id__gte=<last id>``.
A client that does not keep up (``console.stream_queue`` events buffered) is disconnected; past
``console.max_stream_clients`` clients a new one is answered 503. Tokens as for every route:
``Authorization: Bearer <read token>`` (or the console's session cookie).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import tornado.iostream
import tornado.web

__all__ = ["EventHub", "EventStreamHandler", "STREAM_FILTERS"]

log = logging.getLogger(__name__)

STREAM_FILTERS = ("result", "cam_id", "pid")
_END = object()


@dataclass(eq=False)
class _Client:
    queue: asyncio.Queue[Any]
    filters: dict[str, frozenset[str]] = field(default_factory=dict)

    def end(self) -> None:
        """Drop what is buffered and tell the handler to stop."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_END)

    def wants(self, entry: dict[str, Any]) -> bool:
        for key, allowed in self.filters.items():
            if str(entry.get(key)) not in allowed:
                return False
        return True


class EventHub:
    """Fans entries out to the connected stream clients (publish never blocks the writer)."""

    def __init__(self, max_clients: int, queue_size: int) -> None:
        self.max_clients = max_clients
        self.queue_size = queue_size
        self._clients: set[_Client] = set()
        self.closed = False
        #: stream handlers still writing (close() waits for them to end their responses)
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self, filters: dict[str, frozenset[str]]) -> _Client | None:
        """A new client, or None when there are ``max_clients`` already."""
        if len(self._clients) >= self.max_clients or self.closed:
            return None
        client = _Client(asyncio.Queue(self.queue_size), filters)
        self._clients.add(client)
        self.active += 1
        self._idle.clear()
        return client

    def unsubscribe(self, client: _Client) -> None:
        """A handler is done with ``client`` (once per subscribe)."""
        self._clients.discard(client)
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    def publish(self, entry: dict[str, Any]) -> None:
        """Send one entry (its rich wire form) to every client that wants it."""
        if not self._clients:
            return
        line = json.dumps(entry, separators=(",", ":"))
        for client in list(self._clients):
            if not client.wants(entry):
                continue
            try:
                client.queue.put_nowait((str(entry.get("id", "")), line))
            except asyncio.QueueFull:
                log.warning("event stream: a client fell %d events behind; disconnecting it",
                            self.queue_size)
                self._clients.discard(client)
                client.end()

    async def close(self, timeout: float = 5.0) -> None:
        """End every stream (at shutdown) and wait for their handlers to finish the responses."""
        self.closed = True
        for client in list(self._clients):
            self._clients.discard(client)
            client.end()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("event stream: %d stream(s) still open at shutdown", self.active)


class EventStreamHandler(tornado.web.RequestHandler):
    """``GET /v1/events/stream``."""

    def initialize(self, hub: EventHub, keepalive_s: float) -> None:
        self.hub = hub
        self.keepalive_s = keepalive_s
        self._gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self._gone.set()

    def _refuse(self, status: int, code: str, reason: str, param: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": code, "reason": reason, "param": param}))

    def _filters(self) -> dict[str, frozenset[str]] | None:
        out: dict[str, frozenset[str]] = {}
        for name, values in self.request.query_arguments.items():
            if name not in STREAM_FILTERS:
                self._refuse(400, "BAD_PARAM", f"unknown query parameter {name!r}; known: "
                             f"{', '.join(STREAM_FILTERS)}", name)
                return None
            items = {v for raw in values for v in raw.decode("utf-8", "replace").split(",") if v}
            if not items:
                self._refuse(400, "BAD_PARAM", f"{name} is empty", name)
                return None
            out[name] = frozenset(items)
        return out

    async def get(self) -> None:
        filters = self._filters()
        if filters is None:
            return
        client = self.hub.subscribe(filters)
        if client is None:
            self.set_header("Retry-After", "5")
            self._refuse(503, "OVER_CAPACITY", f"{self.hub.max_clients} stream clients already "
                         "(console.max_stream_clients)")
            return
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            self.write(": connected\nretry: 3000\n\n")
            await self.flush()
            while not self._gone.is_set():
                getter = asyncio.ensure_future(client.queue.get())
                await asyncio.wait((getter, gone), timeout=self.keepalive_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    if self._gone.is_set():
                        break
                    self.write(": keep-alive\n\n")
                else:
                    item = getter.result()
                    if item is _END:
                        break
                    event_id, line = item
                    self.write(f"id: {event_id}\nevent: entry\ndata: {line}\n\n")
                await self.flush()
            if not self._gone.is_set():
                self.finish()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            gone.cancel()
            self.hub.unsubscribe(client)
