"""Shared fixtures: the real model pack, the sample photos, a real sfapi server on loopback."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from sfapi.config import SfapiConfig, default_models_dir
from facestack.core.configfile import validate
from facestack.vision.engines.analyzer import FaceAnalyzer
from facestack.vision.engines.runtime import create_runtime
from facestack.stack.sample_data import default_data_dir, ensure_sample_data

# milvus-lite's in-process gRPC logs keepalive chatter ("too_many_pings") to stderr; keep the test
# output readable (set before anything imports grpc)
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

REPO = Path(__file__).resolve().parents[1]
#: The sample photos the suite runs on (`make test` fetches them before pytest starts).
DATA = default_data_dir()
#: The model pack the suite runs on (`make test` builds it before pytest starts).
PACK_DIR = Path(os.environ.get("SFAPI_MODELS_DIR") or default_models_dir())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests unless tensorrt and pycuda import and CUDA sees a device."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    from facestack.vision.engines.tensorrt import probe_gpu_stack

    stack = probe_gpu_stack()
    if stack.ok:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT and pycuda: " + "; ".join(stack.problems))
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real model pack (built by `make test` before pytest; built here if missing)."""
    from facestack.vision.models.pack import ensure_pack

    ensure_pack(PACK_DIR)
    return PACK_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The sample photos (fetched by `make test` before pytest; fetched here if missing)."""
    return ensure_sample_data(DATA)


@pytest.fixture(scope="session")
def raw_models_dir(models_dir: Path) -> Path:
    """The original (non-ONNX) model files the pack keeps for reference checks."""
    return models_dir / "sources"


# --- a real sfapi service on loopback (tests of sfapi, its client, facerouter) ---

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

    async def start(overrides: dict[str, Any] | None = None, an: Any = None, resolver: Any = None) -> Server:
        from sfapi.server.app import create_app
        from sfapi.netpolicy import StubResolver
        from sfapi.server.httpd import JsonAppRunner

        data: dict[str, Any] = {"models": {"dir": str(models_dir)},
                                "gallery": {"path": str(tmp_path / f"galleries-{len(runners)}.db"), "synchronous": "NORMAL"}}
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        cfg = validate(SfapiConfig, data, "<test>")
        # names in image URLs resolve through a stub (empty unless the test gives one): no DNS in tests
        app = create_app(cfg, analyzer=an or analyzer, resolver=resolver if resolver is not None else StubResolver())
        runner = JsonAppRunner(app)
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


LocalServer = Callable[[web.Application], Any]


class LocalServers:
    """aiohttp apps served on 127.0.0.1 port 0 (over TLS with ``ssl_context``); ``close`` stops them."""

    def __init__(self, ssl_context: Any = None) -> None:
        self._ssl = ssl_context
        self._runners: list[web.AppRunner] = []

    async def serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self._runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{port}"

    async def close(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


@pytest.fixture
async def local_http() -> AsyncIterator[LocalServer]:
    """Serve an aiohttp app on 127.0.0.1 port 0 (a webhook receiver, an image origin...); returns
    ``await local_http(app) -> "http://127.0.0.1:<port>"``; everything is cleaned up after the test."""
    servers = LocalServers()
    yield servers.serve
    await servers.close()
