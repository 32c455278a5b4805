"""``GET /v1/events/stream``: entries as Server-Sent Events, filtered, behind the tokens."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

READ = "stream-read-token-00001"
AUTH = {"required": "always", "tokens": [{"token": READ, "role": "read"}]}


async def _events(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, Any]]:
    """The next ``n`` entry events of a stream."""
    out: list[dict[str, Any]] = []
    block: dict[str, str] = {}
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if not line:
            if block.get("event") == "entry":
                out.append({"id": block["id"], **json.loads(block["data"])})
            block = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            block[key] = value
    return out


async def test_stream_sends_entries_with_filters(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {"auth": AUTH, "console": {"stream_keepalive_s": 0.2}},
                           sfapi_url=fake_sfapi.base)
    hub = r.router.console.events
    headers = {"Authorization": f"Bearer {READ}"}
    async with r.http.get(r.base + "/v1/events/stream") as resp:
        assert resp.status == 401
    async with r.http.get(r.base + "/v1/events/stream?colour=red", headers=headers) as resp:
        assert resp.status == 400 and (await resp.json())["param"] == "colour"
    async with r.http.get(r.base + "/v1/events/stream", headers=headers) as every, \
            r.http.get(r.base + "/v1/events/stream?result=exact,ha&cam_id=door", headers=headers) as some:
        assert every.headers["Content-Type"].startswith("text/event-stream")
        for _ in range(100):
            if hub.clients == 2:
                break
            await asyncio.sleep(0.02)
        assert hub.clients == 2
        sent = [{"id": "1", "result": "nm", "cam_id": "door", "pid": None},
                {"id": "2", "result": "exact", "cam_id": "hall", "pid": "p1"},
                {"id": "3", "result": "exact", "cam_id": "door", "pid": "p1"},
                {"id": "4", "result": "ha", "cam_id": "door", "pid": "p2"}]
        for entry in sent:
            hub.publish(entry)
        assert [e["id"] for e in await _events(every, 4)] == ["1", "2", "3", "4"]
        got = await _events(some, 2)
        assert [(e["id"], e["result"], e["cam_id"]) for e in got] == [("3", "exact", "door"),
                                                                       ("4", "ha", "door")]
    for _ in range(100):
        if hub.clients == 0:
            break
        await asyncio.sleep(0.05)
    assert hub.clients == 0, "closed streams are forgotten"


async def test_stream_client_limit_and_slow_client(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {"console": {"max_stream_clients": 1, "stream_queue": 10}},
                           sfapi_url=fake_sfapi.base)
    hub = r.router.console.events
    async with r.http.get(r.base + "/v1/events/stream") as first:
        assert first.status == 200
        for _ in range(100):
            if hub.clients == 1:
                break
            await asyncio.sleep(0.02)
        async with r.http.get(r.base + "/v1/events/stream") as second:
            assert second.status == 503 and (await second.json())["code"] == "OVER_CAPACITY"
        client = next(iter(hub._clients))
        for i in range(11):  # one more than the queue holds, before the handler reads any
            hub.publish({"id": str(i), "result": "nm"})
        assert hub.clients == 0
        assert client.queue.qsize() == 1  # only the end marker is left


async def test_shutdown_ends_open_streams(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {}, sfapi_url=fake_sfapi.base)
    hub = r.router.console.events
    async with r.http.get(r.base + "/v1/events/stream") as resp:
        for _ in range(100):
            if hub.clients == 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(r.router.shutdown(), 20)   # a stream does not hold shutdown up
        rest = await asyncio.wait_for(resp.content.read(), 10)
        assert b"event: entry" not in rest
    assert hub.clients == 0 and hub.subscribe({}) is None
