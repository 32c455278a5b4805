"""Fixtures of the video worker tests: generated clips, the shared detector, a facerouter
stand-in on loopback, and a worker factory. The real facerouter and sfapi fixtures come from
tests/conftest.py and tests/facerouter/conftest.py."""
from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from sfapi.configfile import validate
from tests.facerouter.conftest import fake_sfapi, start_router  # noqa: F401 - fixtures reused
from video_worker import clips
from video_worker.app import Worker
from video_worker.config import ModelsSection, DetectorSection, WorkerConfig
from video_worker.detector import SharedDetector


@pytest.fixture(scope="session")
def detector(models_dir: Path) -> SharedDetector:
    """One detector for the whole session (as one worker shares it between its cameras)."""
    det = SharedDetector(ModelsSection(dir=models_dir), DetectorSection(threads=2))
    yield det
    det.close()


@pytest.fixture(scope="session")
def patches(detector: SharedDetector, data_dir: Path) -> dict[str, Any]:
    view = detector.detector_for(40, 480, 640)
    scene = clips.people_scene()
    return clips.face_patches(view, {k: data_dir / v for k, v in clips.PHOTOS.items()}, scene.patch)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def people_clip(patches: dict[str, Any], clip_dir: Path) -> tuple[Path, clips.Scene]:
    """4 s of 640x360 at 25 fps, H.264: obama (1 track), biden (leaves and comes back: 2), kit (1)."""
    scene = clips.people_scene()
    return clips.encode(scene, patches, clip_dir / "people.mp4"), scene


# --- a facerouter stand-in -------------------------------------------------------------------------

@dataclass
class RouterStandIn:
    """Records every frame posted; ``status`` answers (200, 503 ...); ``stop``/``start`` the port."""

    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    status: int = 200
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        form = await request.post()
        if self.status != 200:
            return web.json_response({"code": "OVER_CAPACITY", "reason": "stand-in"}, status=self.status,
                                     headers={"Retry-After": "0"})
        post: dict[str, Any] = {}
        for name, value in form.items():
            post[name] = value.file.read() if hasattr(value, "file") else value
        post["detectorParams"] = json.loads(post["detectorParams"])
        post["bbox"] = json.loads(post["bbox"])
        post["labels"] = json.loads(post["labels"])
        self.posts.append(post)
        return web.json_response({"event_id": str(len(self.posts)), "failed_plugins": [], "processed": []})

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v0/frame", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def router() -> AsyncIterator[RouterStandIn]:
    r = RouterStandIn(free_port())
    await r.start()
    yield r
    await r.stop()


# --- workers ---------------------------------------------------------------------------------------

StartWorker = Callable[..., Any]

#: fast test defaults: small faces allowed, quick retries
TEST_DEFAULTS = {"filter_min_size": 40, "detect_fps": 5}


def worker_config(tmp_path: Path, router_url: str, jobs: list[dict[str, Any]] | None = None,
                  **overrides: Any) -> WorkerConfig:
    data: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"), "router_url": router_url,
        "delivery": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 5},
        "source": {"reconnect_backoff_initial_s": 0.2, "reconnect_backoff_max_s": 1.0,
                   "read_timeout_s": 3, "open_timeout_s": 5},
        "defaults": dict(TEST_DEFAULTS), "jobs": jobs or [],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return validate(WorkerConfig, data, "<test>")


@pytest.fixture
async def start_worker(detector: SharedDetector) -> AsyncIterator[StartWorker]:
    workers: list[Worker] = []

    async def start(cfg: WorkerConfig, serve: bool = True) -> Worker:
        worker = Worker(cfg, detector=detector)
        await worker.start(port=0, serve=serve)
        workers.append(worker)
        return worker

    yield start
    for w in reversed(workers):
        if not w.stopping:
            await w.shutdown()


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


async def api(worker: Worker, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"http://127.0.0.1:{worker.port}{path}", **kw) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text and resp.content_type == "application/json" else text)


@pytest.fixture(scope="session")
def long_clip(patches: dict[str, Any], clip_dir: Path) -> Path:
    """The people scene played 5 times (20 s), with a key frame every second (RTSP tests)."""
    scene = clips.people_scene()
    return clips.encode(scene, patches, clip_dir / "people-20s.mp4", loops=5, gop=scene.fps)
