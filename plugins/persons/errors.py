"""Errors of the persons API: each carries the HTTP status and the wire body fields.

The body is ``{"code", "reason", "param", "value"}`` like sfapi's and the router's; a handler turns
any :class:`ApiError` into that answer, and bad input always names the parameter (400), never 500.
"""
from __future__ import annotations

from typing import Any

from facestack.core.errors import WireError, printable

__all__ = ["ApiError", "BadParam", "NoFace", "NotFound", "Conflict", "Unavailable"]


class ApiError(WireError):
    """Root of the errors answered by the persons API."""

    status = 500
    code = "UNKNOWN_ERROR"

    def __init__(self, reason: str, *, param: str | None = None, value: Any = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(reason, param=param, value=value, **(extra or {}))

    def to_json(self) -> dict[str, Any]:
        """The wire body (``param`` and ``value`` always present)."""
        return {"code": self.code, "reason": self.reason, "param": self.param,
                "value": printable(self.value, lists=True), **self.extra}


class BadParam(ApiError):
    """A parameter is missing or malformed (``param`` names it)."""

    status = 400
    code = "BAD_PARAM"


class NoFace(BadParam):
    """An uploaded photo shows no face (``param`` names the part)."""

    code = "NO_FACE"


class NotFound(ApiError):
    """The object a path or parameter names does not exist."""

    status = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    """The request clashes with what is stored (a taken name, an existing person)."""

    status = 409
    code = "CONFLICT"


class Unavailable(ApiError):
    """sfapi or the database cannot answer now; retry later."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
