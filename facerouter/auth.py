"""API tokens for the router: every route, the plugins' own included, is checked in one place.

A Tornado ``Application`` subclass checks the token in ``find_handler`` before any handler runs, so
routes that plugins add in ``activate`` are covered without their cooperation. The rules are
``sfapi.auth``'s: 401 without a valid token, 403 for a read-only token on a write, /healthz open.
The same place answers the HTTP layer's refusals as JSON (:mod:`facerouter.edge`): 413 for a body
over ``max_body_bytes``, 405 with ``Allow``, 404.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import tornado.httputil
import tornado.web

from facerouter.edge import MethodNotAllowed, NotFound, TooLarge, allowed_methods
from sfapi.auth import Authenticator, AuthError

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
        self.max_body_bytes = max_body_bytes

    def find_handler(self, request: tornado.httputil.HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        length = _content_length(request)
        if self.max_body_bytes is not None and length is not None and length > self.max_body_bytes:
            log.info("%s %s -> 413: body of %d bytes", request.method, request.path, length)
            return self.get_handler_delegate(request, TooLarge,
                                             {"limit": self.max_body_bytes, "length": length})
        console = self.settings.get("console")  # facerouter.console: session cookies, /ui/ pages
        try:
            if console is not None:
                console.gate(request, lambda method: self.authenticator.check(
                    method, request.path, request.headers.get("Authorization")))
            else:
                self.authenticator.check(request.method or "GET", request.path,
                                         request.headers.get("Authorization"))
        except AuthError as exc:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.reason)
            return self.get_handler_delegate(request, _Refused, {"error": exc})
        delegate = super().find_handler(request, **kwargs)
        cls = delegate.handler_class
        allow = allowed_methods(cls)
        if cls is not NotFound and request.method not in allow:
            return self.get_handler_delegate(request, MethodNotAllowed, {"allow": allow})
        return delegate


def _content_length(request: tornado.httputil.HTTPServerRequest) -> int | None:
    try:
        return int(request.headers.get("Content-Length", ""))
    except ValueError:
        return None
