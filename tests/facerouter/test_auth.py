"""API tokens on the router: the frame endpoint and plugin routes; the token sent on to sfapi."""
from __future__ import annotations

from tests.facerouter.conftest import frame_parts, multipart

READ = "router-read-token-0001"
WRITE = "router-write-token-0001"
SFAPI_TOKEN = "sfapi-token-for-router-01"

ROUTE_PLUGIN = '''
import tornado.web
from facerouter.plugin import Plugin

class Hello(tornado.web.RequestHandler):
    def get(self):
        self.finish({"hello": "world"})

class RoutePlugin(Plugin):
    async def preprocess(self, request, labels):
        return ("facen",)

    async def process(self, request, photo, bbox, event_id, detection):
        pass

def activate(app, ctx, plugin_name, plugin_source):
    app.add_handlers(r".*", [(r"/plugin/hello", Hello)])
    return RoutePlugin(ctx)
'''


async def test_tokens_cover_frames_and_plugin_routes(start_router, fake_sfapi) -> None:
    auth = {"required": "always", "tokens": [{"token": READ, "role": "read"}, {"token": WRITE, "role": "write"}]}
    r = await start_router({"routeplugin": ROUTE_PLUGIN}, {"auth": auth, "sfapi_token": SFAPI_TOKEN},
                           sfapi_url=fake_sfapi.base)
    body, ctype = multipart(frame_parts())

    async def post(token: str | None) -> int:
        headers = {"Content-Type": ctype}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with r.http.post(r.base + "/v0/frame", data=body, headers=headers) as resp:
            return resp.status

    async def get(path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with r.http.get(r.base + path, headers=headers) as resp:
            return resp.status

    assert await post(None) == 401
    assert await post("wrong-token-xxxxxxxxxx") == 401
    assert await post(READ) == 403
    assert await post(WRITE) == 200
    assert await get("/plugin/hello", None) == 401
    assert await get("/plugin/hello", READ) == 200
    assert await get("/healthz", None) == 200
    assert await get("/metrics", None) == 401
    assert any(h.get("Authorization") == f"Bearer {SFAPI_TOKEN}" for h in fake_sfapi.headers)


async def test_router_off_loopback_without_tokens_refuses_to_start(tmp_path) -> None:
    import pytest
    import yaml

    from facerouter.app import Router
    from facerouter.config import load
    from facestack.core.auth import AuthSetupError

    path = tmp_path / "fr.yaml"
    path.write_text(yaml.safe_dump({"host": "0.0.0.0"}))
    with pytest.raises(AuthSetupError, match="facerouter must check API tokens"):
        Router(load(path))


async def test_tokens_on_loopback_guard_writes_by_default(start_router, fake_sfapi) -> None:
    """required: auto on loopback: with any token configured, writes need a write token (reads stay
    open); without tokens nothing is checked."""
    auth = {"tokens": [{"token": READ, "role": "read"}, {"token": WRITE, "role": "write"}]}
    r = await start_router({"routeplugin": ROUTE_PLUGIN}, {"auth": auth}, sfapi_url=fake_sfapi.base)
    body, ctype = multipart(frame_parts())

    async def call(method: str, path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if method == "POST":
            headers["Content-Type"] = ctype
            data = body
        async with r.http.request(method, r.base + path, data=data, headers=headers) as resp:
            return resp.status

    assert await call("POST", "/v0/frame", None) == 401
    assert await call("POST", "/v0/frame", READ) == 403
    assert await call("POST", "/v0/frame", WRITE) == 200
    assert await call("GET", "/plugin/hello", None) == 200
    assert await call("GET", "/metrics", None) == 200
    open_router = await start_router({"routeplugin": ROUTE_PLUGIN}, sfapi_url=fake_sfapi.base)
    async with open_router.http.post(open_router.base + "/v0/frame", data=body,
                                     headers={"Content-Type": ctype}) as resp:
        assert resp.status == 200
