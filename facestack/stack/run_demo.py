"""Running the demo: model pack and video on first run, the stack, enrollment, entries on screen."""
from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TextIO

from facestack.stack.demo import (DemoPlan, demo_people, entry_ids, make_video, populate, tail_entries,
                                   write_configs)
from facestack.stack.supervisor import Supervisor
from sfapi.config import default_models_dir
from facestack.vision.models.pack import check_pack, ensure_pack


async def run_demo(directory: Path, out: TextIO) -> int:
    plan = DemoPlan(directory, models_dir=default_models_dir())
    loop = asyncio.get_running_loop()
    out.write(f"console: {plan.url('facerouter')}/ui/  (open it once the stack is up)\n")
    out.flush()
    if check_pack(plan.models_dir, verify_hashes=False) or not plan.video.exists():
        out.write("preparing: model pack, demo people, demo video (first run only)...\n")
        out.flush()
    await loop.run_in_executor(None, ensure_pack, plan.models_dir)
    people = await loop.run_in_executor(None, demo_people)
    if not plan.video.exists():
        await loop.run_in_executor(None, make_video, people, plan.video, plan.models_dir)
    sup = Supervisor(write_configs(plan), plan.dir)
    stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        sup.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    runner = sup.start()
    try:
        out.write(f"starting sfapi, facerouter and video-worker (logs in {plan.dir / 'log'})...\n")
        out.flush()
        await sup.wait_up()
        earlier = await entry_ids(plan)  # before this run's enrolments, which are shown
        names = await populate(plan, people)
        out.write(
            f"\nenrolled: {', '.join(sorted(people.enroll))}; also on camera, not enrolled: "
            f"{', '.join(sorted(people.unknown)) or 'nobody'}\n"
            f"camera '{plan.camera}' plays {plan.video}\n\n"
            f"  console   {plan.url('facerouter')}/ui/   (live entries, persons, search, cameras)\n"
            f"  entries   {plan.url('facerouter')}/v1/entries\n"
            f"  events    {plan.url('facerouter')}/v1/events/stream\n"
            f"  persons   {plan.url('facerouter')}/v1/persons\n"
            f"  jobs      {plan.url('video-worker')}/jobs\n"
            f"  sfapi     {plan.url('sfapi')}/docs/spec\n"
            f"  metrics   {plan.url('sfapi')}/metrics  {plan.url('facerouter')}/metrics  "
            f"{plan.url('video-worker')}/metrics\n\n"
            "Ctrl-C stops everything.\n\n")
        await tail_entries(plan, names, out, stop, earlier=earlier)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        sup.stop()
        with contextlib.suppress(Exception):
            await runner
    out.write("stopped.\n")
    return 0
