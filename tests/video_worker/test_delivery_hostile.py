"""Delivery under auth failures (issue 14 #4) and idempotency keys (#15), against the real facerouter
(with a plugin that counts what reaches it) on loopback."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from aiohttp import web

from facerouter.errors import SfapiUnauthorized
from facestack.core.auth import AuthConfig, Authenticator
from tests.facerouter.conftest import FACE0, PHOTO, TS
from tests.video_worker.conftest import RouterStandIn, api, wait_for, worker_config
from video_worker.config import DeliverySection
from video_worker.outbox import send_post
from video_worker.posts import Post
from video_worker.spool import Spool

COUNTER = """
    from facerouter.plugin import Plugin

    class Counter(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.events = []
        async def preprocess(self, request, labels):
            return ("facen",)
        async def process(self, request, photo, bbox, event_id, detection):
            self.events.append((event_id, request.params.idempotency_key))
"""
ROUTER_TOKEN = "router-write-token-0001"
WORKER_TOKEN = "worker-sends-this-0001"


def single_pass(clip: Path) -> dict[str, Any]:
    return {"id": "cam1", "stream_url": str(clip), "single_pass": True}


async def test_router_refusing_the_token_keeps_posts_until_fixed(start_worker, start_router, fake_sfapi,
                                                                 tmp_path, people_clip) -> None:
    """A 401 from the router used to drop each post as rejected: now they stay spooled, the job
    shows unauthorized, and all arrive once the router accepts the token."""
    auth = {"required": "always", "tokens": [{"token": ROUTER_TOKEN, "role": "write"}]}
    r = await start_router({"counter": COUNTER}, {"auth": auth}, sfapi_url=fake_sfapi.base)
    worker = await start_worker(worker_config(tmp_path, r.base, [single_pass(people_clip[0])],
                                              router_token=WORKER_TOKEN))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await wait_for(lambda: cam.view()["status"] == "unauthorized")
    status, view = await api(worker, "GET", "/job/cam1")
    assert status == 200 and view["status"] == "unauthorized" and "token" in view["status_msg"]
    stats = view["statistic"]
    assert stats["posts_rejected"] == 0 and stats["posts_pending"] >= 3
    assert "401" in stats["last_error"]
    assert r.router.registry["counter"].obj.events == []
    # the operator fixes it: the router now accepts the worker's token
    r.router.app.authenticator = Authenticator.from_config(
        AuthConfig.model_validate({"required": "always", "tokens": [{"token": WORKER_TOKEN, "role": "write"}]}),
        "127.0.0.1", "facerouter")
    await asyncio.wait_for(cam.outbox.drained(), 30)
    view = cam.view()
    assert view["status"] != "unauthorized"
    events = r.router.registry["counter"].obj.events
    assert len(events) == view["statistic"]["faces_posted"] == stats["posts_pending"]
    assert len({key for _, key in events}) == len(events)
    assert view["statistic"]["posts_rejected"] == 0


async def test_sfapi_refusing_the_routers_token_keeps_posts_until_fixed(start_worker, start_router,
                                                                        fake_sfapi, tmp_path,
                                                                        people_clip) -> None:
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    fake_sfapi.fail = (401, "UNAUTHORIZED")
    worker = await start_worker(worker_config(tmp_path, r.base, [single_pass(people_clip[0])]))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await wait_for(lambda: cam.view()["status"] == "unauthorized")
    assert "sfapi" in cam.view()["status_msg"]
    pending = cam.outbox.pending
    assert pending >= 3 and cam.view()["statistic"]["posts_rejected"] == 0
    fake_sfapi.fail = None
    await asyncio.wait_for(cam.outbox.drained(), 30)
    assert len(r.router.registry["counter"].obj.events) == pending
    assert cam.view()["statistic"]["posts_rejected"] == 0


class KeyRouter(RouterStandIn):
    """The stand-in, keeping each attempt's Idempotency-Key."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.keys: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        return await super().handle(request)


async def test_every_post_has_a_unique_key_new_per_run(start_worker, tmp_path, people_clip) -> None:
    from tests.video_worker.conftest import free_port
    router = KeyRouter(free_port())
    await router.start()
    try:
        worker = await start_worker(worker_config(tmp_path, router.url, [{**single_pass(people_clip[0]),
                                                  "settings": {"overall_only": False}}]))
        cam = worker.manager.get("cam1")
        await asyncio.wait_for(cam.finished.wait(), 60)
        await asyncio.wait_for(cam.outbox.drained(), 60)
        first = list(router.keys)
        assert len(first) >= 4 and len(set(first)) == len(first)
        parts = [re.fullmatch(r"cam1:([0-9a-f]{32}):(\d+):(\d+)", k or "") for k in first]
        assert all(parts), first
        assert len({p.group(1) for p in parts}) == 1  # one run
        tracks = [int(p.group(2)) for p in parts]
        assert tracks == [post["detectorParams"]["track"] for post in router.posts]
        await api(worker, "POST", "/job/cam1/restart")

        async def next_run_done() -> None:  # the new run posts, finishes and has nothing pending
            while True:
                if len(router.keys) > len(first):
                    _, view = await api(worker, "GET", "/job/cam1")
                    if (isinstance(view, dict) and view.get("status") == "finished"
                            and view["statistic"]["posts_pending"] == 0):
                        return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(next_run_done(), 60)
        second = router.keys[len(first):]
        assert second and not set(second) & set(first)  # tracks restart at 1: the run id differs
    finally:
        await router.stop()


async def test_a_post_replayed_from_the_spool_is_stored_once(start_router, fake_sfapi, tmp_path) -> None:
    """A post delivered, then replayed from the spool after a crash (the spool entry was not yet
    removed): facerouter answers the same event and the plugin sees it once."""
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    fields = {"bbox": "[[10, 20, 110, 140]]", "cam_id": "cam1", "timestamp": TS,
              "detectorParams": json.dumps({"track": 1}), "bs_type": "overall", "labels": "{}"}
    post = Post("cam1", fields, PHOTO, FACE0, "cam1:" + "ab" * 16 + ":1:0")
    spool = Spool(tmp_path / "spool", 1 << 20)
    await asyncio.to_thread(spool.append, post)
    async with aiohttp.ClientSession() as http:
        first = await send_post(http, r.base + "/v0/frame", post, 5)
        # the worker dies here; the next start finds the post still spooled and sends it again
        again = Spool(tmp_path / "spool", 1 << 20)
        seq, replayed = again.peek()
        assert replayed.key == post.key
        second = await send_post(http, r.base + "/v0/frame", replayed, 5)
    a, b = json.loads(first.body), json.loads(second.body)
    assert a["event_id"] == b["event_id"] and b["duplicate"] is True
    assert r.router.registry["counter"].obj.events == [(int(a["event_id"]), post.key)]


def test_sfapi_unauthorized_code_is_what_the_worker_looks_for() -> None:
    assert SfapiUnauthorized.status == 502 and SfapiUnauthorized.code == "SFAPI_UNAUTHORIZED"


def test_spool_expire_drops_posts_by_the_age_they_were_made(tmp_path) -> None:
    """A spooled post's age is the time since it was made (``analysed_at``), kept on disk across a
    reopen and when put back at the head; ``expire`` drops exactly the posts past ``max_age_s``."""
    def post(i: int, made: float) -> Post:
        fields = {"bbox": "[[10, 20, 110, 140]]", "cam_id": "cam1", "timestamp": TS,
                  "detectorParams": json.dumps({"track": i, "analysed_at": made}),
                  "bs_type": "overall", "labels": "{}"}
        return Post("cam1", fields, PHOTO, FACE0, f"cam1:run:{i}:0")

    base = 1_700_000_000.0
    spool = Spool(tmp_path / "spool", 1 << 22, max_age_s=100)
    for i, made in enumerate((base + 10, base + 20, base + 30)):
        spool.append(post(i, made))
    spool.push_front(post(9, base))  # an older post that was in flight
    assert Spool(tmp_path / "spool", 1 << 22).expire(now=base + 1000) == 0  # no max_age: kept
    again = Spool(tmp_path / "spool", 1 << 22, max_age_s=100)
    assert len(again) == 4
    assert again.expire(now=base + 115) == 2  # made at base and base + 10
    assert [again.peek()[1].params["track"]] == [1] and len(again) == 2 and again.dropped == 2
    assert again.expire(now=base + 115) == 0
    assert again.expire(now=base + 131) == 2 and len(again) == 0 and again.nbytes == 0
    assert not list((tmp_path / "spool").glob("*.post"))
    for bad in (0, -1, "soon"):
        with pytest.raises(ValidationError, match="spool_max_age_s"):
            DeliverySection(spool_max_age_s=bad)
