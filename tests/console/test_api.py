"""The console's own routes refuse bad input with a clear 4xx (never a 500), and answer 503 when
what they depend on (sfapi, the video worker) is unreachable."""
from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from tests.facerouter.conftest import jpeg


def _form(parts: dict[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in parts.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.jpg", content_type="image/jpeg")
        else:
            form.add_field(name, value)
    return form


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", ["/ui/api/search", "/ui/api/persons"])
async def test_photo_routes_refuse_bad_uploads(start_router: Any, fake_sfapi: Any, path: str) -> None:
    r = await start_router(None, {}, sfapi_url=fake_sfapi.base)
    cases = [
        (None, {"Content-Type": "application/json"}, b"{}", "Content-Type"),
        (_form({"note": "x"}), None, None, "note"),
        (_form({"date_from": "x"}), None, None, "image"),
        (_form({"image": b"GIF89a not a photo"}), None, None, "image"),
    ]
    for form, headers, body, param in cases:
        async with r.http.post(r.base + path, data=form if form is not None else body,
                               headers=headers) as resp:
            answer = await resp.json()
            if path == "/ui/api/persons" and resp.status == 404:
                assert "persons plugin" in answer["reason"]   # no persons plugin in this router
                continue
            assert resp.status == 400, answer
            assert answer["param"] == param, answer


async def test_search_refuses_a_bad_time(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {}, sfapi_url=fake_sfapi.base)
    async with r.http.post(r.base + "/ui/api/search",
                           data=_form({"image": jpeg(), "date_from": "yesterday"})) as resp:
        answer = await resp.json()
    assert resp.status == 400 and answer["param"] == "date_from", answer


async def test_search_without_sfapi_is_503(start_router: Any) -> None:
    r = await start_router(None, {}, sfapi_url=f"http://127.0.0.1:{_dead_port()}")
    async with r.http.post(r.base + "/ui/api/search", data=_form({"image": jpeg()})) as resp:
        answer = await resp.json()
    assert resp.status == 503 and answer["code"] == "SFAPI_UNAVAILABLE", answer


async def test_cameras_without_a_worker(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {}, sfapi_url=fake_sfapi.base)
    async with r.http.get(r.base + "/ui/api/cameras") as resp:
        assert resp.status == 200 and (await resp.json()) == {"configured": False, "jobs": []}
    async with r.http.post(r.base + "/ui/api/cameras/cam1", json={"stream_url": "x"}) as resp:
        assert resp.status == 404 and "worker_url" in (await resp.json())["reason"]
    dead = await start_router(None, {"console": {"worker_url": f"http://127.0.0.1:{_dead_port()}"}},
                              sfapi_url=fake_sfapi.base)
    async with dead.http.get(dead.base + "/ui/api/cameras") as resp:
        assert resp.status == 503 and (await resp.json())["code"] == "WORKER_UNAVAILABLE"
    async with dead.http.post(dead.base + "/ui/api/cameras/cam1", data=b"{not json",
                              headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "BAD_PARAM"


async def test_console_can_be_turned_off(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {"console": {"enabled": False}}, sfapi_url=fake_sfapi.base)
    for path in ("/ui/", "/v1/events/stream", "/ui/api/session"):
        async with r.http.get(r.base + path) as resp:
            assert resp.status == 404, path
