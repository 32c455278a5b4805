"""Integration tests: the real sfapi app on a loopback port, real models, real photos, over HTTP."""
from __future__ import annotations

import asyncio
import base64
import io
import threading
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from facestack.vision.engines import align
from facestack.stack.sample_data import EXPECTED_FACES
from tests.sfapi.server.schema_check import check_response
from tests.sfapi.test_images import huge_png_header

ALL = "facen=true&gender=true&age=true&emotions=true"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    import sfapi
    from sfapi.server.openapi import build_spec
    return build_spec(sfapi.__version__)


async def test_every_photo_detected_with_all_features(server, data_dir: Path, spec) -> None:
    photos = sorted(data_dir.glob("faces/*/*")) + sorted(data_dir.glob("scenes/*"))
    for photo in photos:
        status, body, _ = await server.call("POST", f"/v2/detect?{ALL}&return_facen=true", data=photo.read_bytes())
        assert status == 200, (photo, body)
        check_response(spec, "/v2/detect", "post", 200, body)
        expected = EXPECTED_FACES[photo.name] if photo.parent.name == "scenes" else 1
        assert len(body["faces"]) == expected, photo
        for face in body["faces"]:
            vec = np.frombuffer(base64.b64decode(face["facen"]), "<f4")
            assert vec.shape == (128,) and abs(np.linalg.norm(vec) - 1) < 1e-4
            assert len(face["features"]["emotions"]) == 7 and face["id"]


async def test_multipart_and_cached_detection_and_verify(server, data_dir: Path, spec) -> None:
    form = aiohttp.FormData()
    form.add_field("photo", (data_dir / "faces/obama/img1.jpg").read_bytes(), filename="a.jpg", content_type="image/jpeg")
    status, a, _ = await server.call("POST", "/v2/detect?facen=1", data=form)
    assert status == 200 and len(a["faces"]) == 1
    status, b, _ = await server.call("POST", "/v2/detect?facen=1", data=(data_dir / "faces/obama/img2.jpg").read_bytes())
    status, c, _ = await server.call("POST", "/v2/detect?facen=1", data=(data_dir / "faces/biden/img1.jpg").read_bytes())
    a_id, b_id, c_id = a["faces"][0]["id"], b["faces"][0]["id"], c["faces"][0]["id"]
    status, cached, _ = await server.call("GET", f"/v2/detect/{a_id}")
    assert status == 200 and cached["bbox"] == a["faces"][0]["bbox"]
    check_response(spec, "/v2/detect/{id}", "get", 200, cached)
    status, same, _ = await server.call("POST", "/v2/verify", json={"first": a_id, "second": b_id})
    assert status == 200
    check_response(spec, "/v2/verify", "post", 200, same)
    status, diff, _ = await server.call("GET", f"/v2/verify?first={a_id}&second={c_id}")
    assert same["match"] and not diff["match"]
    assert same["confidence"] > same["threshold"] > diff["confidence"]
    status, body, _ = await server.call("GET", "/v2/detect/doesnotexist")
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, body, _ = await server.call("POST", "/v2/verify", json={"first": a_id})
    assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == "second"


def _png(size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, "PNG")
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize("path, data, status, code, param", [
    ("/v2/detect", b"", 400, "MALFORMED_REQUEST", None),
    ("/v2/detect", b"just some text, not an image", 400, "BAD_PARAM", "image"),
    ("/v2/detect", _gif(), 400, "BAD_PARAM", "image"),
    ("/v2/detect", huge_png_header(30000, 30000), 413, "BAD_PARAM", "image"),
    ("/v2/detect?facen=maybe", _png(), 400, "BAD_PARAM", "facen"),
    ("/v2/detect?detector=magic", _png(), 400, "BAD_PARAM", "detector"),
    ("/v2/detect?colour=1", _png(), 400, "BAD_PARAM", "colour"),
])
async def test_bad_inputs_get_clear_4xx(server, spec, path: str, data: bytes, status: int, code: str,
                                        param: str | None) -> None:
    got, body, headers = await server.call("POST", path, data=data)
    assert got == status, body
    assert body["code"] == code and body["reason"]
    if param:
        assert body["param"] == param
    check_response(spec, "/v2/detect", "post", status, body)
    assert headers["X-Request-Id"]


async def test_truncated_jpeg(server, data_dir: Path) -> None:
    data = (data_dir / "faces/obama/img1.jpg").read_bytes()
    status, body, _ = await server.call("POST", "/v2/detect", data=data[: len(data) // 3])
    assert status == 400 and body["code"] == "BAD_PARAM" and "truncated" in body["reason"]


async def test_body_over_byte_limit(start_server) -> None:
    srv = await start_server({"limits": {"max_image_bytes": 2048}})
    status, body, _ = await srv.call("POST", "/v2/detect", data=b"\xff\xd8\xff" + b"0" * 200_000)
    assert status == 413 and body["code"] == "BAD_PARAM"


async def test_urls(start_server, local_http, data_dir: Path) -> None:
    photo = (data_dir / "faces/obama/img1.jpg").read_bytes()
    release = asyncio.Event()

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=photo, content_type="image/jpeg")

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    origin = web.Application()
    origin.router.add_get("/a.jpg", image)
    origin.router.add_get("/hang", hang)
    base = await local_http(origin)
    try:
        srv = await start_server({"limits": {"url_timeout_s": 0.5}, "url_fetch": {"allow": ["127.0.0.1/32"]}})
        status, body, _ = await srv.call("POST", "/v2/detect", json={"url": f"{base}/a.jpg"})
        assert status == 200 and len(body["faces"]) == 1
        status, body, _ = await srv.call("POST", "/v2/detect", json={"url": f"{base}/hang"})
        assert status == 400 and body["param"] == "url" and "longer than" in body["reason"]
        status, body, _ = await srv.call("POST", "/v2/detect", json={"url": "file:///etc/passwd"})
        assert status == 400 and body["param"] == "url"
        status, body, _ = await srv.call("POST", "/v2/detect", json={"url": f"{base}/missing"})
        assert status == 400 and "404" in body["reason"]
    finally:
        release.set()


async def test_normalized_detector_matches_full_detection(server, analyzer, data_dir: Path) -> None:
    photo = (data_dir / "faces/obama/img2.jpg").read_bytes()
    status, full, _ = await server.call("POST", "/v2/detect?facen=1&return_facen=1", data=photo)
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    lm = np.asarray(full["faces"][0]["landmarks"], np.float32)
    chip = align.extract_chip(rgb, lm, 200, 0.4)
    buf = io.BytesIO()
    Image.fromarray(chip).save(buf, "JPEG", quality=95)
    status, norm, _ = await server.call("POST", "/v2/detect?detector=normalized&facen=1&return_facen=1&gender=1",
                                        data=buf.getvalue())
    assert status == 200 and len(norm["faces"]) == 1
    a = np.frombuffer(base64.b64decode(full["faces"][0]["facen"]), "<f4")
    b = np.frombuffer(base64.b64decode(norm["faces"][0]["facen"]), "<f4")
    assert float(a @ b) > 0.97
    assert norm["faces"][0]["features"]["gender"]["gender"] == "male"


async def test_autorotate_finds_turned_faces(server, data_dir: Path) -> None:
    img = Image.open(data_dir / "faces/obama/img1.jpg").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    status, plain, _ = await server.call("POST", "/v2/detect", data=buf.getvalue())
    status, rotated, _ = await server.call("POST", "/v2/detect?autorotate=true&facen=1", data=buf.getvalue())
    assert status == 200
    turned = [f for f in rotated["faces"] if f["rotation"] != 0]
    assert turned, rotated
    w, h = img.size
    for f in rotated["faces"]:
        b = f["bbox"]
        assert 0 <= b["left"] < b["right"] <= w and 0 <= b["top"] < b["bottom"] <= h


async def test_service_endpoints_and_request_id(server) -> None:
    status, body, headers = await server.call("GET", "/healthz", headers={"X-Request-Id": "abc-123"})
    assert status == 200 and body["status"] == "ok" and headers["X-Request-Id"] == "abc-123"
    status, body, _ = await server.call("GET", "/v2/version")
    assert status == 200 and body["models"]["facen"]
    status, spec, _ = await server.call("GET", "/docs/spec")
    assert status == 200 and "/v2/detect" in spec["paths"]
    await server.call("POST", "/v2/detect", data=_png())
    async with server.http.get(server.base + "/metrics") as resp:
        text = await resp.text()
    assert "sfapi_requests_total" in text and "sfapi_batch_size" in text
    status, body, _ = await server.call("GET", "/nope")
    assert status == 404 and body["code"] == "NOT_FOUND"


class _BlockingAnalyzer:
    """Wraps the real analyzer; detect waits until released, to fill the server deterministically."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def detect(self, rgb: np.ndarray, autorotate: bool = False) -> Any:
        self.entered.release()
        self.release.wait(10)
        return self._inner.detect(rgb, autorotate)


async def test_over_capacity_answers_503(start_server, analyzer, data_dir: Path) -> None:
    blocking = _BlockingAnalyzer(analyzer)
    srv = await start_server({"batching": {"max_pending_requests": 2}}, an=blocking)
    photo = (data_dir / "faces/obama/img1.jpg").read_bytes()
    first = [asyncio.create_task(srv.call("POST", "/v2/detect", data=photo)) for _ in range(2)]
    for _ in range(2):
        await asyncio.get_running_loop().run_in_executor(None, blocking.entered.acquire)
    status, body, _ = await srv.call("POST", "/v2/detect", data=photo)
    assert status == 503 and body["code"] == "OVER_CAPACITY"
    blocking.release.set()
    results = await asyncio.gather(*first)
    assert all(r[0] == 200 for r in results)
