"""A restarted demo does not print the entries of earlier runs as new ones."""
from __future__ import annotations

import asyncio
import io

from aiohttp import web

from facestack.stack.demo import DemoPlan, tail_entries


def _entry(n: int) -> dict:
    return {"id": f"e{n}", "created": f"2026-01-01T10:00:0{n}", "cam_id": "demo-cam", "result": "nm",
            "pid": None, "confidence": None, "age": 30, "sex": 0, "mood": "neutral"}


async def test_earlier_entries_are_not_printed_as_new(local_http, tmp_path) -> None:
    entries = [_entry(2), _entry(1)]  # newest first, as /v1/entries answers

    async def list_entries(request: web.Request) -> web.Response:
        return web.json_response({"results": entries})

    app = web.Application()
    app.router.add_get("/v2/entries", list_entries)
    base = await local_http(app)
    host, port = base.removeprefix("http://").split(":")
    plan = DemoPlan(tmp_path, host=host, ports={"sfapi": 1, "facerouter": int(port), "video-worker": 1})
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(tail_entries(plan, {}, out, stop, interval=0.05))

    async def shown(text: str) -> None:
        while text not in out.getvalue():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(shown("2 entries of earlier runs"), 60)
    entries.insert(0, _entry(3))
    await asyncio.wait_for(shown("10:00:03"), 60)
    stop.set()
    await task
    printed = out.getvalue().split("mood", 1)[1]
    assert "10:00:03" in printed and "10:00:01" not in printed and "10:00:02" not in printed


async def test_entries_given_as_earlier_are_not_printed(local_http, tmp_path) -> None:
    """The demo reads the history before enrolling, so its own enrolment entries are shown."""
    entries = [_entry(2), _entry(1)]

    async def list_entries(request: web.Request) -> web.Response:
        return web.json_response({"results": entries})

    app = web.Application()
    app.router.add_get("/v2/entries", list_entries)
    base = await local_http(app)
    host, port = base.removeprefix("http://").split(":")
    plan = DemoPlan(tmp_path, host=host, ports={"sfapi": 1, "facerouter": int(port), "video-worker": 1})
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(tail_entries(plan, {}, out, stop, interval=0.05, earlier={"e1"}))

    async def shown(text: str) -> None:
        while text not in out.getvalue():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(shown("10:00:02"), 60)
    stop.set()
    await task
    printed = out.getvalue()
    assert "1 entries of earlier runs" in printed and "10:00:01" not in printed.split("mood", 1)[1]
