"""The Tornado side of the one error shape: a handler base that answers JSON, errors included.

Every error body is ``{"code", "reason", "param", "value"}`` (more fields where a service adds
them): a :class:`~facestack.core.errors.WireError` with its status, Tornado's own errors (a bad
multipart body, 405) as ``MALFORMED_REQUEST``, anything unexpected as a 500 ``UNKNOWN_ERROR``
(with the traceback in the log: a bug, since bad input is always a 4xx that names the parameter).
"""
from __future__ import annotations

import json
from typing import Any

import tornado.web

from facestack.core.errors import WireError

__all__ = ["JsonHandler"]


class JsonHandler(tornado.web.RequestHandler):
    """Base of the facerouter's and its plugins' JSON handlers."""

    def send_json(self, status: int, body: Any) -> None:
        """Answer ``body`` as JSON with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def as_wire_error(self, exc: BaseException | None) -> WireError | None:
        """The answer for an exception a handler raised (a subclass maps its own errors)."""
        return exc if isinstance(exc, WireError) else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        wire = self.as_wire_error(exc)
        if wire is not None:
            self.set_status(wire.status)
            body = wire.to_json()
        else:
            reason = self._reason
            if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
                reason = exc.log_message % exc.args if exc.args else exc.log_message
            code = "MALFORMED_REQUEST" if status_code < 500 else "UNKNOWN_ERROR"
            body = {"code": code, "reason": reason, "param": None, "value": None}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
