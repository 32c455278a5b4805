"""The frame answer's ``timings``: preprocess, the sfapi detect, every plugin's process, the total."""
from __future__ import annotations

import time

PRE_S, DETECT_S, PROCESS_S = 0.03, 0.05, 0.08

SLOW = f"""
import asyncio
from facerouter.plugin import Plugin

class Slow(Plugin):
    async def preprocess(self, request, labels):
        await asyncio.sleep({PRE_S})
        return ("facen",)

    async def process(self, request, photo, bbox, event_id, detection):
        await asyncio.sleep({PROCESS_S})
"""

# a second plugin: process ends when the slowest plugin's process ends
QUICK = """
from facerouter.plugin import Plugin

class Quick(Plugin):
    def preprocess(self, request, labels):
        return ("gender",)

    def process(self, request, photo, bbox, event_id, detection):
        pass
"""

QUIET = """
from facerouter.plugin import Plugin

class Quiet(Plugin):
    async def preprocess(self, request, labels):
        return ()
"""

FAILS = f"""
import asyncio
from facerouter.plugin import Plugin

class Fails(Plugin):
    async def preprocess(self, request, labels):
        return ("facen",)

    async def process(self, request, photo, bbox, event_id, detection):
        await asyncio.sleep({PROCESS_S})
        raise RuntimeError("boom")
"""


async def test_timings_of_each_stage(start_router, fake_sfapi) -> None:
    fake_sfapi.delay = DETECT_S
    r = await start_router({"slow": SLOW, "quick": QUICK}, sfapi_url=fake_sfapi.base)
    before = time.time()
    status, body = await r.post_frame()
    after = time.time()
    assert status == 200 and body["processed"] == ["quick", "slow"]
    t = body["timings"]
    assert set(t) == {"preprocess_s", "detect_s", "process_s", "total_s", "started_at"}
    assert PRE_S <= t["preprocess_s"] < PRE_S + 0.5
    assert DETECT_S <= t["detect_s"] < DETECT_S + 0.5
    assert PROCESS_S <= t["process_s"] < PROCESS_S + 0.5
    assert t["preprocess_s"] + t["detect_s"] + t["process_s"] <= t["total_s"] <= after - before
    assert before <= t["started_at"] <= t["started_at"] + t["total_s"] <= after
    assert len(fake_sfapi.detects) == 1  # one detect for both plugins, timed once


async def test_a_failing_process_still_times_the_frame(start_router, fake_sfapi) -> None:
    r = await start_router({"fails": FAILS}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and body["failed_plugins"] == ["fails"]
    assert body["timings"]["process_s"] >= PROCESS_S


async def test_no_timings_when_no_plugin_wants_the_frame(start_router, fake_sfapi) -> None:
    r = await start_router({"quiet": QUIET}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and "timings" not in body and fake_sfapi.detects == []


async def test_errors_carry_no_timings(start_router, fake_sfapi) -> None:
    fake_sfapi.faces = []
    r = await start_router({"slow": SLOW}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 422 and "timings" not in body
