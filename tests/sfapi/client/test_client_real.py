"""The client library against the real sfapi service on loopback: every filter, paging, error codes."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sfapi.client import Client, SFApiRemoteError, filters
from sfapi.client.objects import DetectFace, FaceId

SCHEMAS = {"people": {"age": "int", "camera": "string", "tags": "strings"}}


@pytest.fixture
async def client(start_server):
    srv = await start_server({"gallery": {"schemas": SCHEMAS}})
    async with Client(srv.base, timeout=30) as c:
        yield c


@pytest.fixture
async def detections(client: Client, data_dir: Path) -> dict[str, DetectFace]:
    out = {}
    for name, rel in {"obama": "faces/obama/img1.jpg", "obama2": "faces/obama/img2.jpg",
                      "biden": "faces/biden/img1.jpg", "cage": "faces/nicolas_cage/img1.jpg",
                      "woman": "scenes/sample2.jpg"}.items():
        resp = await client.detect(image=(data_dir / rel).read_bytes(), facen=True, gender=True, age=True,
                                   emotions=True, return_facen=True)
        assert len(resp) == 1 and resp.orientation == 1
        out[name] = resp[0]
    return out


async def test_detect_and_features(detections: dict[str, DetectFace]) -> None:
    obama = detections["obama"]
    assert obama.id and obama.bbox.right > obama.bbox.left
    assert obama.features["gender"]["gender"] == "male" and 20 < obama.features["age"] < 80
    assert obama.facen is not None and obama.facen.shape == (128,)
    assert detections["woman"].features["gender"]["gender"] == "female"


async def test_every_filter_and_paging(client: Client, detections: dict[str, DetectFace]) -> None:
    g = client["people"]
    await g.create()
    metas = {"obama": {"age": 61, "camera": "a", "tags": ["vip", "us"]}, "biden": {"age": 80, "camera": "b", "tags": ["us"]},
             "cage": {"age": 36, "camera": "a", "tags": ["uk"]}, "woman": {"age": 36, "camera": "c", "tags": ["uk", "vip"]}}
    ids = {}
    counter = itertools.count(100)
    for name in metas:
        face = await g.add(lambda: next(counter), detections[name], meta=metas[name])
        ids[name] = face.id.face
        assert face.id == FaceId("people", face.id.face) and face.meta == metas[name]
    assert [i.number for i in await client.list_galleries() if i.name == "people"] == [4]

    async def listed(*fs: filters.Filter, **kw) -> list[int]:
        return [f.id.face for f in await g.list(filters=list(fs), **kw)]

    o, b, k, r = ids["obama"], ids["biden"], ids["cage"], ids["woman"]
    assert await listed() == sorted(ids.values())
    assert await listed(sort="-id") == sorted(ids.values(), reverse=True)
    assert await listed(filters.Id.gte(b), filters.Id.lte(k)) == [b, k]
    assert await listed(filters.Id.oneof(o, r)) == [o, r]
    assert await listed(filters.Meta("age").gte(40)) == [o, b]
    assert await listed(filters.Meta("age").lte(36)) == [k, r]
    assert await listed(filters.Meta("camera").oneof("a", "c")) == [o, k, r]
    assert await listed(filters.Meta("camera").lte("a")) == [o, k]
    assert await listed(filters.Meta("tags").subset("uk", "vip")) == [r]
    found = await g.list(filters=[filters.Detection(detections["obama2"], 0.75)])
    assert [f.id.face for f in found] == [o] and found[0].confidence >= 0.75
    found = await g.list(filters=[filters.Face(FaceId("people", o), 0.0)], limit=2)
    assert found[0].id.face == o and found[0].confidence == pytest.approx(1.0, abs=1e-5)
    assert found.next_page
    # walk every page of a look-alike search, two at a time
    seen, page = [], None
    while True:
        resp = await g.list(filters=[filters.Detection(detections["obama2"].id, 0.0)], limit=1, page=page)
        seen += [(f.id.face, f.confidence) for f in resp]
        if not resp.next_page:
            break
        page = resp.next_page
    assert sorted(x for x, _ in seen) == sorted(ids.values())
    assert [c for _, c in seen] == sorted((c for _, c in seen), reverse=True)

    updated = await g.update(o, meta={"age": 62, "camera": None})
    assert updated.meta == {"age": 62, "camera": "a", "tags": ["vip", "us"]}
    assert (await g.get(FaceId("people", o))).meta["age"] == 62
    copy = await g.add(999, updated)
    assert copy.id.face == 999
    await g.delete(999)
    with pytest.raises(SFApiRemoteError) as err:
        await g.get(999)
    assert err.value.code == "NOT_FOUND"
    await g.drop()


async def test_documented_error_codes(client: Client, detections: dict[str, DetectFace]) -> None:
    g = client.gallery("people")
    await g.create()

    async def code_of(coro) -> SFApiRemoteError:
        with pytest.raises(SFApiRemoteError) as err:
            await coro
        return err.value

    assert (await code_of(g.create())).code == "CONFLICT"
    assert (await code_of(client.gallery("none").drop())).code == "GALLERY_NOT_FOUND"
    await g.add(1, detections["obama"])
    assert (await code_of(g.add(1, detections["biden"]))).code == "CONFLICT"
    assert (await code_of(g.add(2, "missingdetection"))).code == "SOURCE_NOT_FOUND"
    assert (await code_of(g.add(2, FaceId("nogallery", 1)))).code == "SOURCE_GALLERY_NOT_FOUND"
    assert (await code_of(g.add(2, FaceId("people", 55)))).code == "SOURCE_NOT_FOUND"
    bad = await code_of(g.add(2, detections["biden"], meta={"height": 180}))
    assert (bad.code, bad.param) == ("BAD_PARAM", "meta.height")
    bad = await code_of(g.list(filters=[filters.Meta("age").subset("x")]))
    assert (bad.code, bad.param) == ("BAD_PARAM", "meta.age")
    bad = await code_of(client.detect(image=b"not an image"))
    assert (bad.code, bad.param) == ("BAD_PARAM", "image")
    assert (await code_of(client.detect(image=b""))).code == "MALFORMED_REQUEST"
    assert (await code_of(g.get(404))).code == "NOT_FOUND"
    # a regenerating id source gives up after regenerate_attempts conflicts
    with pytest.raises(SFApiRemoteError) as err:
        await g.add(lambda: 1, detections["cage"], regenerate_attempts=2)
    assert err.value.code == "CONFLICT"
    face = await g.add(iter([1, 1, 7]).__next__, detections["cage"], regenerate_attempts=2)
    assert face.id.face == 7


async def test_create_with_meta_schema_and_exist_ok(client: Client, detections: dict[str, DetectFace]) -> None:
    g = client["typed"]
    await g.create(meta_schema={"age": "int", "camera": "string", "tags": "strings"})
    await g.create(meta_schema={"other": "int"}, exist_ok=True)  # no error; the schema is left as it was
    with pytest.raises(SFApiRemoteError) as exc:
        await g.create()
    assert exc.value.code == "CONFLICT"
    face = await g.add(1, detections["obama"], meta={"age": 61, "camera": "a", "tags": ["x"]})
    assert face.meta == {"age": 61, "camera": "a", "tags": ["x"]}
    with pytest.raises(SFApiRemoteError) as exc:
        await g.add(2, detections["biden"], meta={"other": 1})
    assert exc.value.code == "BAD_PARAM"
