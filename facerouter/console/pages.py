"""The console's page, its static files, and the login / logout / session routes.

* ``GET /ui/`` the page (``static/index.html``); ``GET /ui/static/<file>`` its scripts, styles and
  icons. Every answer under ``/ui/`` carries a strict Content-Security-Policy (scripts and styles
  from these files only, no inline script, images from this origin), ``X-Frame-Options: DENY``,
  ``nosniff`` and ``Referrer-Policy: no-referrer``.
* ``POST /ui/login`` JSON ``{"token"}`` from the page's own origin -> sets the session cookie;
  ``{"name", "role", "csrf"}``. The token travels in the body only (never in a URL) and is never
  logged.
* ``POST /ui/logout`` ends the session (CSRF-checked like every change).
* ``GET /ui/api/session`` -> ``{"auth_required", "authenticated", "name", "role", "csrf",
  "features"}`` (what the page needs to decide between the login form and the console).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web

from facestack.core.auth import AuthError
from facestack.core.safejson import JsonRefused, loads

from .sessions import COOKIE, CSRF_HEADER, page_origin, same_origin

if TYPE_CHECKING:
    from .service import Console

__all__ = ["STATIC_DIR", "CSP", "ConsoleHandler", "IndexHandler", "StaticHandler", "LoginHandler",
           "LogoutHandler", "SessionHandler"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def security_headers(handler: tornado.web.RequestHandler) -> None:
    handler.set_header("Content-Security-Policy", CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Referrer-Policy", "no-referrer")


class ConsoleHandler(tornado.web.RequestHandler):
    """Base of the console's routes: JSON answers and errors, the security headers."""

    def initialize(self, console: Console) -> None:
        self.console = console

    def set_default_headers(self) -> None:
        security_headers(self)
        self.set_header("Cache-Control", "no-store")

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def fail(self, status: int, code: str, reason: str, param: str | None = None) -> None:
        self.send({"code": code, "reason": reason, "param": param}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = self._reason
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        code = "MALFORMED_REQUEST" if status_code < 500 else "UNKNOWN_ERROR"
        self.fail(status_code, code, reason)

    def json_body(self) -> dict[str, Any] | None:
        """The JSON object body, or None after answering 400."""
        try:
            body = loads(self.request.body or b"{}")
        except JsonRefused as exc:
            self.fail(400, "BAD_PARAM", f"the body is not acceptable JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self.fail(400, "BAD_PARAM", "the body must be a JSON object")
            return None
        return body


class IndexHandler(ConsoleHandler):
    """``GET /ui/``: the page (``/ui`` redirects here); read once, at start."""

    def get(self) -> None:
        if not self.request.path.endswith("/"):
            self.redirect("/ui/", permanent=False)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.console.index_html)


class StaticHandler(tornado.web.StaticFileHandler):
    """``GET /ui/static/<file>`` with the console's security headers."""

    def set_default_headers(self) -> None:
        security_headers(self)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class SessionHandler(ConsoleHandler):
    """``GET /ui/api/session`` (open: it says whether there is a session)."""

    def get(self) -> None:
        console = self.console
        sess = console.sessions.from_request(self.request)
        required = console.authenticator.enabled
        body: dict[str, Any] = {"auth_required": required, "authenticated": sess is not None,
                                "name": None, "role": None, "csrf": None,
                                "features": console.features()}
        if sess is not None:
            body.update(name=sess.name, role=sess.role, csrf=sess.csrf)
        elif not required:
            body.update(role="admin")
        self.send(body)


class LoginHandler(ConsoleHandler):
    """``POST /ui/login``."""

    def post(self) -> None:
        public = self.console.config.public_url
        if not same_origin(self.request, public):
            self.fail(403, "FORBIDDEN", "log in from the console's own page (Origin header)")
            return
        body = self.json_body()
        if body is None:
            return
        token = body.get("token")
        if not isinstance(token, str) or not token.strip() or len(token) > 4096:
            self.fail(400, "BAD_PARAM", "token must be a non-empty string", "token")
            return
        try:
            sess = self.console.sessions.login(self.console.authenticator, token)
        except AuthError as exc:
            log.warning("console login refused from %s: %s", self.request.remote_ip, exc.reason)
            self.fail(exc.status, exc.code, exc.reason, "token")
            return
        self.set_cookie(COOKIE, sess.sid, path="/", httponly=True, samesite="Strict",
                        secure=page_origin(self.request, public).startswith("https:"),
                        expires_days=self.console.config.session_ttl_s / 86400)
        log.info("console login: %s (%s) from %s", sess.name, sess.role, self.request.remote_ip)
        self.send({"name": sess.name, "role": sess.role, "csrf": sess.csrf})


class LogoutHandler(ConsoleHandler):
    """``POST /ui/logout`` (needs the session's CSRF token, as every change)."""

    def post(self) -> None:
        sess = self.console.sessions.from_request(self.request)
        if sess is not None:
            if self.request.headers.get(CSRF_HEADER, "") != sess.csrf or \
                    not same_origin(self.request, self.console.config.public_url):
                self.fail(403, "FORBIDDEN", f"log out from the console's page ({CSRF_HEADER})")
                return
            self.console.sessions.logout(sess.sid)
        self.clear_cookie(COOKIE, path="/")
        self.send({"authenticated": False})
