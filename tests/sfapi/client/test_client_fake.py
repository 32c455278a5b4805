"""The client driven against a fake sfapi (aiohttp.web on a loopback port) that records requests.

Checks request paths, bodies and flags, answer parsing, error mapping, timeouts, add retries on
CONFLICT and the session lifecycle. Tests against the real service live elsewhere.
"""
from __future__ import annotations

import asyncio
import json
import socket
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from sfapi.client import (
    BBox,
    Client,
    DetectFace,
    DetectResponse,
    Face,
    FaceId,
    Gallery,
    GalleryListItem,
    ListResponse,
    SFApiMalformedResponseError,
    SFApiRemoteError,
    SFApiTimeoutError,
    filters,
)
from sfapi.client.errors import REMOTE_ERROR_CODES
from sfapi.client.objects import encode_facen

FACE_JSON = {
    "id": "det-1",
    "bbox": {"left": 1, "top": 2, "right": 30, "bottom": 40},
    "detection_score": 0.9,
    "quality": 0.1,
    "landmarks": [[5, 5], [20, 5], [12, 15], [7, 25], [18, 25]],
    "rotation": 0,
    "features": {"gender": {"gender": "male", "score": 0.8}, "age": 40},
    "facen": encode_facen([0.25, -0.5]),
    "facen_model": "m1",
}


def stored(face: int, gallery: str = "staff", **meta: Any) -> dict[str, Any]:
    """A stored-face answer."""
    return {"id": {"gallery": gallery, "face": face}, "features": {"age": 40}, "meta": meta,
            "confidence": None}


def error(code: str, reason: str = "nope", **extra: Any) -> dict[str, Any]:
    return {"code": code, "reason": reason, **extra}


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    text: str | None = None
    delay: float = 0.0
    hang: bool = False


@dataclass
class FakeSfapi:
    """Answers each (method, path) with queued canned answers; 599 when none is queued."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[tuple[str, str], deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, method: str, path: str, status: int = 200, body: Any = None, *,
           text: str | None = None, delay: float = 0.0, hang: bool = False) -> None:
        self.answers[(method, path)].append(Answer(status, body, text, delay, hang))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, request.raw_path.split("?")[0],
                                      dict(request.query), CIMultiDict(request.headers),
                                      await request.read()))
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return web.json_response(error("UNKNOWN_ERROR", "no canned answer"), status=599)
        answer = queue.popleft()
        if answer.hang:
            await self.release.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.text is not None:
            return web.Response(status=answer.status, text=answer.text, content_type="text/html")
        if answer.body is None:
            return web.Response(status=answer.status)
        return web.json_response(answer.body, status=answer.status)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfapi]:
    server = FakeSfapi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


@pytest.fixture
async def client(fake: FakeSfapi) -> AsyncIterator[Client]:
    async with Client(fake.url, timeout=5) as sfapi:
        yield sfapi


# --- detect -----------------------------------------------------------------------------------

async def test_detect_image_with_flags(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/detect", body={"orientation": 3, "faces": [FACE_JSON]})
    resp = await client.detect(image=b"\xff\xd8jpeg", facen=True, gender=True, request_id="rq-1")
    req = fake.last
    assert req.query == {"facen": "true", "gender": "true"}
    assert req.body == b"\xff\xd8jpeg"
    assert req.headers["Content-Type"] == "application/octet-stream"
    assert req.headers["X-Request-Id"] == "rq-1"
    assert isinstance(resp, DetectResponse) and resp.orientation == 3 and len(resp) == 1
    face = resp[0]
    assert isinstance(face, DetectFace) and face.id == "det-1"
    assert face.bbox == BBox(1, 2, 30, 40) and face.features["age"] == 40
    assert face.facen is not None and face.facen.tolist() == [0.25, -0.5]
    assert face.landmarks is not None and face.landmarks.shape == (5, 2)


async def test_detect_all_flags_and_detector(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/detect", body={"orientation": 1, "faces": []})
    await client.detect(image=bytearray(b"x"), facen=True, gender=True, age=True, emotions=True,
                        return_facen=True, autorotate=True, detector="normalized")
    assert fake.last.query == {"facen": "true", "gender": "true", "age": "true",
                               "emotions": "true", "return_facen": "true", "autorotate": "true",
                               "detector": "normalized"}
    assert "X-Request-Id" not in fake.last.headers


async def test_detect_url(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/detect", body={"orientation": 1, "faces": []})
    resp = await client.detect(url="http://example.test/a.jpg", detector="nnd")
    assert fake.last.query == {"detector": "nnd"}
    assert fake.last.headers["Content-Type"] == "application/json"
    assert fake.last.json() == {"url": "http://example.test/a.jpg"}
    assert resp == [] and resp.orientation == 1


@pytest.mark.parametrize("kwargs", [{}, {"url": "http://x/a.jpg", "image": b"x"}])
async def test_detect_needs_exactly_one_source(fake: FakeSfapi, client: Client,
                                               kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await client.detect(**kwargs)
    assert fake.requests == []


async def test_get_detection(fake: FakeSfapi, client: Client) -> None:
    fake.on("GET", "/v2/detect/det-1", body=FACE_JSON)
    face = await client.get_detection("det-1")
    assert face.id == "det-1" and face.features["gender"]["gender"] == "male"
    fake.on("GET", "/v2/detect/a/b", body=FACE_JSON)
    await client.get_detection(DetectFace("a/b", BBox(0, 0, 1, 1)))
    assert fake.last.raw_path == "/v2/detect/a%2Fb"  # an id is one path segment


# --- galleries --------------------------------------------------------------------------------

async def test_list_galleries(fake: FakeSfapi, client: Client) -> None:
    fake.on("GET", "/v2/galleries", body={"galleries": [{"name": "a", "number": 2},
                                                        {"name": "b", "number": 0}]})
    galleries = await client.list_galleries()
    assert galleries == [GalleryListItem("a", 2), GalleryListItem("b", 0)]
    assert galleries[0].name == "a" and galleries[0].number == 2


async def test_gallery_proxy_makes_no_request(fake: FakeSfapi, client: Client) -> None:
    gallery = client.gallery("staff")
    assert isinstance(gallery, Gallery) and gallery.name == "staff"
    assert client["staff"] == gallery
    assert fake.requests == []
    with pytest.raises(ValueError):
        client.gallery("")


async def test_create_and_drop(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/galleries/staff", body={"name": "staff", "number": 0})
    fake.on("DELETE", "/v2/galleries/staff", status=204)
    assert await client["staff"].create() is None
    assert fake.last.json() == {}
    assert await client["staff"].drop() is None
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/v2/galleries/staff"),
                                                          ("DELETE", "/v2/galleries/staff")]


# --- faces ------------------------------------------------------------------------------------

DET = DetectFace("det-1", BBox(0, 0, 1, 1))


@pytest.mark.parametrize(("source", "wire"), [
    (DET, "detection:det-1"),
    ("det-9", "detection:det-9"),
    ("detection:det-9", "detection:det-9"),
    ("face:other/5", "face:other/5"),
    (FaceId("other", 5), "face:other/5"),
    (Face(FaceId("staff", 6)), "face:staff/6"),
], ids=["DetectFace", "str", "detection: str", "face: str", "FaceId", "Face"])
async def test_add_sources(fake: FakeSfapi, client: Client, source: Any, wire: str) -> None:
    fake.on("POST", "/v2/galleries/staff/faces/7", body=stored(7, name="Ann"))
    face = await client["staff"].add(7, source, meta={"name": "Ann", "tags": ["a"]})
    assert fake.last.json() == {"from": wire, "meta": {"name": "Ann", "tags": ["a"]}}
    assert isinstance(face, Face) and face.id == FaceId("staff", 7) and face.meta == {"name": "Ann"}


async def test_add_without_meta_sends_empty_meta(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/galleries/staff/faces/7", body=stored(7))
    await client["staff"].add(7, DET)
    assert fake.last.json() == {"from": "detection:det-1", "meta": {}}


async def test_add_rejects_detection_without_id(fake: FakeSfapi, client: Client) -> None:
    with pytest.raises(ValueError):
        await client["staff"].add(1, DetectFace(None, BBox(0, 0, 1, 1)))
    with pytest.raises(TypeError):
        await client["staff"].add(1, 12345)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_add_int_id_conflict_raised_at_once(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/galleries/staff/faces/7", 409, error("CONFLICT", "face exists"))
    with pytest.raises(SFApiRemoteError) as info:
        await client["staff"].add(7, DET, regenerate_attempts=5)
    assert info.value.code == "CONFLICT" and info.value.status == 409
    assert len(fake.requests) == 1


def _sync_ids(start: int) -> Callable[[], int]:
    counter = iter(range(start, start + 100))
    return lambda: next(counter)


def _async_ids(start: int) -> Callable[[], Awaitable[int]]:
    counter = iter(range(start, start + 100))

    async def idgen() -> int:
        await asyncio.sleep(0)
        return next(counter)

    return idgen


@pytest.mark.parametrize("make_ids", [_sync_ids, _async_ids], ids=["sync", "async"])
async def test_add_callable_id_retries_on_conflict(fake: FakeSfapi, client: Client,
                                                   make_ids: Callable[[int], Any]) -> None:
    fake.on("POST", "/v2/galleries/staff/faces/100", 409, error("CONFLICT", "taken"))
    fake.on("POST", "/v2/galleries/staff/faces/101", 409, error("CONFLICT", "taken"))
    fake.on("POST", "/v2/galleries/staff/faces/102", body=stored(102))
    face = await client["staff"].add(make_ids(100), DET)
    assert face.id == FaceId("staff", 102)
    assert [r.path for r in fake.requests] == ["/v2/galleries/staff/faces/100",
                                              "/v2/galleries/staff/faces/101",
                                              "/v2/galleries/staff/faces/102"]


@pytest.mark.parametrize(("attempts", "requests"), [(None, 4), (0, 1), (2, 3)])
@pytest.mark.parametrize("make_ids", [_sync_ids, _async_ids], ids=["sync", "async"])
async def test_add_callable_id_gives_up(fake: FakeSfapi, client: Client,
                                        make_ids: Callable[[int], Any], attempts: int | None,
                                        requests: int) -> None:
    for n in range(10):
        fake.on("POST", f"/v2/galleries/staff/faces/{n}", 409, error("CONFLICT", "taken"))
    with pytest.raises(SFApiRemoteError) as info:
        await client["staff"].add(make_ids(0), DET, regenerate_attempts=attempts)
    assert info.value.code == "CONFLICT"
    assert len(fake.requests) == requests


async def test_add_callable_other_errors_not_retried(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", "/v2/galleries/staff/faces/0", 404, error("SOURCE_NOT_FOUND", "gone"))
    with pytest.raises(SFApiRemoteError) as info:
        await client["staff"].add(_sync_ids(0), DET)
    assert info.value.code == "SOURCE_NOT_FOUND" and len(fake.requests) == 1


async def test_add_callable_must_return_int(fake: FakeSfapi, client: Client) -> None:
    with pytest.raises(TypeError):
        await client["staff"].add(lambda: "7", DET)  # type: ignore[arg-type,return-value]
    assert fake.requests == []


@pytest.mark.parametrize("ref", [7, "7", FaceId("staff", 7), Face(FaceId("staff", 7)), "staff/7"],
                         ids=["int", "str", "FaceId", "Face", "gallery/face str"])
async def test_get_update_delete_face_refs(fake: FakeSfapi, client: Client, ref: Any) -> None:
    path = "/v2/galleries/staff/faces/7"
    fake.on("GET", path, body=stored(7, name="Ann"))
    fake.on("PATCH", path, body=stored(7, name="Bo"))
    fake.on("DELETE", path, status=204)
    gallery = client["staff"]
    got = await gallery.get(ref)
    assert got.id == FaceId("staff", 7) and got.meta == {"name": "Ann"}
    updated = await gallery.update(ref, meta={"name": "Bo", "age": None})
    assert fake.last.json() == {"meta": {"name": "Bo", "age": None}}
    assert updated.meta == {"name": "Bo"}
    assert await gallery.delete(ref) is None
    assert [(r.method, r.path) for r in fake.requests] == [("GET", path), ("PATCH", path),
                                                          ("DELETE", path)]


@pytest.mark.parametrize(("ref", "error_type"), [
    (FaceId("other", 7), ValueError), (Face(FaceId("other", 7)), ValueError),
    (1.5, TypeError), (True, TypeError), ("abc", ValueError),
])
async def test_face_ref_rejected(fake: FakeSfapi, client: Client, ref: Any,
                                 error_type: type[Exception]) -> None:
    with pytest.raises(error_type):
        await client["staff"].get(ref)
    assert fake.requests == []


async def test_update_without_meta(fake: FakeSfapi, client: Client) -> None:
    fake.on("PATCH", "/v2/galleries/staff/faces/7", body=stored(7))
    await client["staff"].update(7)
    assert fake.last.json() == {"meta": {}}


# --- list / search ----------------------------------------------------------------------------

SEARCH = "/v2/galleries/staff/faces/search"


async def test_list_defaults(fake: FakeSfapi, client: Client) -> None:
    fake.on("POST", SEARCH, body={"results": [stored(1), stored(2)], "next_page": "p2"})
    resp = await client["staff"].list()
    assert fake.last.json() == {"filters": [], "limit": 1000, "page": None, "ignore_errors": False}
    assert isinstance(resp, ListResponse) and [f.id.face for f in resp] == [1, 2]
    assert resp.next_page == "p2"


async def test_list_with_filters_and_paging(fake: FakeSfapi, client: Client) -> None:
    hit = {**stored(5), "confidence": 0.91}
    fake.on("POST", SEARCH, body={"results": [hit], "next_page": None})
    resp = await client["staff"].list(
        filters=[filters.Id.gte(3), filters.Meta("age").gte(45),
                 filters.Meta("camera").oneof("abc", "def"), filters.Meta("tags").subset("x"),
                 filters.Detection(DET, 0.7), filters.Face(9, 0.6)],
        limit=10, sort="-confidence", page="p2", ignore_errors=True, request_id="rq-9")
    assert fake.last.json() == {
        "filters": [
            {"field": "id", "op": "gte", "value": 3},
            {"field": "meta.age", "op": "gte", "value": 45},
            {"field": "meta.camera", "op": "oneof", "value": ["abc", "def"]},
            {"field": "meta.tags", "op": "subset", "value": ["x"]},
            {"field": "detection", "op": "looks_like", "value": "det-1", "threshold": 0.7},
            {"field": "face", "op": "looks_like", "value": {"gallery": "staff", "face": 9},
             "threshold": 0.6},
        ],
        "sort": "-confidence", "limit": 10, "page": "p2", "ignore_errors": True,
    }
    assert fake.last.headers["X-Request-Id"] == "rq-9"
    assert resp[0].confidence == 0.91 and resp.next_page is None


@pytest.mark.parametrize("kwargs", [{"sort": "name"}, {"limit": 0}, {"limit": True},
                                    {"filters": [{"field": "id"}]}, {"page": 2}])
async def test_list_invalid_arguments(fake: FakeSfapi, client: Client,
                                      kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        await client["staff"].list(**kwargs)
    assert fake.requests == []


# --- errors -----------------------------------------------------------------------------------

Call = Callable[[Client], Awaitable[Any]]
ERRORS: list[tuple[str, int, str, str, Call]] = [
    ("UNKNOWN_ERROR", 500, "GET", "/v2/galleries", lambda c: c.list_galleries()),
    ("BAD_PARAM", 400, "POST", SEARCH, lambda c: c["staff"].list()),
    ("CONFLICT", 409, "POST", "/v2/galleries/staff", lambda c: c["staff"].create()),
    ("EXTRACTION_ERROR", 422, "POST", "/v2/detect", lambda c: c.detect(image=b"x", facen=True)),
    ("LICENSE_ERROR", 403, "POST", "/v2/detect", lambda c: c.detect(url="http://x/a.jpg")),
    ("MALFORMED_REQUEST", 400, "POST", "/v2/detect", lambda c: c.detect(image=b"x")),
    ("OVER_CAPACITY", 503, "POST", "/v2/detect", lambda c: c.detect(image=b"x")),
    ("SOURCE_NOT_FOUND", 404, "POST", "/v2/galleries/staff/faces/1",
     lambda c: c["staff"].add(1, "det-x")),
    ("SOURCE_GALLERY_NOT_FOUND", 404, "POST", "/v2/galleries/staff/faces/1",
     lambda c: c["staff"].add(1, FaceId("nope", 3))),
    ("STORAGE_ERROR", 503, "GET", "/v2/galleries/staff/faces/1", lambda c: c["staff"].get(1)),
    ("CACHE_ERROR", 503, "GET", "/v2/detect/d1", lambda c: c.get_detection("d1")),
    ("NOT_FOUND", 404, "DELETE", "/v2/galleries/staff/faces/1", lambda c: c["staff"].delete(1)),
    ("NOT_IMPLEMENTED", 501, "PATCH", "/v2/galleries/staff/faces/1",
     lambda c: c["staff"].update(1, meta={"a": 1})),
    ("GALLERY_NOT_FOUND", 404, "DELETE", "/v2/galleries/staff", lambda c: c["staff"].drop()),
]


def test_error_table_covers_documented_codes() -> None:
    assert {code for code, *_ in ERRORS} == REMOTE_ERROR_CODES


@pytest.mark.parametrize(("code", "status", "method", "path", "call"), ERRORS,
                         ids=[e[0] for e in ERRORS])
async def test_remote_errors(fake: FakeSfapi, client: Client, code: str, status: int, method: str,
                             path: str, call: Call) -> None:
    extra = {"param": "limit", "value": 0} if code == "BAD_PARAM" else {}
    fake.on(method, path, status, error(code, f"reason of {code}", **extra))
    with pytest.raises(SFApiRemoteError) as info:
        await call(client)
    err = info.value
    assert (err.code, err.reason, err.status) == (code, f"reason of {code}", status)
    if code == "BAD_PARAM":
        assert (err.param, err.value) == ("limit", 0)
        assert "param='limit'" in str(err)
    else:
        assert err.param is None and err.value is None
    assert code in str(err)


@pytest.mark.parametrize(("status", "body", "text"), [
    (502, None, "<html>Bad Gateway</html>"),
    (500, {"message": "no code"}, None),
    (404, ["code", "reason"], None),
    (200, None, "not json"),
], ids=["html 502", "json without code", "json list", "200 not json"])
async def test_unreadable_answers(fake: FakeSfapi, client: Client, status: int, body: Any,
                                  text: str | None) -> None:
    fake.on("GET", "/v2/galleries", status, body, text=text)
    with pytest.raises(SFApiMalformedResponseError) as info:
        await client.list_galleries()
    assert info.value.status == status
    assert not isinstance(info.value, SFApiRemoteError)


@pytest.mark.parametrize("body", [{"galleries": "x"}, {"galleries": [{"number": 1}]}, [1]])
async def test_wrong_shape_answer(fake: FakeSfapi, client: Client, body: Any) -> None:
    fake.on("GET", "/v2/galleries", body=body)
    with pytest.raises(SFApiMalformedResponseError) as info:
        await client.list_galleries()
    assert isinstance(info.value.__cause__, ValueError)


@pytest.fixture
async def dropping_server() -> AsyncIterator[str]:
    """A raw TCP server: the first connection gets nothing, the next a truncated answer."""
    seen = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        seen += 1
        await reader.readuntil(b"\r\n\r\n")
        if seen > 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"galleries\"")
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


async def test_dropped_connection(dropping_server: str) -> None:
    async with Client(dropping_server, timeout=5) as sfapi:
        with pytest.raises(SFApiMalformedResponseError) as info:
            await sfapi.list_galleries()
        assert isinstance(info.value.__cause__, aiohttp.ClientError)
        assert not isinstance(info.value, SFApiTimeoutError)
        with pytest.raises(SFApiMalformedResponseError):  # truncated body
            await sfapi.list_galleries()


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Client(f"http://127.0.0.1:{port}") as sfapi:
        with pytest.raises(SFApiMalformedResponseError) as info:
            await sfapi.detect(image=b"x")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_per_call_timeout(fake: FakeSfapi, client: Client) -> None:
    fake.on("GET", "/v2/galleries", hang=True)
    with pytest.raises(SFApiTimeoutError) as info:
        await client.list_galleries(timeout=0.1)
    assert isinstance(info.value, SFApiMalformedResponseError)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_default_timeout_and_override(fake: FakeSfapi) -> None:
    async with Client(fake.url, timeout=0.1) as sfapi:
        fake.on("GET", "/v2/galleries/staff/faces/1", hang=True)
        with pytest.raises(SFApiTimeoutError):
            await sfapi["staff"].get(1)
        fake.on("GET", "/v2/galleries/staff/faces/1", body=stored(1), delay=0.3)
        face = await sfapi["staff"].get(1, timeout=5)
        assert face.id == FaceId("staff", 1)


# --- lifecycle --------------------------------------------------------------------------------

async def test_close_closes_own_session(fake: FakeSfapi) -> None:
    fake.on("GET", "/v2/galleries", body={"galleries": []})
    sfapi = Client(fake.url + "/", headers={"X-Tenant": "t1"})
    assert sfapi.url == fake.url and not sfapi.closed
    assert await sfapi.list_galleries() == []
    assert fake.last.headers["X-Tenant"] == "t1"
    session = sfapi._session
    assert session is not None and not session.closed
    await sfapi.close()
    assert session.closed and sfapi.closed
    await sfapi.close()  # idempotent
    with pytest.raises(RuntimeError):
        await sfapi.list_galleries()


async def test_context_manager_closes_session(fake: FakeSfapi) -> None:
    fake.on("GET", "/v2/galleries", body={"galleries": []})
    async with Client(fake.url) as sfapi:
        await sfapi.list_galleries()
        session = sfapi._session
    assert session is not None and session.closed and sfapi.closed


async def test_close_without_requests(fake: FakeSfapi) -> None:
    sfapi = Client(fake.url)
    await sfapi.close()
    assert sfapi.closed


async def test_borrowed_session_left_open(fake: FakeSfapi) -> None:
    fake.on("GET", "/v2/galleries", body={"galleries": [{"name": "g", "number": 1}]})
    async with aiohttp.ClientSession() as session:
        sfapi = Client(fake.url, session=session)
        assert await sfapi.list_galleries() == [GalleryListItem("g", 1)]
        await sfapi.close()
        assert not session.closed


@pytest.mark.parametrize(("url", "timeout"), [("127.0.0.1:18411", 1), ("ftp://x", 1),
                                              ("http://x", 0)])
def test_client_arguments_checked(url: str, timeout: float) -> None:
    with pytest.raises(ValueError):
        Client(url, timeout=timeout)


async def test_unserializable_meta_rejected_before_sending(fake: FakeSfapi, client: Client) -> None:
    with pytest.raises(ValueError):
        await client["staff"].add(1, DET, meta={"score": float("nan")})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await client["staff"].update(1, meta={"when": object()})  # type: ignore[dict-item]
    assert fake.requests == []
