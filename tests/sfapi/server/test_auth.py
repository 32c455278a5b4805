"""API tokens on the real sfapi: 401 without, 403 read-only on writes, off on loopback by default."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import logging

import pytest

from facestack.core.auth import AuthConfig, Authenticator, AuthError, AuthSetupError, is_loopback
from sfapi.client import Client, SFApiRemoteError

READ = "read-token-0123456789"
WRITE = "write-token-0123456789"
AUTH = {"required": "always", "tokens": [{"token": READ, "role": "read", "name": "dashboard"},
                                          {"token": WRITE, "role": "write", "name": "router"}]}


async def test_tokens_on_the_real_service(start_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    srv = await start_server({"auth": AUTH})
    status, body, _ = await srv.call("GET", "/v2/galleries")
    assert status == 401 and body["code"] == "UNAUTHORIZED"
    status, body, _ = await srv.call("GET", "/v2/galleries", headers={"Authorization": "Bearer nope"})
    assert status == 401
    status, body, _ = await srv.call("GET", "/v2/galleries", headers={"Authorization": f"Bearer {READ}"})
    assert status == 200
    status, body, _ = await srv.call("POST", "/v2/galleries/g", headers={"Authorization": f"Bearer {READ}"})
    assert status == 403 and body["code"] == "FORBIDDEN"
    status, body, _ = await srv.call("GET", "/healthz")
    assert status == 200
    async with Client(srv.base, token=WRITE) as c:
        await c.gallery("g").create()
        assert [g.name for g in await c.list_galleries()] == ["g"]
    async with Client(srv.base) as c:
        with pytest.raises(SFApiRemoteError) as err:
            await c.list_galleries()
        assert err.value.code == "UNAUTHORIZED"
    assert READ not in caplog.text and WRITE not in caplog.text


def test_default_is_on_off_loopback_only() -> None:
    assert not Authenticator.from_config(AuthConfig(), "127.0.0.1", "x").enabled
    with pytest.raises(AuthSetupError, match="binds to 0.0.0.0"):
        Authenticator.from_config(AuthConfig(), "0.0.0.0", "x")
    assert Authenticator.from_config(AuthConfig.model_validate(AUTH | {"required": "auto"}), "10.1.2.3", "x").enabled
    assert not Authenticator.from_config(AuthConfig(required="never"), "0.0.0.0", "x").enabled
    with pytest.raises(AuthSetupError, match="shorter"):
        Authenticator.from_config(AuthConfig.model_validate({"tokens": [{"token": "short"}]}), "::", "x")


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
                                        ("localhost", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                        ("example.org", False), ("", False)])
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_check_semantics() -> None:
    a = Authenticator.from_config(AuthConfig.model_validate(AUTH), "127.0.0.1", "x")
    assert a.check("GET", "/x", f"Bearer {READ}") == "dashboard"
    assert a.check("DELETE", "/x", f"Bearer {WRITE}") == "router"
    for method, header, status in [("GET", None, 401), ("GET", "Basic abc", 401), ("POST", f"Bearer {READ}", 403)]:
        with pytest.raises(AuthError) as err:
            a.check(method, "/x", header)
        assert err.value.status == status
    assert READ not in repr(AuthConfig.model_validate(AUTH))  # secrets do not leak into logs or reprs
