"""API tokens and the audit log for the router: every route, the plugins' own included, in one place.

A Tornado ``Application`` subclass resolves the handler, then checks the token in ``find_handler``
before any handler runs, so routes that plugins add in ``activate`` are covered without their
cooperation. The role a route needs is its handler's ``auth_roles`` (``{"POST": "operator", ...}``;
a method missing there needs ``read`` to read and ``admin`` otherwise, see :mod:`facestack.core.auth`);
/healthz is open. Every write, refused ones too, is audited when its response is done
(``log_request``; :mod:`facestack.core.audit`). The same place answers the HTTP layer's refusals as JSON
(:mod:`facerouter.edge`): 413 for a body over ``max_body_bytes``, 405 with ``Allow``, 404.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import tornado.httputil
import tornado.web

from facerouter.edge import MethodNotAllowed, NotFound, TooLarge, allowed_methods
from facestack.core.audit import Auditor, is_write, object_id
from facestack.core.auth import Authenticator, AuthError, Principal, default_role
from facestack.core.roles import QUIET, ROUTER

log = logging.getLogger(__name__)


class _Refused(tornado.web.RequestHandler):
    def initialize(self, error: AuthError) -> None:
        self.error = error

    def prepare(self) -> None:
        self.set_status(self.error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": self.error.code, "reason": self.error.reason}))


class AuthApplication(tornado.web.Application):
    """A Tornado application whose every request passes the token check first."""

    def __init__(self, handlers: list[Any], authenticator: Authenticator, *,
                 max_body_bytes: int | None = None, **settings: Any) -> None:
        settings.setdefault("default_handler_class", NotFound)
        super().__init__(handlers, **settings)
        self.authenticator = authenticator
        self.auditor = Auditor("facerouter")
        self.max_body_bytes = max_body_bytes

    def find_handler(self, request: tornado.httputil.HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        length = _content_length(request)
        if self.max_body_bytes is not None and length is not None and length > self.max_body_bytes:
            log.info("%s %s -> 413: body of %d bytes", request.method, request.path, length)
            return self.get_handler_delegate(request, TooLarge,
                                             {"limit": self.max_body_bytes, "length": length})
        console = self.settings.get("console")  # facerouter.console: session cookies, /ui/ pages
        delegate = super().find_handler(request, **kwargs)
        cls = delegate.handler_class
        method = (request.method or "GET").upper()
        key = "GET" if method == "HEAD" else method
        roles = getattr(cls, "auth_roles", None) or {}
        need = ROUTER.get((key, request.path)) or roles.get(key) or default_role(method)
        args = [_text(a) for a in (delegate.path_args or list((delegate.path_kwargs or {}).values()))]
        info = _AuditInfo(_route(request.path, args), object_id(args))
        request.facestack_audit = info  # type: ignore[attr-defined]
        authorization = request.headers.get("Authorization")
        try:
            if console is None:
                info.who = self.authenticator.authorize(method, request.path, authorization, need)
            else:  # a session cookie, or a token checked as below
                who = []

                def check_token(as_method: str) -> None:
                    who.append(self.authenticator.authorize(as_method, request.path, authorization,
                                                            need if as_method == method else None))

                console.gate(request, check_token, need)
                info.who = who[0] if who else None
        except AuthError as exc:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.reason)
            info.detail = exc.reason
            info.who = exc.who
            return self.get_handler_delegate(request, _Refused, {"error": exc})
        allow = allowed_methods(cls)
        if cls is not NotFound and request.method not in allow:
            return self.get_handler_delegate(request, MethodNotAllowed, {"allow": allow})
        return delegate

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        super().log_request(handler)
        request = handler.request
        info = getattr(request, "facestack_audit", None)
        if info is None or not is_write(request.method or "GET"):
            return
        if (request.method, request.path) in QUIET and handler.get_status() not in (401, 403):
            return
        detail = getattr(handler, "audit_detail", None) or info.detail
        self.auditor.record(info.who, request.method or "", info.route, request.path, info.obj,
                            handler.get_status(), detail)


class _AuditInfo:
    """What the audit record of one request needs, kept on the request."""

    def __init__(self, route: str, obj: str | None) -> None:
        self.route = route
        self.obj = obj
        self.who: Principal | None = None
        self.detail: str | None = None


def principal(handler: tornado.web.RequestHandler) -> Principal | None:
    """The token holder of ``handler``'s request (None when auth is off)."""
    info = getattr(handler.request, "facestack_audit", None)
    return info.who if info is not None else None


def _text(arg: bytes | str | None) -> str:
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return arg or ""


def _route(path: str, args: list[str]) -> str:
    """The path with each path argument replaced by ``{id}``: the route's template."""
    out = path
    for arg in reversed([a for a in args if a]):
        at = out.rfind(arg)
        if at >= 0:
            out = out[:at] + "{id}" + out[at + len(arg):]
    return out


def _content_length(request: tornado.httputil.HTTPServerRequest) -> int | None:
    try:
        return int(request.headers.get("Content-Length", ""))
    except ValueError:
        return None
