"""End to end: the launcher starts the three services on loopback ports, the demo video goes through
the whole chain (video worker -> facerouter -> persons plugin -> sfapi), and the entries are checked."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from facestack.stack.demo import (DemoPlan, demo_people, free_ports, make_video, populate, wait_job_finished,
                                   write_configs)
from facestack.stack.supervisor import Supervisor


@pytest.mark.slow
async def test_demo_video_through_the_whole_stack(tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    plan = DemoPlan(tmp_path / "demo", ports=free_ports(), play_speed=-1, single_pass=True, models_dir=models_dir)
    people = demo_people()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, make_video, people, plan.video, models_dir)
    sup = Supervisor(write_configs(plan), plan.dir)
    runner = sup.start()
    try:
        await sup.wait_up(180)
        names = await populate(plan, people)
        assert sorted(names.values()) == sorted(people.enroll)
        await wait_job_finished(plan, plan.camera, 120)
        async with aiohttp.ClientSession() as http:
            async with http.get(plan.url("facerouter") + "/v2/entries", params={"limit": 100}) as resp:
                body = await resp.json()
        camera = [e for e in body["results"] if e["cam_id"] == plan.camera]
        by_result: dict[str, list[str]] = {}
        for e in camera:
            by_result.setdefault(e["result"], []).append(names.get(e["pid"] or "", "?"))
        # each person crosses the frame once: one track, one entry (overall mode)
        assert len(camera) == len(people.video), camera
        assert sorted(by_result.get("exact", [])) == sorted(people.enroll), by_result
        assert len(by_result.get("nm", [])) == len(people.unknown), by_result
    finally:
        sup.stop()
        await asyncio.wait_for(runner, 60)
