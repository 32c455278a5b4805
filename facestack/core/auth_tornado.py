"""The Tornado side of API tokens and the audit log: every route, those added later included, in one place.

:class:`AuthApplication` resolves the handler, then checks the token in ``find_handler`` before any
handler runs, so routes that plugins add in ``activate`` are covered without their cooperation.
The role a route needs is the service's table (:mod:`facestack.core.roles`), else its handler's
``auth_roles`` (``{"POST": "operator", ...}``), else ``read`` to read and ``admin`` otherwise
(:func:`facestack.core.auth.default_role`). Every write, refused ones too, is audited when its
response is done (``log_request``; :mod:`facestack.core.audit`). The same place answers the HTTP
layer's refusals as JSON (:mod:`facestack.core.tornado_edge`): 413 for a body over
``max_body_bytes``, 405 with ``Allow``, 404. The aiohttp side is :mod:`facestack.core.authmw`.
"""
from __future__ import annotations

import json
import logging
import weakref
from typing import Any, Callable, Protocol

import tornado.httputil
import tornado.web

from facestack.core.audit import Auditor, is_write, object_id
from facestack.core.auth import Authenticator, AuthError, Principal, default_role
from facestack.core.roles import QUIET, Table
from facestack.core.tornado_edge import MethodNotAllowed, NotFound, TooLarge, allowed_methods

__all__ = ["AuthApplication", "AuditInfo", "Gate", "audit_info", "principal"]

log = logging.getLogger(__name__)


class Gate(Protocol):
    """Another way in besides a token (the router's console: a session cookie)."""

    def gate(self, request: tornado.httputil.HTTPServerRequest,
             check_token: Callable[[str], None], need: str | None = None) -> None:
        """Let ``request`` in or raise :class:`AuthError`; ``check_token(method)`` checks its token."""


class _Refused(tornado.web.RequestHandler):
    def initialize(self, error: AuthError) -> None:
        self.error = error

    def prepare(self) -> None:
        self.set_status(self.error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": self.error.code, "reason": self.error.reason}))


class AuthApplication(tornado.web.Application):
    """A Tornado application whose every request passes the token check first."""

    def __init__(self, handlers: list[Any], authenticator: Authenticator, *, service: str,
                 table: Table | None = None, gate: Gate | None = None,
                 max_body_bytes: int | None = None, **settings: Any) -> None:
        settings.setdefault("default_handler_class", NotFound)
        super().__init__(handlers, **settings)
        self.authenticator = authenticator
        self.auditor = Auditor(service)
        self.table: Table = table or {}
        self.gate = gate
        self.max_body_bytes = max_body_bytes
        #: what the audit record of each request in flight needs (dropped with the request)
        self.audit: weakref.WeakKeyDictionary[tornado.httputil.HTTPServerRequest, AuditInfo] = (
            weakref.WeakKeyDictionary())

    def find_handler(self, request: tornado.httputil.HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        length = _content_length(request)
        if self.max_body_bytes is not None and length is not None and length > self.max_body_bytes:
            log.info("%s %s -> 413: body of %d bytes", request.method, request.path, length)
            return self.get_handler_delegate(request, TooLarge,
                                             {"limit": self.max_body_bytes, "length": length})
        delegate = super().find_handler(request, **kwargs)
        cls = delegate.handler_class
        method = (request.method or "GET").upper()
        key = "GET" if method == "HEAD" else method
        roles = getattr(cls, "auth_roles", None) or {}
        need = self.table.get((key, request.path)) or roles.get(key) or default_role(method)
        args = [_text(a) for a in (delegate.path_args or list((delegate.path_kwargs or {}).values()))]
        info = AuditInfo(_route(request.path, args), object_id(args))
        self.audit[request] = info
        authorization = request.headers.get("Authorization")
        try:
            if self.gate is None:
                info.who = self.authenticator.authorize(method, request.path, authorization, need)
            else:  # a session cookie, or a token checked as below
                who = []

                def check_token(as_method: str) -> None:
                    who.append(self.authenticator.authorize(as_method, request.path, authorization,
                                                            need if as_method == method else None))

                self.gate.gate(request, check_token, need)
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
        info = self.audit.pop(request, None)
        if info is None or not is_write(request.method or "GET"):
            return
        if (request.method, request.path) in QUIET and handler.get_status() not in (401, 403):
            return
        detail = getattr(handler, "audit_detail", None) or info.detail
        self.auditor.record(info.who, request.method or "", info.route, request.path, info.obj,
                            handler.get_status(), detail)


class AuditInfo:
    """What the audit record of one request needs: its route template, the object it names (a
    handler may replace it, e.g. with the id it created), the token holder, a refusal's reason."""

    def __init__(self, route: str, obj: str | None) -> None:
        self.route = route
        self.obj = obj
        self.who: Principal | None = None
        self.detail: str | None = None


def audit_info(handler: tornado.web.RequestHandler) -> AuditInfo | None:
    """The audit record in the making of ``handler``'s request (None outside an
    :class:`AuthApplication`)."""
    app = handler.application
    return app.audit.get(handler.request) if isinstance(app, AuthApplication) else None


def principal(handler: tornado.web.RequestHandler) -> Principal | None:
    """The token holder of ``handler``'s request (None when auth is off)."""
    info = audit_info(handler)
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
