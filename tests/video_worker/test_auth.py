"""API tokens on the video worker: the job API checks them (401/403/200, /healthz open), the worker
sends its router token with every frame, start-up without tokens fails clearly, and no token is
ever logged."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.video_worker.conftest import RouterStandIn, api, free_port, wait_for, worker_config
from video_worker import cli
from video_worker.app import Worker
from video_worker.config import authenticator, load
from video_worker.errors import ConfigError

READ = "worker-read-token-0001"
WRITE = "worker-write-token-0001"
ROUTER_WRITE = "router-write-token-0001"
ROUTER_READ = "router-read-token-0001"
SECRETS = (READ, WRITE, ROUTER_WRITE, ROUTER_READ)
AUTH = {"required": "always", "tokens": [{"token": READ, "role": "read", "name": "dashboard"},
                                          {"token": WRITE, "role": "write", "name": "operator"}]}


class TokenRouter(RouterStandIn):
    """The stand-in, remembering the Authorization header of every attempt."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.authorization: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.authorization.append(request.headers.get("Authorization"))
        return await super().handle(request)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def single_pass(clip: Path, job_id: str = "cam1") -> dict[str, Any]:
    return {"id": job_id, "stream_url": str(clip), "single_pass": True}


async def finish(worker: Worker, job_id: str = "cam1") -> dict[str, Any]:
    cam = worker.manager.get(job_id)
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)
    return cam.view()["statistic"]


@pytest.mark.parametrize("method, path, token, status", [
    ("GET", "/jobs", None, 401),
    ("GET", "/jobs", "wrong-token-0123456789", 401),
    ("GET", "/jobs", READ, 200),
    ("GET", "/jobs", WRITE, 200),
    ("GET", "/metrics", None, 401),
    ("GET", "/metrics", READ, 200),
    ("GET", "/healthz", None, 200),
    ("GET", "/job/none", READ, 404),
    ("POST", "/job/cam2", None, 401),
    ("POST", "/job/cam2", READ, 403),
    ("DELETE", "/job/cam1", READ, 403),
    ("POST", "/job/cam1/restart", READ, 403),
])
async def test_job_api_tokens(start_worker, tmp_path, router, people_clip, caplog,
                              method: str, path: str, token: str | None, status: int) -> None:
    caplog.set_level(logging.DEBUG)
    worker = await start_worker(worker_config(tmp_path, router.url, [single_pass(people_clip[0])], auth=AUTH))
    kw: dict[str, Any] = {"headers": bearer(token)}
    if method == "POST" and not path.endswith("restart"):
        kw["json"] = {"stream_url": str(people_clip[0]), "single_pass": True}
    got, body = await api(worker, method, path, **kw)
    assert got == status, body
    if status in (401, 403):
        assert body["code"] == ("UNAUTHORIZED" if status == 401 else "FORBIDDEN") and body["desc"]
    assert not any(s in caplog.text for s in SECRETS)


async def test_write_token_manages_jobs(start_worker, tmp_path, router, people_clip, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    worker = await start_worker(worker_config(tmp_path, router.url, auth=AUTH))
    job = {"stream_url": str(people_clip[0]), "single_pass": True}
    status, body = await api(worker, "POST", "/job/cam1", json=job, headers=bearer(WRITE))
    assert status == 201 and body["id"] == "cam1"
    await finish(worker)
    status, body = await api(worker, "GET", "/job/cam1", headers=bearer(READ))
    assert status == 200 and body["statistic"]["faces_posted"] == 4
    status, _ = await api(worker, "DELETE", "/job/cam1", headers=bearer(WRITE))
    assert status == 204
    assert not any(s in caplog.text for s in SECRETS)


async def test_api_is_open_on_loopback_by_default(start_worker, tmp_path, router) -> None:
    worker = await start_worker(worker_config(tmp_path, router.url))
    assert (await api(worker, "GET", "/jobs"))[0] == 200


async def test_router_token_on_every_frame(start_worker, tmp_path, people_clip, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    stand_in = TokenRouter(free_port())
    await stand_in.start()
    try:
        worker = await start_worker(worker_config(tmp_path, stand_in.url, [single_pass(people_clip[0])],
                                                  router_token=ROUTER_WRITE))
        await finish(worker)
    finally:
        await stand_in.stop()
    assert len(stand_in.posts) == 4
    assert stand_in.authorization == [f"Bearer {ROUTER_WRITE}"] * 4
    assert ROUTER_WRITE not in repr(worker.cfg) and ROUTER_WRITE not in caplog.text
    # the token travels in the header only: never in a post (nor, so, in the spool)
    assert not any(ROUTER_WRITE.encode() in (v if isinstance(v, bytes) else str(v).encode())
                   for p in stand_in.posts for v in p.values())


async def test_no_router_token_sends_no_header(start_worker, tmp_path, people_clip) -> None:
    stand_in = TokenRouter(free_port())
    await stand_in.start()
    try:
        worker = await start_worker(worker_config(tmp_path, stand_in.url, [single_pass(people_clip[0])]))
        await finish(worker)
    finally:
        await stand_in.stop()
    assert stand_in.authorization == [None] * 4


ROUTER_AUTH = {"required": "always", "tokens": [{"token": ROUTER_READ, "role": "read"},
                                                 {"token": ROUTER_WRITE, "role": "write"}]}
COUNTER = """
from facerouter.plugin import Plugin

class Counter(Plugin):
    def __init__(self, ctx):
        super().__init__(ctx)
        self.frames = 0

    async def preprocess(self, request, labels):
        return ("facen",)

    async def process(self, request, photo, bbox, event_id, detection):
        self.frames += 1
"""


@pytest.mark.parametrize("token, posted", [(ROUTER_WRITE, 4), (ROUTER_READ, 0), (None, 0)])
async def test_real_router_with_auth(start_worker, start_router, fake_sfapi, tmp_path, people_clip, caplog,
                                     token: str | None, posted: int) -> None:
    caplog.set_level(logging.DEBUG)
    r = await start_router({"counter": COUNTER}, {"auth": ROUTER_AUTH}, sfapi_url=fake_sfapi.base)
    worker = await start_worker(worker_config(tmp_path, r.base, [single_pass(people_clip[0])], router_token=token))
    if posted:
        stats = await finish(worker)
        assert (stats["faces_posted"], stats["posts_rejected"], stats["posts_spooled"]) == (posted, 0, 0)
    else:
        # 401/403 are the operator's mistake, not the faces': the posts are kept (spooled) and retried,
        # never counted as rejected, and the job says why (issue 14 #4)
        cam = worker.manager.get("cam1")
        await asyncio.wait_for(cam.finished.wait(), 60)
        await wait_for(lambda: cam.view()["status"] == "unauthorized" and cam.outbox.pending == 4)
        stats = cam.view()["statistic"]
        assert stats["faces_posted"] == 0 and stats["posts_rejected"] == 0 and stats["posts_failed"] >= 1
    assert r.router.registry["counter"].obj.frames == posted
    assert not any(s in caplog.text for s in SECRETS)


# --- start-up ----------------------------------------------------------------------------------------

async def test_off_loopback_without_tokens_refuses_to_start(tmp_path, router, detector) -> None:
    cfg = worker_config(tmp_path, router.url)
    worker = Worker(cfg, detector=detector)
    with pytest.raises(ConfigError, match="video-worker must check API tokens .*binds to 0.0.0.0"):
        await worker.start(host="0.0.0.0", port=0)
    assert worker.manager is None  # failed before starting anything
    with pytest.raises(ConfigError, match="auth.required is always"):
        authenticator(worker_config(tmp_path, router.url, auth={"required": "always"}))
    assert authenticator(worker_config(tmp_path, router.url, host="0.0.0.0", auth=AUTH | {"required": "auto"})).enabled
    assert not authenticator(worker_config(tmp_path, router.url, host="0.0.0.0", auth={"required": "never"})).enabled


@pytest.mark.parametrize("check", [True, False])
def test_cli_fails_clearly_without_tokens(tmp_path, capsys, check: bool) -> None:
    path = tmp_path / "vw.yaml"
    path.write_text(yaml.safe_dump({"host": "0.0.0.0", "state_dir": str(tmp_path / "state")}))
    with pytest.raises(ConfigError, match="must check API tokens"):
        load(path)
    rc = cli.main(["--config", str(path), *(["--check-config"] if check else [])])
    err = capsys.readouterr().err
    assert rc != 0
    assert "video-worker must check API tokens (it binds to 0.0.0.0, not loopback)" in err
    assert "Traceback" not in err


def test_cli_check_config_with_tokens(tmp_path, capsys) -> None:
    path = tmp_path / "vw.yaml"
    path.write_text(yaml.safe_dump({"host": "0.0.0.0", "router_token": ROUTER_WRITE, "auth": AUTH}))
    assert cli.main(["--config", str(path), "--check-config"]) == 0
    out = capsys.readouterr()
    assert "config OK" in out.out and not any(s in out.out + out.err for s in SECRETS)


async def test_tokens_on_loopback_guard_writes_by_default(start_worker, tmp_path, router) -> None:
    """required: auto on loopback: with tokens configured, POST/DELETE need a write token; reads
    stay open."""
    auth = {"tokens": AUTH["tokens"]}
    worker = await start_worker(worker_config(tmp_path, router.url, auth=auth))
    job = {"stream_url": "rtsp://10.0.0.1/x"}
    assert (await api(worker, "POST", "/job/x", json=job))[0] == 401
    assert (await api(worker, "POST", "/job/x", json=job, headers=bearer(READ)))[0] == 403
    assert (await api(worker, "DELETE", "/job/x"))[0] == 401
    assert (await api(worker, "GET", "/jobs"))[0] == 200
    assert (await api(worker, "GET", "/metrics"))[0] == 200
    status, body = await api(worker, "POST", "/job/x", json={"stream_url": "/etc/passwd"},
                             headers=bearer(WRITE))
    assert status == 400 and body["param"] == "stream_url"  # past the token, the policy refuses it
