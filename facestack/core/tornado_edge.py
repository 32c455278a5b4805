"""The HTTP layer's own refusals in a Tornado service, as JSON like every other error.

* a body over ``max_body_bytes`` (by its ``Content-Length``): 413 ``PAYLOAD_TOO_LARGE``. A body up
  to :data:`DISCARD_LIMIT` bytes is read and thrown away first, so the client gets the answer
  instead of a reset connection; a larger one is answered at once and the connection closed;
* a method the route does not implement: 405 ``METHOD_NOT_ALLOWED`` with ``Allow``;
* no route: 404 ``NOT_FOUND``.

They apply to every route, the plugins' own included (:class:`~facestack.core.auth_tornado.AuthApplication`
picks these handlers in ``find_handler``, before any handler runs).
"""
from __future__ import annotations

import json
from typing import Any

import tornado.web

__all__ = ["TooLarge", "MethodNotAllowed", "NotFound", "allowed_methods", "DISCARD_LIMIT"]

#: largest oversized body read (and discarded) so that its sender reads the 413
DISCARD_LIMIT = 256 * 1024 * 1024
_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")


def allowed_methods(handler_class: type[tornado.web.RequestHandler]) -> list[str]:
    """The HTTP methods ``handler_class`` implements (``HEAD`` with ``GET`` only if defined)."""
    base = tornado.web.RequestHandler
    return [m for m in _METHODS if m in handler_class.SUPPORTED_METHODS
            and getattr(handler_class, m.lower(), None) is not getattr(base, m.lower(), None)]


class _JsonRefusal(tornado.web.RequestHandler):
    SUPPORTED_METHODS = _METHODS + ("CONNECT", "TRACE")  # type: ignore[assignment]
    status = 400
    code = "MALFORMED_REQUEST"

    def answer(self, reason: str) -> None:
        self.set_status(self.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": self.code, "reason": reason}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        allow = getattr(self, "allow", None)
        if status_code == 405 and allow:
            self.set_header("Allow", ", ".join(allow))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": "MALFORMED_REQUEST", "reason": self._reason}))


@tornado.web.stream_request_body
class TooLarge(_JsonRefusal):
    """413 for a body whose ``Content-Length`` is over the limit."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"

    def initialize(self, limit: int, length: int) -> None:
        self.limit = limit
        self.length = length

    def prepare(self) -> None:
        if self.length <= DISCARD_LIMIT:
            self.request.connection.set_max_body_size(self.length)  # type: ignore[union-attr]
        else:
            self._refuse()

    def data_received(self, chunk: bytes) -> None:
        pass  # thrown away

    def _refuse(self) -> None:
        self.answer(f"the body is {self.length} bytes; at most {self.limit} are accepted")

    def get(self, *args: Any) -> None:
        self._refuse()

    head = post = delete = patch = put = options = get


class MethodNotAllowed(_JsonRefusal):
    """405 with ``Allow`` listing the methods of the route."""

    status = 405
    code = "METHOD_NOT_ALLOWED"

    def initialize(self, allow: list[str]) -> None:
        self.allow = allow

    def prepare(self) -> None:
        self.set_header("Allow", ", ".join(self.allow))
        self.answer(f"{self.request.method} is not allowed here; allowed: {', '.join(self.allow)}")


class NotFound(_JsonRefusal):
    """404 for a path no route matches."""

    status = 404
    code = "NOT_FOUND"

    def prepare(self) -> None:
        self.answer(f"no such path: {self.request.path}")
