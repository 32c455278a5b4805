"""Signed webhooks: the real router's persons webhooks sign every delivery (retries too); a
receiver written as README shows verifies them, and catches altered and replayed deliveries."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import pytest
from aiohttp import web

from facerouter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, sign, verify
from tests.plugins.persons.conftest import make_source

SECRET = "whsec-0123456789abcdef"


class ReadmeReceiver:
    """The receiver's check exactly as README's deployment section writes it, plus event-id
    de-duplication for replays inside the time window."""

    def __init__(self, secret: str, tolerance_s: int = 300) -> None:
        self.secret = secret.encode()
        self.tolerance_s = tolerance_s
        self.seen: dict[str, int] = {}

    def check(self, body: bytes, headers: dict[str, str], now: float) -> dict:
        ts = headers.get("X-Facestack-Timestamp", "")
        sig = headers.get("X-Facestack-Signature", "")
        mac = hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not ts.isdigit() or not hmac.compare_digest("v1=" + mac, sig):
            raise ValueError("bad signature")
        if abs(now - int(ts)) > self.tolerance_s:
            raise ValueError("too old: a replay")
        event = json.loads(body)
        if event["event_id"] in self.seen:
            raise ValueError("already handled: a replay")
        self.seen[event["event_id"]] = int(ts)
        return event


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
    receiver = ReadmeReceiver(SECRET)
    now = time.time()
    events = []
    for body, headers in raw[1:]:
        assert headers[SIGNATURE_HEADER].startswith("v1=")
        verify(SECRET, body, headers)  # the library's check agrees with README's
        events.append(receiver.check(body, headers, now))
    assert sorted(e["entry"]["result"] for e in events) == ["exact", "new"]
    # the retried attempt is signed on its own, over the same body
    assert raw[0][0] in (raw[1][0], raw[2][0])
    body, headers = raw[2]
    # replayed at once: the event id was handled; replayed later: the timestamp is too old
    with pytest.raises(ValueError, match="already handled"):
        receiver.check(body, headers, now)
    with pytest.raises(ValueError, match="too old"):
        ReadmeReceiver(SECRET).check(body, headers, now + 3600)
    with pytest.raises(SignatureError, match="replay"):
        verify(SECRET, body, headers, now=now + 3600)
    # altered body, altered timestamp, another secret
    altered = body.replace(b'"event_id"', b'"event_id" ', 1)
    for b, h, key in ((altered, headers, SECRET),
                      (body, {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}, SECRET),
                      (body, headers, "another-secret-0123456")):
        with pytest.raises(ValueError, match="bad signature"):
            ReadmeReceiver(key).check(b, h, now)
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
