"""Fixtures of the video worker tests: generated clips, the shared detector, a facerouter
stand-in on loopback, and a worker factory. The real facerouter and sfapi fixtures come from
tests/conftest.py and tests/facerouter/conftest.py."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import av
import cv2
import numpy as np
import pytest
from aiohttp import web

from facestack.core.configfile import validate
from tests.conftest import LocalServers
from tests.facerouter.conftest import fake_sfapi, start_router  # noqa: F401 - fixtures reused
from facestack.stack import clips
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

async def read_form(request: web.Request) -> dict[str, Any]:
    """A multipart post's fields, file parts as bytes. Read part by part: ``request.post()`` spools
    file parts to temporary files that an upload cut off mid-way (a worker stopped while posting)
    leaves unclosed, and the garbage collector's warning then fails whichever test runs."""
    out: dict[str, Any] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        data = bytes(await part.read())
        out[part.name or ""] = data if part.filename else data.decode()
    return out


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
        post = await read_form(request)
        if self.status != 200:
            return web.json_response({"code": "OVER_CAPACITY", "reason": "stand-in"}, status=self.status,
                                     headers={"Retry-After": "0"})
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
                   "read_timeout_s": 3, "open_timeout_s": 5,
                   # API jobs may read the session's generated clips (pytest's base temp folder)
                   "allowed_file_roots": [str(tmp_path.parent)]},
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


# --- short clips for the per-camera settings (tests/video_worker/test_settings.py) -----------------

def encode_frames(frames: Any, fps: int, path: Path, gop: int | None = None) -> Path:
    """Encode RGB ``frames`` (an iterable of (h, w, 3) uint8, even sides) as an H.264 MP4 at ``fps``,
    the way :func:`facestack.stack.clips.encode` does, for clips that are not a plain scene."""
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = None
        for i, rgb in enumerate(frames):
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                stream.options = {"crf": "23", "preset": "veryfast", "bf": "0", "g": str(gop or fps * 2)}
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        assert stream is not None, "no frames"
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


@pytest.fixture(scope="session")
def short_scene() -> clips.Scene:
    """2 s of 640x360 at 25 fps, one track each: obama walks along the top row the whole clip,
    biden is bottom left for the first 1.2 s, kit comes in bottom right at 0.4 s and stays (the
    people scene's patches and speeds, cut short)."""
    return clips.Scene((640, 360), 25, 50, 140, (
        clips.Appearance("obama", 0, 50, (10, 10), (250, 10)),
        clips.Appearance("biden", 0, 30, (10, 210), (60, 210)),
        clips.Appearance("kit", 10, 50, (490, 210), (400, 210)),
    ))


@pytest.fixture(scope="session")
def short_clip(short_scene: clips.Scene, patches: dict[str, Any], clip_dir: Path) -> Path:
    return clips.encode(short_scene, patches, clip_dir / "people-2s.mp4")


@pytest.fixture(scope="session")
def rotated_clip(short_scene: clips.Scene, patches: dict[str, Any], clip_dir: Path) -> Callable[[int], Path]:
    """``rotated_clip(rot)``: the short clip with every frame turned ``rot`` degrees counter-clockwise,
    as a camera mounted on its side records it (the job's ``rot: <rot>`` turns it upright again)."""
    made: dict[int, Path] = {}

    def make(rot: int) -> Path:
        if rot not in made:
            frames = (np.ascontiguousarray(np.rot90(clips.render(short_scene, patches, i), rot // 90))
                      for i in range(short_scene.frames))
            made[rot] = encode_frames(frames, short_scene.fps, clip_dir / f"people-2s-rot{rot}.mp4")
        return made[rot]

    return make


#: the two people of :func:`sizes_clip`: a big face left of x = 320, a small one right of it
SIZES = {"big": ("obama", 200, (30, 80), (110, 80)), "small": ("kit", 96, (420, 130), (500, 130))}


@pytest.fixture(scope="session")
def sizes_clip(patches: dict[str, Any], clip_dir: Path) -> Path:
    """2 s of 640x360: a big face (~95 px, quality ~0.65) on the left, a small one (~46 px, quality
    ~0.25) on the right, both there the whole clip (one track each)."""
    faces = {name: cv2.resize(patches[person], (side, side), interpolation=cv2.INTER_AREA)
             for name, (person, side, _, _) in SIZES.items()}
    scene = clips.Scene((640, 360), 25, 50, 200, tuple(
        clips.Appearance(name, 0, 50, xy0, xy1) for name, (_, _, xy0, xy1) in SIZES.items()))
    return clips.encode(scene, faces, clip_dir / "sizes-2s.mp4")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def local_https(tls_files: tuple[Path, Path]) -> AsyncIterator[Callable[[web.Application], Any]]:
    """``local_http`` over TLS (self-signed): ``await local_https(app) -> "https://127.0.0.1:<port>"``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    servers = LocalServers(ctx)
    yield servers.serve
    await servers.close()


# --- clips of the motion gate (tests/video_worker/test_motion.py) ----------------------------------

@pytest.fixture(scope="session")
def walk_in_clip(patches: dict[str, Any], clip_dir: Path) -> tuple[Path, clips.Scene]:
    """14 s of 640x360: 3 s of nobody, obama walks in, stands still 1.6 s, walks out, 3 s of nobody."""
    scene = clips.walk_in_scene()
    return clips.encode(scene, patches, clip_dir / "walk-in-14s.mp4"), scene


@pytest.fixture(scope="session")
def still_clip(patches: dict[str, Any], clip_dir: Path) -> tuple[Path, clips.Scene]:
    """4 s of 640x360: nobody for 0.6 s, then obama appears in the middle and stands still to the end."""
    scene = clips.Scene((640, 360), 25, 100, 140, (clips.Appearance("obama", 15, 100, (250, 110), (250, 110)),))
    return clips.encode(scene, patches, clip_dir / "still-4s.mp4"), scene
