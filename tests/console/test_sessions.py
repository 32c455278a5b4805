"""The console's security: login for a session cookie, CSRF and Origin on changes, read versus
write, the Content-Security-Policy, no inline script, no token in a URL or a log."""
from __future__ import annotations

import logging
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from facerouter.console.pages import STATIC_DIR
from facerouter.console.sessions import COOKIE, SessionStore
from facestack.core.auth import Authenticator, AuthConfig, AuthError

READ = "console-read-token-0001"
WRITE = "console-write-token-0001"
AUTH = {"required": "always", "tokens": [{"token": READ, "role": "read", "name": "watcher"},
                                         {"token": WRITE, "role": "write", "name": "operator"}]}

HELLO = '''
import tornado.web
from facerouter.plugin import Plugin

class Hello(tornado.web.RequestHandler):
    def get(self):
        self.finish({"hello": "world"})
    def post(self):
        self.finish({"changed": True})

def activate(app, ctx, plugin_name, plugin_source):
    app.add_handlers(r".*", [(r"/plugin/hello", Hello)])
    return Plugin(ctx)
'''


async def _login(r: Any, token: str, origin: str | None = "same") -> tuple[int, Any, str | None]:
    headers = {"Content-Type": "application/json"}
    if origin:
        headers["Origin"] = r.base if origin == "same" else origin
    async with r.http.post(r.base + "/ui/login", json={"token": token}, headers=headers) as resp:
        cookie = resp.headers.get("Set-Cookie")
        return resp.status, await resp.json(), cookie


def _sid(set_cookie: str) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    return jar[COOKIE].value


async def test_login_sets_a_strict_httponly_cookie_and_never_logs_the_token(
        start_router: Any, fake_sfapi: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = await start_router({"hello": HELLO}, {"auth": AUTH}, sfapi_url=fake_sfapi.base)
    assert (await _login(r, "not-a-token-at-all-xx"))[0] == 401
    assert (await _login(r, WRITE, origin=None))[0] == 403
    assert (await _login(r, WRITE, origin="http://evil.example"))[0] == 403
    status, body, cookie = await _login(r, WRITE)
    assert status == 200 and body["role"] == "admin" and body["name"] == "operator"
    assert cookie is not None
    attrs = cookie.lower()
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs.replace("httponly", "")  # plain http: no Secure
    assert WRITE not in cookie and len(_sid(cookie)) >= 40
    async with r.http.get(r.base + "/ui/api/session", headers={"Cookie": f"{COOKIE}={_sid(cookie)}"}) as resp:
        info = await resp.json()
    assert info["authenticated"] and info["role"] == "admin" and info["csrf"] == body["csrf"]
    assert WRITE not in caplog.text and READ not in caplog.text


async def test_cookie_writes_need_csrf_origin_and_a_write_role(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router({"hello": HELLO}, {"auth": AUTH}, sfapi_url=fake_sfapi.base)
    sessions = {}
    for token in (READ, WRITE):
        status, body, cookie = await _login(r, token)
        assert status == 200
        sessions[token] = ({"Cookie": f"{COOKIE}={_sid(cookie)}"}, body["csrf"])

    async def call(method: str, token: str, csrf: str | None, origin: str | None) -> int:
        cookie, real = sessions[token]
        headers = dict(cookie)
        if csrf is not None:
            headers["X-CSRF-Token"] = real if csrf == "real" else csrf
        if origin is not None:
            headers["Origin"] = r.base if origin == "same" else origin
        async with r.http.request(method, r.base + "/plugin/hello", headers=headers) as resp:
            return resp.status

    assert await call("GET", READ, None, None) == 200          # a session reads without CSRF
    assert await call("POST", WRITE, None, "same") == 403      # no CSRF token
    assert await call("POST", WRITE, "forged", "same") == 403  # a wrong one
    assert await call("POST", WRITE, "real", None) == 403      # no Origin
    assert await call("POST", WRITE, "real", "http://evil.example") == 403
    assert await call("POST", READ, "real", "same") == 403     # read sessions see, never change
    assert await call("POST", WRITE, "real", "same") == 200
    async with r.http.get(r.base + "/plugin/hello", headers={"Cookie": f"{COOKIE}=made-up"}) as resp:
        assert resp.status == 401                              # an unknown session is no session
    # logging out (any role; CSRF-checked) ends the session
    for token in (READ, WRITE):
        cookie, csrf = sessions[token]
        async with r.http.post(r.base + "/ui/logout", headers={**cookie, "Origin": r.base}) as resp:
            assert resp.status == 403                          # a forged logout does nothing
        async with r.http.post(r.base + "/ui/logout", headers={**cookie, "X-CSRF-Token": csrf,
                                                              "Origin": r.base}) as resp:
            assert resp.status == 200
        async with r.http.get(r.base + "/plugin/hello", headers=cookie) as resp:
            assert resp.status == 401


async def test_page_has_a_strict_csp_and_no_inline_script(start_router: Any, fake_sfapi: Any) -> None:
    r = await start_router(None, {"auth": AUTH}, sfapi_url=fake_sfapi.base)
    for path in ("/ui/", "/ui/static/console.js", "/ui/static/console.css", "/ui/api/session"):
        async with r.http.get(r.base + path) as resp:
            assert resp.status == 200, path
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert resp.headers["X-Frame-Options"] == "DENY"
    async with r.http.get(r.base + "/ui", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/ui/"
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script in index.html"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler in index.html"
    js = (STATIC_DIR / "console.js").read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert banned not in js, banned
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", js + html), "a URL off this origin"


def test_sessions_expire_and_the_oldest_is_dropped() -> None:
    now = [1000.0]
    auth = Authenticator.from_config(AuthConfig.model_validate(AUTH), "127.0.0.1", "test")
    store = SessionStore(ttl_s=60, limit=2, clock=lambda: now[0])
    a = store.login(auth, READ)
    b = store.login(auth, WRITE)
    c = store.login(auth, WRITE)
    assert store.get(a.sid) is None and store.get(b.sid) is b and len(store) == 2
    now[0] += 61
    assert store.get(c.sid) is None
    with pytest.raises(AuthError):
        store.login(auth, "unknown-token-xxxxxxx")
    assert Path(STATIC_DIR / "index.html").exists()


async def test_behind_a_tls_proxy_the_public_origin_counts_and_the_cookie_is_secure(
        start_router: Any, fake_sfapi: Any) -> None:
    public = "https://faces.example.com"
    r = await start_router({"hello": HELLO}, {"auth": AUTH, "console": {"public_url": public + "/ui/"}},
                           sfapi_url=fake_sfapi.base)
    assert (await _login(r, WRITE))[0] == 403          # the proxy's origin, not the backend's
    status, body, cookie = await _login(r, WRITE, origin=public)
    assert status == 200 and cookie is not None
    assert "; secure" in cookie.lower()
    headers = {"Cookie": f"{COOKIE}={_sid(cookie)}", "X-CSRF-Token": body["csrf"]}
    async with r.http.post(r.base + "/plugin/hello", headers={**headers, "Origin": r.base}) as resp:
        assert resp.status == 403
    async with r.http.post(r.base + "/plugin/hello", headers={**headers, "Origin": public}) as resp:
        assert resp.status == 200


def test_public_url_must_be_an_http_url() -> None:
    from pydantic import ValidationError

    from facerouter.console.config import ConsoleConfig

    assert ConsoleConfig(public_url="https://a.example:8443/ui/").public_url == "https://a.example:8443"
    with pytest.raises(ValidationError):
        ConsoleConfig(public_url="faces.example.com")
