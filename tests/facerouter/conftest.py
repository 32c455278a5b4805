"""Fixtures of the facerouter tests: a fake sfapi on loopback, a real router, frame bodies."""
from __future__ import annotations

import asyncio
import io
import json
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
import tornado.netutil
import yaml
from aiohttp import web
from PIL import Image

from facerouter.app import Router
from facerouter.config import load

TS = "2024-05-01T12:30:00.250Z"


def jpeg(width: int = 64, height: int = 48, color: tuple[int, int, int] = (120, 90, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


PHOTO = jpeg(320, 240)
FACE0 = jpeg(200, 200)



def frame_parts(**overrides: Any) -> dict[str, Any]:
    """The parts of a valid frame; an override of None leaves the part out."""
    parts: dict[str, Any] = {
        "photo": PHOTO, "face0": FACE0, "bbox": "[[10, 20, 110, 140]]", "cam_id": "cam-1",
        "timestamp": TS, "detectorParams": json.dumps({"score": 0.99, "track": 7}),
        "bs_type": "overall", "labels": json.dumps({"site": "hq", "door": "front"}),
    }
    parts.update(overrides)
    return {k: v for k, v in parts.items() if v is not None}


def multipart(parts: dict[str, Any], boundary: str = "frameboundary42") -> tuple[bytes, str]:
    """Encode parts: bytes as file parts (with a filename), str as plain fields."""
    out = bytearray()
    for name, value in parts.items():
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, bytes):
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n").encode()
            out += value
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += str(value).encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


# --- a fake sfapi (only what the router and the built-in plugins call) ---------------------------

@dataclass
class FakeSfapi:
    base: str = ""
    detects: list[dict[str, str]] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # of every detect request
    #: (status, code) to answer detect with, or None for a normal answer
    fail: tuple[int, str] | None = None
    delay: float = 0.0
    faces: list[dict[str, Any]] | None = None  # override the detected faces

    def face(self, query: Any) -> dict[str, Any]:
        features: dict[str, Any] = {}
        if "gender" in query:
            features["gender"] = {"gender": "female", "score": 0.9}
        if "age" in query:
            features["age"] = 33
        if "emotions" in query:
            features["emotions"] = [{"emotion": "neutral", "score": 0.8}]
        return {"id": uuid.uuid4().hex if "facen" in query else None,
                "bbox": {"left": 40, "top": 40, "right": 160, "bottom": 160},
                "features": features, "detection_score": 0.99, "quality": 0.5}


@pytest.fixture
async def fake_sfapi() -> AsyncIterator[FakeSfapi]:
    state = FakeSfapi()

    async def detect(request: web.Request) -> web.Response:
        state.headers.append(dict(request.headers))
        state.detects.append(dict(request.query))
        state.images.append(await request.read())
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.fail is not None:
            status, code = state.fail
            return web.json_response({"code": code, "reason": "fake failure"}, status=status)
        faces = state.faces if state.faces is not None else [state.face(request.query)]
        return web.json_response({"orientation": 1, "faces": faces})

    async def anything(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        state.requests.append((request.method, request.path, body))
        if request.path.endswith("/search"):
            return web.json_response({"results": [], "next_page": None})
        if "/faces/" in request.path:
            gallery = request.match_info["tail"].split("/")[0]
            face = int(request.path.rsplit("/", 1)[1])
            return web.json_response({"id": {"gallery": gallery, "face": face}, "features": {},
                                      "meta": (body or {}).get("meta", {})})
        return web.json_response({"name": "x", "number": 0})

    app = web.Application()
    app.router.add_post("/v2/detect", detect)
    app.router.add_route("*", "/v2/galleries/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


# --- a real router on loopback -------------------------------------------------------------------

@dataclass
class RunningRouter:
    router: Router
    base: str
    http: aiohttp.ClientSession

    async def post_frame(self, parts: dict[str, Any] | None = None, *,
                         body: bytes | None = None, content_type: str | None = None
                         ) -> tuple[int, Any]:
        if body is None:
            body, content_type = multipart(frame_parts() if parts is None else parts)
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.http.post(self.base + "/v0/frame", data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path) as resp:
            return resp.status, await resp.text()


StartRouter = Callable[..., Any]


def write_plugins(directory: Path, plugins: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, code in plugins.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(code))
    return directory


@pytest.fixture
async def start_router(tmp_path: Path) -> AsyncIterator[StartRouter]:
    routers: list[Router] = []
    sessions: list[aiohttp.ClientSession] = []
    count = 0

    async def start(plugins: dict[str, str] | None = None, config: dict[str, Any] | None = None,
                    *, sfapi_url: str = "http://127.0.0.1:9") -> RunningRouter:
        nonlocal count
        count += 1
        data: dict[str, Any] = {"sfapi_url": sfapi_url, "plugin_timeout_s": 2.0,
                                "shutdown_timeout_s": 2.0, "drain_timeout_s": 5.0}
        if plugins is not None:
            data["plugin_dir"] = str(write_plugins(tmp_path / f"plugins{count}", plugins))
        data.update(config or {})
        path = tmp_path / f"facerouter{count}.yaml"
        path.write_text(yaml.safe_dump(data))
        router = Router(load(path))
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        await router.start(sockets)
        routers.append(router)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return RunningRouter(router, f"http://127.0.0.1:{router.ports[0]}", http)

    yield start
    for http in sessions:
        await http.close()
    for router in reversed(routers):
        await router.shutdown()
