from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from sfapi.config import SfapiConfig
from sfapi.configfile import validate
from sfapi.engines.analyzer import FaceAnalyzer
from sfapi.engines.runtime import create_runtime


@pytest.fixture(scope="session")
def analyzer(models_dir: Path) -> FaceAnalyzer:
    cfg = SfapiConfig()
    an = FaceAnalyzer(models_dir, cfg, create_runtime("onnxruntime", 1))
    yield an
    an.close()


class Server:
    def __init__(self, base: str, http: aiohttp.ClientSession, app: web.Application) -> None:
        self.base = base
        self.http = http
        self.app = app

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        async with self.http.request(method, self.base + path, **kw) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body, resp.headers


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server(analyzer: FaceAnalyzer, models_dir: Path, tmp_path: Path) -> AsyncIterator[StartServer]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(overrides: dict[str, Any] | None = None, an: Any = None) -> Server:
        from sfapi.server.app import create_app

        data: dict[str, Any] = {"models": {"dir": str(models_dir)},
                                "gallery": {"path": str(tmp_path / f"galleries-{len(runners)}.db"), "synchronous": "NORMAL"}}
        data.update(overrides or {})
        cfg = validate(SfapiConfig, data, "<test>")
        app = create_app(cfg, analyzer=an or analyzer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runners.append(runner)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Server(f"http://127.0.0.1:{port}", http, app)

    yield start
    for s in sessions:
        await s.close()
    for r in reversed(runners):
        await r.cleanup()


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()
