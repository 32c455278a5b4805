"""The outbound fetch policy of {"url": ...} on the real server: nothing but loopback is ever
connected to; names resolve through a stub, so refusals come from classification before connecting."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import socket
from pathlib import Path

import pytest
from aiohttp import web

from sfapi.netpolicy import StubResolver


@pytest.fixture
async def origin(local_http, data_dir: Path):
    """A loopback image origin that records what it was asked for."""
    photo = (data_dir / "faces/obama/img1.jpg").read_bytes()
    seen: list[tuple[str, str]] = []

    async def image(request: web.Request) -> web.Response:
        seen.append((request.path, request.host))
        return web.Response(body=photo, content_type="image/jpeg")

    async def redirect(request: web.Request) -> web.Response:
        seen.append((request.path, request.host))
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/a.jpg", image)
    app.router.add_get("/redirect", redirect)
    base = await local_http(app)
    return base, int(base.rsplit(":", 1)[1]), seen


STUB = {"photos.test": "127.0.0.1", "intranet.test": "10.0.0.5", "meta.test": "169.254.169.254",
        "mapped.test": "::ffff:127.0.0.1"}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/a.jpg", "http://[::ffff:127.0.0.1]:{port}/a.jpg", "http://localhost.test:{port}/a.jpg",
    "http://photos.test:{port}/a.jpg", "http://intranet.test/a.jpg", "http://meta.test/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/", "http://mapped.test:{port}/a.jpg", "http://0.0.0.0:{port}/a.jpg",
    "http://[::]:{port}/a.jpg", "http://2130706433:{port}/a.jpg",
])
async def test_default_policy_refuses_internal_addresses(start_server, origin, url: str) -> None:
    _, port, seen = origin
    srv = await start_server(resolver=StubResolver({**STUB, "localhost.test": "127.0.0.1"}))
    status, body, _ = await srv.call("POST", "/v2/detect", json={"url": url.format(port=port)})
    assert status == 400 and body["code"] == "BAD_PARAM" and body["param"] == "url", body
    assert str(port) not in body["reason"] and "127.0.0.1" not in body["reason"]
    assert seen == []  # refused before any connection


async def test_allowed_name_connects_to_the_checked_address(start_server, origin) -> None:
    _, port, seen = origin
    srv = await start_server({"url_fetch": {"allow": ["photos.test"]}}, resolver=StubResolver(STUB))
    status, body, _ = await srv.call("POST", "/v2/detect", json={"url": f"http://photos.test:{port}/a.jpg"})
    # photos.test exists only in the stub: the connection went to the address that was checked,
    # with the name in the Host header
    assert status == 200 and len(body["faces"]) == 1, body
    assert seen == [("/a.jpg", f"photos.test:{port}")]


async def test_every_redirect_hop_is_checked(start_server, origin) -> None:
    _, port, seen = origin
    srv = await start_server({"url_fetch": {"allow": ["photos.test"]}}, resolver=StubResolver(STUB))
    # to an address the policy refuses: only the first hop is fetched
    status, body, _ = await srv.call("POST", "/v2/detect", json={
        "url": f"http://photos.test:{port}/redirect?to=http://127.0.0.1:{port}/a.jpg"})
    assert status == 400 and body["param"] == "url" and "policy" in body["reason"], body
    assert [p for p, _ in seen] == ["/redirect"]
    # within the allowed host it is followed
    seen.clear()
    status, body, _ = await srv.call("POST", "/v2/detect", json={
        "url": f"http://photos.test:{port}/redirect?to=/a.jpg"})
    assert status == 200 and [p for p, _ in seen] == ["/redirect", "/a.jpg"]
    # to another scheme
    status, body, _ = await srv.call("POST", "/v2/detect", json={
        "url": f"http://photos.test:{port}/redirect?to=file:///etc/passwd"})
    assert status == 400 and body["param"] == "url"


async def test_redirect_limit(start_server, origin) -> None:
    _, port, seen = origin
    srv = await start_server({"url_fetch": {"allow": ["photos.test"], "max_redirects": 1}},
                             resolver=StubResolver(STUB))
    loop = f"http://photos.test:{port}/redirect?to=/redirect%3Fto%3D/a.jpg"
    status, body, _ = await srv.call("POST", "/v2/detect", json={"url": loop})
    assert status == 400 and "redirected more than 1" in body["reason"]


async def test_connection_errors_do_not_echo_internals(start_server) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    srv = await start_server({"url_fetch": {"allow": ["127.0.0.1/32"]}}, resolver=StubResolver(STUB))
    status, body, _ = await srv.call("POST", "/v2/detect", json={"url": f"http://127.0.0.1:{port}/a.jpg"})
    assert status == 400 and body["reason"] == "cannot fetch url", body
    status, body, _ = await srv.call("POST", "/v2/detect", json={"url": "http://nowhere.test/a.jpg"})
    assert status == 400 and body["reason"].startswith("cannot fetch url"), body


@pytest.mark.parametrize("payload", [{"url": 5}, {"url": "http://user:pw@photos.test/a.jpg"}, {"url": "ftp://x/a"},
                                     {"url": "http://photos.test/a.jpg", "extra": 1}, {"link": "x"}, [1]])
async def test_bad_url_bodies(start_server, payload) -> None:
    srv = await start_server({"url_fetch": {"allow": ["photos.test"]}}, resolver=StubResolver(STUB))
    status, body, _ = await srv.call("POST", "/v2/detect", json=payload)
    assert status == 400 and body["code"] == "BAD_PARAM" and "param" in body and "value" in body, body


def test_policy_entries_are_validated() -> None:
    from sfapi.config import SfapiConfig
    from facestack.core.configfile import validate
    from sfapi.errors import ConfigError

    with pytest.raises(ConfigError, match="url_fetch"):
        validate(SfapiConfig, {"url_fetch": {"allow": ["10.0.0.0/99"]}}, "<test>")
