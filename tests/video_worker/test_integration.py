"""The whole chain on loopback: a clip -> the video worker -> the real facerouter -> the real sfapi."""
from __future__ import annotations

import asyncio
from collections import Counter

from facestack.stack import clips
from tests.video_worker.conftest import worker_config

# a log-style plugin that counts the frames it sees and keeps what sfapi said about each
COUNTER = """
    import logging

    from facerouter.plugin import Plugin

    log = logging.getLogger(__name__)


    class Counter(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.frames = []

        def preprocess(self, request, labels):
            return ('facen', 'gender')

        async def process(self, request, photo, bbox, event_id, detection):
            p = request.params
            self.frames.append((p.cam_id, p.bs_type, p.detectorParams, detection))
            log.info('face event %d from %s: %s', event_id, p.cam_id, detection.features)
"""


async def test_clip_through_worker_router_and_sfapi(start_server, start_router, start_worker,
                                                    tmp_path, people_clip) -> None:
    clip, scene = people_clip
    sf = await start_server()
    router = await start_router({"counter": COUNTER}, sfapi_url=sf.base)
    worker = await start_worker(worker_config(tmp_path, router.base, [
        {"id": "gate", "stream_url": str(clip), "single_pass": True, "labels": {"site": "hq"}}]))
    cam = worker.manager.get("gate")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)
    frames = router.router.registry["counter"].obj.frames
    stats = cam.view()["statistic"]
    assert stats["faces_posted"] == len(frames) == 4 and stats["posts_rejected"] == 0
    people = Counter(clips.person_at(scene, params["frame_no"], params["frame_bbox"])
                     for _, _, params, _ in frames)
    assert people == {"obama": 1, "biden": 2, "kit": 1}
    for cam_id, bs_type, params, detection in frames:
        assert cam_id == "gate" and bs_type == "overall"
        # sfapi read face0 as a normalized face and extracted a descriptor from it
        assert detection.id and detection.features["gender"]["gender"] in ("male", "female")
    biden = [d for _, _, p, d in frames if clips.person_at(scene, p["frame_no"], p["frame_bbox"]) == "biden"]
    async with sf.http.get(f"{sf.base}/v2/verify", params={"first": str(biden[0].id),
                                                           "second": str(biden[1].id)}) as resp:
        body = await resp.json()
    assert resp.status == 200, body
    # the two tracks of the person who left and came back are the same person for sfapi
    assert body["match"] is True, body
