"""Galleries over raw HTTP on the real service: the query-string syntax, the JSON form, errors, spec."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sfapi.server.schema_check import check_response

SCHEMAS = {"people": {"age": "int", "camera": "string", "tags": "strings"}}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    import sfapi
    from sfapi.server.openapi import build_spec
    return build_spec(sfapi.__version__)


@pytest.fixture
async def srv(start_server):
    return await start_server({"gallery": {"schemas": SCHEMAS}})


async def _detect(srv, photo: Path) -> str:
    status, body, _ = await srv.call("POST", "/v2/detect?facen=1&gender=1", data=photo.read_bytes())
    assert status == 200, body
    return body["faces"][0]["id"]


async def test_gallery_lifecycle_and_listing(srv, spec) -> None:
    status, body, _ = await srv.call("POST", "/v2/galleries/people")
    assert status == 200 and body == {"name": "people", "number": 0}
    check_response(spec, "/v2/galleries/{name}", "post", 200, body)
    status, body, _ = await srv.call("POST", "/v2/galleries/people")
    assert status == 409 and body["code"] == "CONFLICT"
    status, body, _ = await srv.call("GET", "/v2/galleries")
    check_response(spec, "/v2/galleries", "get", 200, body)
    assert {"name": "people", "number": 0} in body["galleries"]
    status, body, _ = await srv.call("DELETE", "/v2/galleries/nothere")
    assert status == 404 and body["code"] == "GALLERY_NOT_FOUND"
    async with srv.http.delete(srv.base + "/v2/galleries/people") as resp:
        assert resp.status == 204


async def test_faces_query_string_and_json_forms(srv, data_dir: Path, spec) -> None:
    await srv.call("POST", "/v2/galleries/people")
    photos = {"obama": data_dir / "faces/obama/img1.jpg", "biden": data_dir / "faces/biden/img1.jpg",
              "cage": data_dir / "faces/nicolas_cage/img1.jpg", "woman": data_dir / "scenes/sample2.jpg"}
    metas = {"obama": {"age": 61, "camera": "a", "tags": ["vip", "us"]}, "biden": {"age": 80, "camera": "b", "tags": ["us"]},
             "cage": {"age": 36, "camera": "a", "tags": ["uk"]}, "woman": {"age": 36, "camera": "c", "tags": ["uk", "vip"]}}
    for i, (name, photo) in enumerate(photos.items(), start=1):
        det = await _detect(srv, photo)
        status, body, _ = await srv.call("POST", f"/v2/galleries/people/faces/{i}",
                                         json={"from": f"detection:{det}", "meta": metas[name]})
        assert status == 200, body
        check_response(spec, "/v2/galleries/{name}/faces/{id}", "post", 200, body)
        assert body["features"]["gender"]["gender"] in ("male", "female")

    async def ids(query: str) -> list[int]:
        status, body, _ = await srv.call("GET", f"/v2/galleries/people/faces?{query}")
        assert status == 200, body
        check_response(spec, "/v2/galleries/{name}/faces", "get", 200, body)
        return [r["id"]["face"] for r in body["results"]]

    assert await ids("") == [1, 2, 3, 4]
    assert await ids("sort=-id") == [4, 3, 2, 1]
    assert await ids("id.gte=2&id.lte=3") == [2, 3]
    assert await ids("id.oneof=1&id.oneof=4") == [1, 4]
    assert await ids("meta.age.gte=40") == [1, 2]
    assert await ids("meta.age.lte=36") == [3, 4]
    assert await ids("meta.camera.oneof=a&meta.camera.oneof=c") == [1, 3, 4]
    assert await ids("meta.camera.gte=b") == [2, 4]
    assert await ids("meta.tags.subset=uk&meta.tags.subset=vip") == [4]
    # look-alike of a new detection of obama, and of a stored face
    probe = await _detect(srv, data_dir / "faces/obama/img2.jpg")
    status, body, _ = await srv.call("GET", f"/v2/galleries/people/faces?looks_like=detection:{probe}&threshold=0.75")
    assert [r["id"]["face"] for r in body["results"]] == [1] and body["results"][0]["confidence"] >= 0.75
    status, body, _ = await srv.call("GET", "/v2/galleries/people/faces?looks_like=face:people/1&threshold=0")
    confs = [r["confidence"] for r in body["results"]]
    assert body["results"][0]["id"]["face"] == 1 and confs == sorted(confs, reverse=True)
    # the same through the JSON form
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/search", json={
        "filters": [{"field": "meta.tags", "op": "subset", "value": ["us"]},
                    {"field": "detection", "op": "looks_like", "value": probe, "threshold": 0.0}],
        "limit": 1})
    assert status == 200 and [r["id"]["face"] for r in body["results"]] == [1] and body["next_page"]
    check_response(spec, "/v2/galleries/{name}/faces/search", "post", 200, body)
    status, body2, _ = await srv.call("POST", "/v2/galleries/people/faces/search", json={
        "filters": [{"field": "meta.tags", "op": "subset", "value": ["us"]},
                    {"field": "detection", "op": "looks_like", "value": probe, "threshold": 0.0}],
        "limit": 1, "page": body["next_page"]})
    assert [r["id"]["face"] for r in body2["results"]] == [2]
    # paging by id with limit 1 walks all faces
    seen, page = [], ""
    while True:
        status, body, _ = await srv.call("GET", f"/v2/galleries/people/faces?limit=1{page}")
        seen += [r["id"]["face"] for r in body["results"]]
        if not body["next_page"]:
            break
        page = f"&page={body['next_page']}"
    assert seen == [1, 2, 3, 4]


async def test_face_errors(srv, data_dir: Path) -> None:
    await srv.call("POST", "/v2/galleries/people")
    det = await _detect(srv, data_dir / "faces/obama/img1.jpg")
    cases = [
        ("POST", "/v2/galleries/people/faces/1", {"from": "detection:nope"}, 404, "SOURCE_NOT_FOUND", None),
        ("POST", "/v2/galleries/people/faces/1", {"from": "face:other/5"}, 404, "SOURCE_GALLERY_NOT_FOUND", None),
        ("POST", "/v2/galleries/people/faces/1", {"from": "face:people/5"}, 404, "SOURCE_NOT_FOUND", None),
        ("POST", "/v2/galleries/people/faces/x", {"from": f"detection:{det}"}, 400, "BAD_PARAM", "id"),
        ("POST", "/v2/galleries/people/faces/1", {"from": "elsewhere"}, 400, "BAD_PARAM", "from"),
        ("POST", "/v2/galleries/people/faces/1", {"from": f"detection:{det}", "meta": {"shoe": 1}}, 400, "BAD_PARAM",
         "meta.shoe"),
        ("POST", "/v2/galleries/people/faces/1", {"from": f"detection:{det}", "meta": {"age": "old"}}, 400, "BAD_PARAM",
         "meta.age"),
        ("POST", "/v2/galleries/nogal/faces/1", {"from": f"detection:{det}"}, 404, "GALLERY_NOT_FOUND", None),
        ("GET", "/v2/galleries/people/faces/77", None, 404, "NOT_FOUND", None),
        ("GET", "/v2/galleries/people/faces?meta.shoe.gte=1", None, 400, "BAD_PARAM", "meta.shoe"),
        ("GET", "/v2/galleries/people/faces?looks_like=detection:gone", None, 400, "BAD_PARAM", "looks_like"),
        ("GET", "/v2/galleries/nogal/faces", None, 404, "GALLERY_NOT_FOUND", None),
    ]
    for method, path, body, status, code, param in cases:
        got, answer, _ = await srv.call(method, path, json=body) if body is not None else await srv.call(method, path)
        assert (got, answer["code"]) == (status, code), (path, body, answer)
        if param:
            assert answer["param"] == param, answer
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/1", json={"from": f"detection:{det}"})
    assert status == 200
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/1", json={"from": f"detection:{det}"})
    assert status == 409 and body["code"] == "CONFLICT"
    status, body, _ = await srv.call("PATCH", "/v2/galleries/people/faces/1", json={"meta": {"age": 5, "camera": None}})
    assert status == 200 and body["meta"]["age"] == 5 and "camera" not in body["meta"]
    status, body, _ = await srv.call("PATCH", "/v2/galleries/people/faces/1", json={"meta": {"camera": "z"}})
    assert body["meta"] == {"age": 5, "camera": "z"}
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/2", json={"from": "face:people/1"})
    assert status == 200 and body["id"] == {"gallery": "people", "face": 2}
