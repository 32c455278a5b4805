"""Signed webhooks: the real router's persons webhooks sign every delivery (retries too); a
receiver written as README shows verifies them, and catches altered and replayed deliveries."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest
from aiohttp import web

from facerouter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, sign, verify
from tests.plugins.persons.conftest import make_source

SECRET = "whsec-0123456789abcdef"


README = Path(__file__).resolve().parents[3] / "README.rst"


def readme_check() -> Callable[..., dict]:
    """The receiver's ``check`` exactly as README shows it (its code block, executed)."""
    text = README.read_text()
    block = text.split("The receiver's check::\n", 1)[1].split("\n\n(", 1)[0]
    code = textwrap.dedent(block)
    scope: dict = {}
    exec(compile(code, "README.rst", "exec"), scope)  # noqa: S102 - our own README's example
    return scope["check"]


async def test_router_signs_every_delivery(start_persons, local_http) -> None:
    raw: list[tuple[bytes, dict[str, str]]] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        raw.append((await request.read(), dict(request.headers)))
        return web.Response(status=503 if calls["n"] == 1 else 204)  # the first is retried

    app = web.Application()
    app.router.add_post("/hook", hook)
    base = await local_http(app)
    env = await start_persons({"webhooks": [{"urls": [f"{base}/hook"], "backoff_s": 0.05,
                                             "secret": SECRET}]})
    await make_source(env, "door")
    assert (await env.upload("/persons", "obama/img1.jpg"))[0] == 201
    await env.frame("obama/img2.jpg")
    for _ in range(200):
        if len(raw) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(raw) == 3  # new (503, then again), exact
    check = readme_check()
    seen: dict = {}
    now = time.time()
    events = []
    for body, headers in raw[1:]:
        assert headers[SIGNATURE_HEADER].startswith("v1=")
        verify(SECRET, body, headers)  # the library's check agrees with README's
        events.append(check(SECRET.encode(), body, headers, seen))
    assert sorted(e["entry"]["result"] for e in events) == ["exact", "new"]
    # the retried attempt is signed on its own, over the same body
    assert raw[0][0] in (raw[1][0], raw[2][0])
    body, headers = raw[2]
    # replayed at once: the event id was handled
    with pytest.raises(ValueError, match="already handled"):
        check(SECRET.encode(), body, headers, seen)
    # replayed an hour later (its own old timestamp, correctly signed then): too old
    old_ts = int(now) - 3600
    old = {TIMESTAMP_HEADER: str(old_ts), SIGNATURE_HEADER: sign(SECRET, old_ts, body)}
    with pytest.raises(ValueError, match="too old"):
        check(SECRET.encode(), body, old, {})
    with pytest.raises(SignatureError, match="replay"):
        verify(SECRET, body, old)
    # altered body, altered timestamp, another secret
    altered = body.replace(b'"event_id"', b'"event_id" ', 1)
    for b, h, key in ((altered, headers, SECRET),
                      (body, {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}, SECRET),
                      (body, headers, "another-secret-0123456")):
        with pytest.raises(ValueError, match="bad signature"):
            check(key.encode(), b, h, {})
        with pytest.raises(SignatureError, match="mismatch"):
            verify(key, b, h, now=now)


def test_sign_and_verify_table() -> None:
    body = b'{"event_id": "1"}'
    assert sign(SECRET, 1700000000, body) == "v1=" + hmac.new(
        SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    good = {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: sign(SECRET, 1700000000, body)}
    assert verify(SECRET, body, good, now=1700000100) == 1700000000
    # a rotated secret: the receiver accepts either signature while both are listed
    both = {**good, SIGNATURE_HEADER: sign("old-secret-0123456789", 1700000000, body) + ","
            + good[SIGNATURE_HEADER]}
    assert verify(SECRET, body, both, now=1700000000) == 1700000000
    for headers, why in (({}, "missing"), ({TIMESTAMP_HEADER: "x", SIGNATURE_HEADER: "v1=00"}, "integer"),
                         ({**good, SIGNATURE_HEADER: "v1=00"}, "mismatch")):
        with pytest.raises(SignatureError, match=why):
            verify(SECRET, body, headers, now=1700000000)


def test_secret_is_never_shown() -> None:
    from facerouter.delivery import DeliverySettings
    s = DeliverySettings(urls=["http://127.0.0.1:9/h"], secret=SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    with pytest.raises(ValueError):
        DeliverySettings(urls=["http://127.0.0.1:9/h"], secret="short")


async def test_https_receiver_with_a_private_ca(tmp_path) -> None:
    """A receiver behind a private CA: delivered with ``tls.ca``; refused (not delivered) without."""
    from facerouter.delivery import DeliverySettings, JsonDelivery
    from tests.conftest import LocalServers
    from tests.tls_ca import make_pki

    pki = make_pki(tmp_path / "pki")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    got: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    servers = LocalServers(server)
    try:
        url = await servers.serve(app) + "/hook"
        for tls, want in (({"ca": str(pki.ca)}, 1), ({}, 0)):
            d = JsonDelivery(DeliverySettings(urls=[url], secret=SECRET, tls=tls, retries=0), "t")
            d.enqueue({"event_id": "1"})
            await d.shutdown()
            assert (d.stats["delivered"], d.stats["failed"]) == (want, 1 - want)
        assert len(got) == 1
    finally:
        await servers.close()
