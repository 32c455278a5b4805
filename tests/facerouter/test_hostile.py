"""Hostile input at facerouter's edge (issue 14): every refusal is a 4xx JSON, never a 500 or an
empty body, and an auth failure upstream is a retryable 5xx, not a rejection of the face."""
from __future__ import annotations

import io
from typing import Any

import pytest

from tests.facerouter.conftest import PHOTO, frame_parts, jpeg, multipart
from tests.facerouter.test_router import RECORDER

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("part, value", [
    ("bbox", DEEP),
    ("labels", DEEP),
    ("detectorParams", DEEP),
    ("detectorParams", '{"a": ' * 50 + "1" + "}" * 50),
    ("detectorParams", '{"score": NaN}'),
    ("labels", '{"a": Infinity}'),
])
async def test_nested_or_nonstandard_json_parts_are_400(start_router, fake_sfapi, part: str,
                                                        value: str) -> None:
    """#6: deeply nested JSON parts answered 500 (RecursionError)."""
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(**{part: value}))
    assert status == 400, body
    assert body["code"] == "BAD_PARAM" and body["param"] == part
    assert fake_sfapi.detects == []


@pytest.mark.parametrize("bbox", [
    "[[-5000, -5000, -4000, -4000]]",       # outside the photo
    "[[0, 0, 1e308, 1e308]]",                # huge: face_size would be infinite
    "[[400, 10, 500, 100]]",                 # right of a 320x240 photo
    "[[10, 250, 100, 300]]",                 # below it
    "[[-400, 10, 100, 100]]",                # more than a photo width past the border
    "[[0, 0, 1e400, 10]]",                   # 1e400 is Infinity
])
async def test_bbox_must_lie_on_the_photo(start_router, fake_sfapi, bbox: str) -> None:
    """#7: bbox was not checked against the image."""
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(bbox=bbox))
    assert status == 400 and body["param"] == "bbox", body


@pytest.mark.parametrize("bbox", ["[[0, 0, 320, 240]]", "[[-20, -10, 60, 50]]",
                                  "[[300, 200, 400, 300]]"])
async def test_bbox_on_or_cut_by_the_border_is_fine(start_router, fake_sfapi, bbox: str) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(bbox=bbox))
    assert status == 200, body


@pytest.mark.parametrize("face0", [jpeg(1, 1), jpeg(8, 200), b"\xff\xd8" + b"\x00" * 40])
async def test_tiny_or_unreadable_face0_is_400_not_503(start_router, fake_sfapi,
                                                       face0: bytes) -> None:
    """#8: a 1x1 face0 became 503 (sfapi's 500), which the worker retried forever."""
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(face0=face0))
    assert status == 400 and body["param"] == "face0", body
    assert fake_sfapi.detects == []


@pytest.mark.parametrize("code, status", [("UNAUTHORIZED", 401), ("FORBIDDEN", 403)])
async def test_sfapi_refusing_the_token_is_a_retryable_502(start_router, fake_sfapi, code: str,
                                                           status: int) -> None:
    """#4: sfapi's UNAUTHORIZED became a 400, which the worker dropped as a bad face."""
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    fake_sfapi.fail = (status, code)
    got, body = await r.post_frame()
    assert got == 502 and body["code"] == "SFAPI_UNAUTHORIZED", body
    assert "sfapi_token" in body["reason"]
    fake_sfapi.fail = None
    got, body = await r.post_frame()
    assert got == 200


async def test_oversized_upload_is_413_json(start_router, fake_sfapi) -> None:
    """#12: a 25 MB upload got an empty 400."""
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    body, ctype = multipart(frame_parts(photo=PHOTO + b"\x00" * (25 * 1024 * 1024)))
    async with r.http.post(r.base + "/v0/frame", data=io.BytesIO(body),
                           headers={"Content-Type": ctype, "Content-Length": str(len(body))}) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/json"
        answer = await resp.json()
    assert answer["code"] == "PAYLOAD_TOO_LARGE"
    status, _ = await r.post_frame()  # the router is fine afterwards
    assert status == 200


@pytest.mark.parametrize("method, path, allow", [
    ("GET", "/v0/frame", "POST"),
    ("PUT", "/v0/frame", "POST"),
    ("DELETE", "/healthz", "GET"),
    ("POST", "/metrics", "GET"),
])
async def test_405_is_json_with_allow(start_router, fake_sfapi, method: str, path: str,
                                      allow: str) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    async with r.http.request(method, r.base + path) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == allow
        assert (await resp.json())["code"] == "METHOD_NOT_ALLOWED"


async def test_unknown_path_is_404_json(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    async with r.http.get(r.base + "/nowhere") as resp:
        assert resp.status == 404 and (await resp.json())["code"] == "NOT_FOUND"


@pytest.mark.parametrize("key", ["", "x" * 201, "bad key", "ключ"])
async def test_malformed_idempotency_key_is_400(start_router, fake_sfapi, key: str) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    body, ctype = multipart(frame_parts())
    headers: dict[str, Any] = {"Content-Type": ctype, "Idempotency-Key": key}
    async with r.http.post(r.base + "/v0/frame", data=body, headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["param"] == "Idempotency-Key"


@pytest.mark.parametrize("query", ["offset=104981877037594440908224545800662810624",
                                   "offset=9223372036854775808", "limit=99999999999999999999999"])
async def test_persons_paging_past_sqlite_integers_is_400(start_router, fake_sfapi, tmp_path,
                                                          query: str) -> None:
    """Found by the longer fuzz run: an offset past 2**63 answered 500 (SQLite OverflowError)."""
    from tests.facerouter.test_fuzz import REPO
    section = {"enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
               "images_dir": str(tmp_path / "images")}
    r = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                   "disabled_plugins": ["archive", "webhook", "log"],
                                   "persons": section}, sfapi_url=fake_sfapi.base)
    for path in ("/v1/persons", "/v1/entries", "/v1/sources"):
        async with r.http.get(f"{r.base}{path}?{query}") as resp:
            assert resp.status == 400, (path, await resp.text())
            assert (await resp.json())["param"] in ("offset", "limit")
