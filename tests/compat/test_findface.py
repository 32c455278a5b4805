"""Code written for FindFace's facerouter plugin API runs here without editing a line.

Every call the reference documents is made with the reference's imports, names and argument
forms (each client method with its arguments, each filter with the reference's own example
values, the plugin hooks with the documented parameters) against the real sfapi and the real
facerouter on loopback. Where an example as printed cannot run, its evident meaning is used and
a comment says so. Each documented error code is produced here, except the three that
docs/plugins.rst lists as never sent (UNKNOWN_ERROR, LICENSE_ERROR, NOT_IMPLEMENTED).
"""
from __future__ import annotations

import asyncio
import datetime
import json
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

# the reference's import lines, as printed
from ntech.sfapi_client import filters
from ntech.sfapi_client.client import Client
from ntech.sfapi_client.objects import DetectFace, DetectResponse, Face, FaceId, ListResponse
from sfapi_client import SFApiMalformedResponseError, SFApiRemoteError

import sfapi.client
from sfapi.client.errors import REMOTE_ERROR_CODES
from sfapi.server.state import STATE
from tests.conftest import LocalServers
from tests.facerouter.conftest import frame_parts
from tests.facerouter.test_integration import face0_of

#: Codes this implementation never sends (docs/plugins.rst says why).
NEVER_SENT = {"UNKNOWN_ERROR", "LICENSE_ERROR", "NOT_IMPLEMENTED"}
SCHEMAS = {"gal1": {"foo": "int", "age": "int", "camera": "string"},
           "tagged": {"foo": "strings"}}


def test_the_reference_names_are_ours() -> None:
    import ntech.sfapi_client as ntech_client
    import sfapi_client

    assert Client is sfapi.client.Client and filters is sfapi.client.filters
    assert DetectFace is sfapi.client.DetectFace is sfapi_client.DetectFace
    assert ntech_client.gallery.Gallery is sfapi_client.Gallery is sfapi.client.Gallery
    assert SFApiRemoteError is sfapi.client.SFApiRemoteError
    assert issubclass(filters.Detection, filters.Filter)


@pytest.fixture
async def sf(start_server: Any) -> Any:
    return await start_server({"gallery": {"schemas": SCHEMAS}})


async def test_every_client_call(sf: Any, data_dir: Path) -> None:
    obama = (data_dir / "faces/obama/img1.jpg").read_bytes()
    obama2 = (data_dir / "faces/obama/img2.jpg").read_bytes()
    biden = (data_dir / "faces/biden/img1.jpg").read_bytes()
    async with Client(sf.base) as client:
        # detect, with every documented argument
        found = await client.detect(image=obama, facen=True, gender=True, age=True, emotions=True,
                                    return_facen=True, autorotate=False, detector="nnd",
                                    timeout=60)
        assert isinstance(found, DetectResponse) and found.orientation == 1 and len(found) == 1
        det1: DetectFace = found[0]
        assert det1.id and det1.bbox.right > det1.bbox.left
        assert {"gender", "age", "emotions"} <= set(det1.features)
        assert det1.facen is not None
        found = await client.detect(image=obama2, facen=True, autorotate=True, timeout=None)
        det2 = found[0]
        other = (await client.detect(image=biden, facen=True))[0]
        # url=: an image on a loopback server. sfapi's URL policy may refuse loopback addresses
        # (a refusal is BAD_PARAM naming url); either way the call and its answer are documented.
        servers = LocalServers()
        app = web.Application()

        async def serve_photo(request: web.Request) -> web.Response:
            return web.Response(body=obama, content_type="image/jpeg")

        app.router.add_get("/photo.jpg", serve_photo)
        try:
            base = await servers.serve(app)
            try:
                by_url = await client.detect(url=base + "/photo.jpg", facen=True)
                assert len(by_url) == 1
            except SFApiRemoteError as exc:
                assert exc.code == "BAD_PARAM" and exc.param == "url", exc
        finally:
            await servers.close()

        # galleries: gallery(name), create, list_galleries, drop
        gal1 = client.gallery("gal1")
        # the reference returns None; ours says whether this call created it (callers that ignore
        # the answer, as the reference's do, see no difference)
        assert await gal1.create(timeout=10) is None
        listed = await client.list_galleries(timeout=10)
        assert [(g.name, g.number) for g in listed if g.name == "gal1"] == [("gal1", 0)]

        # add: an int id, a callable, an async callable; from a DetectFace, a Face, a FaceId and
        # a detection id string; meta, regenerate_attempts, timeout
        face = await gal1.add(1234, det1, meta={"foo": 1234, "age": 61, "camera": "abc"},
                              regenerate_attempts=None, timeout=10)
        assert isinstance(face, Face) and face.id == FaceId("gal1", 1234)
        ids = iter([1234, 5678])  # the first is taken: regenerated once
        copy = await gal1.add(lambda: next(ids), face, meta={"foo": 5678, "age": 45,
                                                             "camera": "def"},
                              regenerate_attempts=3)
        assert copy.id.face == 5678

        async def next_id() -> int:
            return 123456

        by_faceid = await gal1.add(next_id, FaceId("gal1", 1234), meta={"foo": 7, "age": 50,
                                                                        "camera": "abc"})
        assert by_faceid.id.face == 123456
        by_str = await gal1.add(200000, other.id, meta={"foo": 9, "age": 80, "camera": "xyz"})
        assert by_str.id.face == 200000

        # get, update, delete: a Face, a FaceId or an int
        assert (await gal1.get(face, timeout=10)).meta["foo"] == 1234
        assert (await gal1.get(FaceId("gal1", 5678))).meta["camera"] == "def"
        got = await gal1.get(1234)
        assert got.id == FaceId("gal1", 1234) and got.features is not None
        updated = await gal1.update(1234, meta={"age": 62, "camera": None}, timeout=10)
        assert updated.meta["age"] == 62 and updated.meta["camera"] == "abc"  # None: unchanged
        await gal1.update(FaceId("gal1", 1234), meta={"age": 61})

        async def faces(*fs: filters.Filter, **kw: Any) -> list[int]:
            page = await gal1.list(filters=list(fs), **kw)
            assert isinstance(page, ListResponse)
            return [f.id.face for f in page]

        # list: limit, sort, page, ignore_errors, timeout
        assert await faces() == [1234, 5678, 123456, 200000]
        assert await faces(sort="-id", limit=1000, ignore_errors=True, timeout=10) == \
            [200000, 123456, 5678, 1234]
        first = await gal1.list(limit=2, sort="id")
        assert [f.id.face for f in first] == [1234, 5678] and first.next_page
        rest = await gal1.list(limit=2, sort="id", page=first.next_page)
        assert [f.id.face for f in rest] == [123456, 200000]

        # every filter with the reference's example values
        assert await faces(filters.Id.lte(1234)) == [1234]
        assert await faces(filters.Id.gte(1234)) == [1234, 5678, 123456, 200000]
        assert await faces(filters.Id.oneof(1234, 5678)) == [1234, 5678]
        assert await faces(filters.Meta('foo').lte(1234)) == [1234, 123456, 200000]
        assert await faces(filters.Meta('foo').gte(1234)) == [1234, 5678]
        # printed as Meta.oneof(1234, 5678), with no field: accepted, and its evident meaning is
        # the field of the examples around it, 'foo'
        unnamed = filters.Meta.oneof(1234, 5678)
        with pytest.raises(ValueError, match="names no meta field"):
            await gal1.list(filters=[unnamed])
        assert await faces(unnamed.on('foo')) == [1234, 5678]
        assert await faces(filters.Meta('foo').oneof(1234, 5678)) == [1234, 5678]
        hits = await gal1.list(filters=[filters.Detection(det1, 0.77)], sort="-confidence")
        assert {h.id.face for h in hits} == {1234, 5678, 123456}  # det1 and its two copies
        assert all(h.confidence >= 0.77 for h in hits)
        assert [h.id.face for h in await gal1.list(filters=[filters.Detection(det2.id, 0.77)])]
        # printed as Detection(FaceId("gal1", 1234), 0.77) under filters.Face, with typographic
        # quotes: its evident meaning is the Face filter on that face
        near = await faces(filters.Face(FaceId("gal1", 1234), 0.77))
        assert 1234 in near and 200000 not in near
        # "Several Filters Usage Example", as printed
        assert await faces(*[filters.Id.gte(123456), filters.Meta('age').gte(45),
                             filters.Meta('camera').oneof('abc', 'def')]) == [123456]

        # subset needs a list-of-strings field: the same name in its own gallery
        tagged = client.gallery("tagged")
        await tagged.create()
        await tagged.add(1, det1, meta={"foo": ["male", "angry", "tall"]})
        await tagged.add(2, other, meta={"foo": ["male"]})
        page = await tagged.list(filters=[filters.Meta('foo').subset("male", "angry")])
        assert [f.id.face for f in page] == [1]

        assert await gal1.delete(face, timeout=10) is None
        await gal1.delete(FaceId("gal1", 5678))
        await gal1.delete(123456)
        assert await faces() == [200000]
        assert await gal1.drop(timeout=10) is None
        await tagged.drop()
        assert [g.name for g in await client.list_galleries()] == []


class _Faulty:
    """The real analyzer, with a detect that waits until released and an extract that fails on
    demand (to make OVER_CAPACITY and EXTRACTION_ERROR happen for real)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.release.set()
        self.fail_extract = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def detect(self, rgb: np.ndarray, autorotate: bool = False) -> Any:
        self.entered.release()
        self.release.wait(30)
        return self._inner.detect(rgb, autorotate)

    async def extract(self, prepared: Any) -> Any:
        if self.fail_extract:
            raise RuntimeError("the facen network failed")
        return await self._inner.extract(prepared)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_every_error_code(start_server: Any, analyzer: Any, data_dir: Path) -> None:
    photo = (data_dir / "faces/obama/img1.jpg").read_bytes()
    faulty = _Faulty(analyzer)
    srv = await start_server({"gallery": {"schemas": SCHEMAS},
                              "batching": {"max_pending_requests": 1}}, an=faulty)
    seen: dict[str, SFApiRemoteError] = {}

    async def expect(code: str, call: Any) -> SFApiRemoteError:
        with pytest.raises(SFApiRemoteError) as info:
            await call
        assert info.value.code == code and info.value.reason, info.value
        seen[code] = info.value
        return info.value

    async with Client(srv.base) as client:
        gal1 = client.gallery("gal1")
        await gal1.create()
        det = (await client.detect(image=photo, facen=True))[0]
        await gal1.add(1, det, meta={"foo": 1, "age": 1, "camera": "a"})

        err = await expect("BAD_PARAM", client.detect(image=photo, detector="hog"))
        assert err.param == "detector" and err.value == "hog"
        await expect("CONFLICT", gal1.create())
        await expect("MALFORMED_REQUEST", client.detect(image=b""))
        await expect("NOT_FOUND", gal1.get(999))
        await expect("GALLERY_NOT_FOUND", client.gallery("nope").list())
        await expect("SOURCE_NOT_FOUND", gal1.add(2, FaceId("gal1", 999)))
        await expect("SOURCE_GALLERY_NOT_FOUND", gal1.add(2, FaceId("nope", 1)))
        faulty.fail_extract = True
        await expect("EXTRACTION_ERROR", client.detect(image=photo, facen=True))
        faulty.fail_extract = False
        faulty.release.clear()
        busy = asyncio.create_task(client.detect(image=photo))
        await asyncio.get_running_loop().run_in_executor(None, faulty.entered.acquire)
        while faulty.entered.acquire(blocking=False):  # the detects made above
            pass
        await expect("OVER_CAPACITY", client.detect(image=photo))
        faulty.release.set()
        assert len(await busy) == 1
        await srv.app[STATE].gallery.close()
        await expect("STORAGE_ERROR", client.gallery("later").create())

    cached = await start_server({"cache": {"backend": "memcached",
                                           "memcached_port": _closed_port()}})
    async with Client(cached.base) as client:
        await expect("CACHE_ERROR", client.detect(image=photo, facen=True))

    # a network failure is the other error class
    async with Client(f"http://127.0.0.1:{_closed_port()}", timeout=5) as client:
        with pytest.raises(SFApiMalformedResponseError):
            await client.list_galleries()

    assert set(seen) | NEVER_SENT == REMOTE_ERROR_CODES and not set(seen) & NEVER_SENT
    assert len(REMOTE_ERROR_CODES) == 14


# A plugin as the reference documents them: its import lines and hook signatures, unedited.
REFERENCE_PLUGIN = """
    import datetime
    import typing

    from facerouter.plugin import Plugin, FrHTTPRequest
    from ntech.sfapi_client import filters, objects
    from ntech.sfapi_client.client import Client
    from sfapi_client import SFApiRemoteError, SFApiMalformedResponseError


    class Recorder(Plugin):
        def __init__(self, ctx):
            self.ctx = ctx
            self.seen = []
            self.hits = []
            self.shut = False

        async def preprocess(self, request: FrHTTPRequest,
                             labels: typing.Mapping[str, str]) -> typing.Tuple[str]:
            p = request.params
            assert labels == p.labels
            return ('facen', 'gender', 'age', 'emotions')

        async def process(self, request: FrHTTPRequest, photo: bytes, bbox: typing.List[int],
                          event_id: int, detection: objects.DetectFace):
            p = request.params
            self.seen.append({
                "photo": photo is p.photo and isinstance(photo, bytes),
                "face0": isinstance(p.face0, bytes), "bbox": bbox, "params_bbox": p.bbox,
                "cam_id": p.cam_id, "timestamp": p.timestamp, "detectorParams": p.detectorParams,
                "bs_type": p.bs_type, "labels": p.labels, "event_id": event_id,
                "detection": detection})
            assert isinstance(self.ctx.sfapi, Client)
            try:
                hits = await self.ctx.sfapi.gallery('gal1').list(
                    filters=[filters.Detection(detection, 0.77)], limit=1)
                self.hits.append([h.id.face for h in hits])
            except (SFApiRemoteError, SFApiMalformedResponseError) as exc:
                self.hits.append(exc.code)

        def shutdown(self):
            self.shut = True
"""


async def test_plugin_hooks_get_the_documented_parameters(start_server: Any, start_router: Any,
                                                          data_dir: Path) -> None:
    sf = await start_server({"gallery": {"schemas": SCHEMAS}})
    photo = (data_dir / "faces/obama/img2.jpg").read_bytes()
    async with Client(sf.base) as client:
        await client.gallery("gal1").create()
        await client.gallery("gal1").add(
            1234, (await client.detect(image=photo, facen=True))[0],
            meta={"foo": 1, "age": 61, "camera": "abc"})
    router = await start_router({"recorder": REFERENCE_PLUGIN}, sfapi_url=sf.base)
    face0, box = await face0_of(sf, photo)
    # the video worker sends a float box
    floats = [[box[0][0] + 0.5, box[0][1] + 0.4, box[0][2] + 0.6, box[0][3] + 0.3]]
    status, body = await router.post_frame(frame_parts(
        photo=photo, face0=face0, bbox=json.dumps(floats), cam_id="lobby",
        labels=json.dumps({"site": "hq"})))
    assert status == 200 and body["failed_plugins"] == [] and body["processed"] == ["recorder"]
    plugin = router.router.registry["recorder"].obj
    (seen,) = plugin.seen
    assert seen["photo"] and seen["face0"] and seen["bbox"] is seen["params_bbox"]
    (x1, y1, x2, y2), = seen["bbox"]
    assert all(type(v) is int for v in (x1, y1, x2, y2))
    assert (x1, y1, x2, y2) == (int(np.floor(floats[0][0])), int(np.floor(floats[0][1])),
                                int(np.ceil(floats[0][2])), int(np.ceil(floats[0][3])))
    assert seen["cam_id"] == "lobby" and seen["bs_type"] == "overall"
    assert isinstance(seen["timestamp"], datetime.datetime) and seen["timestamp"].tzinfo
    assert isinstance(seen["detectorParams"], dict) and seen["labels"] == {"site": "hq"}
    assert isinstance(seen["event_id"], int) and 0 < seen["event_id"] < 1 << 64
    assert str(seen["event_id"]) == body["event_id"]
    det = seen["detection"]
    assert isinstance(det, DetectFace) and det.id and det.bbox.width > 0
    assert {"gender", "age", "emotions"} <= set(det.features)
    assert plugin.hits == [[1234]]
    await router.router.shutdown()
    assert plugin.shut
