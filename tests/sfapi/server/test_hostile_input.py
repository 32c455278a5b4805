"""Hostile and malformed input on the real server: every refusal is a 4xx with a JSON error body."""
from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from yarl import URL

from tests.sfapi.server.schema_check import check_response


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    import sfapi
    from sfapi.server.openapi import build_spec
    return build_spec(sfapi.__version__)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def _raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; return status, headers and body of the answer."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("feature", ["gender", "age", "emotions", "facen", "gender=1&age=1&emotions=1&facen"])
async def test_features_on_a_photo_without_faces(server, spec, feature: str) -> None:
    noise = np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    status, body, _ = await server.call("POST", f"/v2/detect?{feature}=1", data=_jpeg(noise))
    assert status == 200 and body["faces"] == [], body
    check_response(spec, "/v2/detect", "post", 200, body)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (31, 200)])
async def test_normalized_detector_on_a_tiny_image(server, spec, size) -> None:
    data = _png(Image.new("RGB", size, (90, 90, 90)))
    status, body, _ = await server.call("POST", "/v2/detect?detector=normalized&facen=1", data=data)
    assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == "image", body
    check_response(spec, "/v2/detect", "post", 400, body)


async def test_16_bit_greyscale_png_finds_the_face(server, data_dir: Path) -> None:
    grey = np.asarray(Image.open(data_dir / "faces/obama/img1.jpg").convert("L"), np.uint16) * 257
    data = _png(Image.fromarray(grey))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    status, body, _ = await server.call("POST", "/v2/detect", data=data)
    assert status == 200 and len(body["faces"]) == 1, body


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("method, path, ctype", [
    ("POST", "/v2/detect", "application/json"),
    ("POST", "/v2/verify", "application/json"),
    ("POST", "/v2/galleries/g", "application/json"),
    ("POST", "/v2/galleries/g/faces/1", "application/json"),
    ("PATCH", "/v2/galleries/g/faces/1", "application/json"),
    ("POST", "/v2/galleries/g/faces/search", "application/json"),
])
async def test_deeply_nested_json_is_a_400(server, method: str, path: str, ctype: str) -> None:
    status, body, _ = await server.call(method, path, data=DEEP, headers={"Content-Type": ctype})
    assert status == 400 and body["code"] == "MALFORMED_REQUEST" and body["reason"], body
    status, body, _ = await server.call(method, path, data=b'{"a": NaN}', headers={"Content-Type": ctype})
    assert status == 400 and body["code"] == "MALFORMED_REQUEST", body


async def test_json_body_over_the_limit_is_a_413(server) -> None:
    big = json.dumps({"filters": [], "page": "x" * (2 << 20)}).encode()
    status, body, _ = await server.call("POST", "/v2/galleries/g/faces/search", data=io.BytesIO(big),
                                        headers={"Content-Type": "application/json"})
    assert status == 413 and body["code"] == "BAD_PARAM" and body["param"] == "body", body


async def test_deeply_nested_page_cursor(server) -> None:
    import base64
    page = base64.urlsafe_b64encode(b"[" * 50_000).decode()
    await server.call("POST", "/v2/galleries/g")
    status, body, _ = await server.call("GET", f"/v2/galleries/g/faces?page={page[:6000]}")
    assert status == 400 and body["param"] == "page", body


async def test_malformed_multipart_part_header(server) -> None:
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"photo\"\r\nthis is no header\r\n\r\n"
            b"data\r\n--XyZ--\r\n")
    status, got, _ = await server.call("POST", "/v2/detect", data=body,
                                       headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert status == 400 and got["code"] == "MALFORMED_REQUEST", got


async def test_request_line_over_the_limit_is_json(server) -> None:
    status, headers, body = await _raw(server.base, b"GET /v2/detect/" + b"a" * 9000 + b" HTTP/1.1\r\n"
                                       b"Host: x\r\n\r\n")
    assert status in (400, 414) and headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "MALFORMED_REQUEST"
    status, headers, body = await _raw(server.base, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
    assert status in (400, 431) and json.loads(body)["code"] == "MALFORMED_REQUEST"
    status, headers, body = await _raw(server.base, b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and json.loads(body)["code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize("method, path", [
    ("PUT", "/v2/detect"), ("DELETE", "/v2/verify"), ("POST", "/v2/version"), ("PUT", "/v2/galleries"),
    ("GET", "/v2/galleries/g"), ("PUT", "/v2/galleries/g/faces/1"), ("PUT", "/v2/galleries/g/faces/search"),
    ("POST", "/healthz"), ("DELETE", "/docs/spec"), ("POST", "/metrics"),
])
async def test_405_has_allow_and_a_json_body(server, method: str, path: str) -> None:
    status, body, headers = await server.call(method, path)
    assert status == 405 and headers.get("Allow"), (status, headers)
    assert body["code"] and body["reason"], body
    assert method not in headers["Allow"].split(",")


async def test_413_for_an_oversized_body_is_json(start_server) -> None:
    srv = await start_server({"limits": {"max_image_bytes": 4096}})

    async def chunks():
        for _ in range(40):
            yield b"\xff" * 4096

    status, body, _ = await srv.call("POST", "/v2/detect", data=chunks())
    assert status == 413 and body["code"] == "BAD_PARAM" and body["param"] and "value" in body, body


@pytest.mark.parametrize("query, param", [
    ("facen=1&facen=zzz", "facen"), ("gender=1&gender=1", "gender"), ("detector=nnd&detector=normalized", "detector"),
])
async def test_repeated_scalar_parameters(server, query: str, param: str) -> None:
    status, body, _ = await server.call("POST", f"/v2/detect?{query}", data=_png(Image.new("RGB", (40, 40))))
    assert status == 400 and body["param"] == param, body


async def test_face_ids_are_ascii_digits_in_range(server) -> None:
    await server.call("POST", "/v2/galleries/g")
    for raw in ("%D9%A3", "%EF%BC%93", "+3", "3.0", "18446744073709551616", "-1", "0x3", "%203"):
        status, body, _ = await server.call("GET", f"/v2/galleries/g/faces/{raw}")
        assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == "id", (raw, body)
        status, body, _ = await server.call("DELETE", f"/v2/galleries/g/faces/{raw}")
        assert status == 400 and body["param"] == "id", (raw, body)
    status, body, _ = await server.call("GET", "/v2/galleries/g/faces/18446744073709551615")
    assert status == 404, body


@pytest.mark.parametrize("name", ["..", ".", "%2E%2E", "%2e", ".hidden", "a%2Fb", "%C3%A9", "x" * 65, "a%20b"])
async def test_gallery_names_follow_the_pattern(server, name: str) -> None:
    url = URL(f"{server.base}/v2/galleries/{name}", encoded=True)  # as sent, not normalized by the client
    async with server.http.post(url) as resp:
        status, body = resp.status, await resp.json()
    assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == "name", (name, body)
    status, body, _ = await server.call("GET", "/v2/galleries")
    assert all(g["name"] not in ("..", ".") for g in body["galleries"])


@pytest.mark.parametrize("search, param", [
    ({"limit": "5"}, "limit"), ({"limit": 5.5}, "limit"), ({"limit": 5.0}, "limit"), ({"limit": True}, "limit"),
    ({"ignore_errors": "yes"}, "ignore_errors"), ({"page": 5}, "page"), ({"sort": ["id"]}, "sort"),
    ({"filters": [{"field": "meta.age", "op": "gte", "value": 30.5}]}, "meta.age"),
    ({"filters": [{"field": "meta.age", "op": "gte", "value": "30"}]}, "meta.age"),
    ({"filters": [{"field": "meta.age", "op": "gte", "value": 2**70}]}, "meta.age"),
    ({"filters": [{"field": "id", "op": "gte", "value": "5"}]}, "filters[0]"),
    ({"filters": [{"field": "id", "op": "oneof", "value": [1, 2.5]}]}, "filters[0]"),
    ({"filters": [{"field": "face", "op": "looks_like", "value": {"gallery": "g", "face": 1}, "threshold": "0.5"}]},
     "threshold"),
])
async def test_search_body_types_are_strict(server, search: dict[str, Any], param: str) -> None:
    await server.call("POST", "/v2/galleries/people", json={"meta_schema": {"age": "int"}})
    status, body, _ = await server.call("POST", "/v2/galleries/people/faces/search", json=search)
    assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == param, body


@pytest.mark.parametrize("query, param", [
    ("limit=5&limit=6", "limit"), ("id.gte=1&id.gte=2", "id.gte"), ("limit=%D9%A3", "limit"),
    ("id.gte=%D9%A3", "id.gte"), ("meta.age.gte=%D9%A3", "meta.age"),
])
async def test_list_query_is_strict(server, query: str, param: str) -> None:
    await server.call("POST", "/v2/galleries/people", json={"meta_schema": {"age": "int"}})
    status, body, _ = await server.call("GET", f"/v2/galleries/people/faces?{query}")
    assert status == 400 and body["param"] == param, body
