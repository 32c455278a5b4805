"""Shutdown: stop accepting, finish frames in flight, plugins' shutdown in order with a limit."""
from __future__ import annotations

import asyncio

import aiohttp

SLOW = """
    import asyncio
    from facerouter.plugin import Plugin

    class Slow(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.log = ctx.config.setdefault("log", [])
            self.done = 0
        async def preprocess(self, request, labels):
            return ("facen",)
        async def process(self, request, photo, bbox, event_id, detection):
            await asyncio.sleep(0.5)
            self.done += 1
        async def shutdown(self):
            self.log.append(("slow", self.done, self.ctx.sfapi.closed))
"""

FIRST = """
    from facerouter.plugin import Plugin

    class First(Plugin):
        def shutdown(self):
            log = self.ctx.plugins["slow"].log
            log.append(("first", self.ctx.sfapi.closed))
"""

STUCK = """
    import asyncio
    from facerouter.plugin import Plugin

    class Stuck(Plugin):
        async def shutdown(self):
            await asyncio.sleep(3600)
"""

BROKEN = """
    from facerouter.plugin import Plugin

    class Broken(Plugin):
        def shutdown(self):
            raise RuntimeError("shutdown failed")
"""


async def test_shutdown_order(start_router, fake_sfapi) -> None:
    r = await start_router({"a_first": FIRST, "b_broken": BROKEN, "c_stuck": STUCK, "slow": SLOW},
                           config={"shutdown_timeout_s": 0.3}, sfapi_url=fake_sfapi.base)
    assert r.router.registry.names() == ["a_first", "b_broken", "c_stuck", "slow"]
    keepalive = aiohttp.ClientSession()
    async with keepalive.get(r.base + "/healthz") as resp:
        assert resp.status == 200
    frames = [asyncio.create_task(r.post_frame()) for _ in range(3)]
    while r.router.inflight < 3:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(r.router.shutdown())
    await asyncio.sleep(0.05)
    # new frames and health checks on an open connection are refused while stopping
    async with keepalive.get(r.base + "/healthz") as resp:
        assert resp.status == 503 and (await resp.json())["status"] == "stopping"
    async with keepalive.post(r.base + "/v0/frame", data=b"") as resp:
        assert resp.status == 503 and (await resp.json())["code"] == "OVER_CAPACITY"
    await keepalive.close()
    await stopping
    results = await asyncio.gather(*frames)
    assert [s for s, _ in results] == [200, 200, 200]  # in-flight frames were finished
    slow = r.router.registry["slow"].obj
    # reverse load order; plugins shut down before the sfapi client is closed; a stuck or
    # broken shutdown does not stop the next one
    assert slow.log == [("slow", 3, False), ("first", False)]
    assert r.router.sfapi.closed
    # the listening socket is closed
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(r.base + "/healthz") as resp:
                raise AssertionError(f"still accepting: {resp.status}")
    except aiohttp.ClientConnectionError:
        pass
