"""The one error root of facestack and the error every service answers over HTTP.

Every error the project raises on purpose derives from :class:`FacestackError`, so a command line
or a start-up path catches one class and prints one line. :class:`WireError` adds what an HTTP
answer needs: ``status``, ``code``, ``reason`` and, for a bad parameter, ``param`` and ``value``.
The services keep their own subclasses (and body shapes the reference APIs fix); every body has
``code`` and ``reason``, and ``param``/``value`` when a parameter is at fault.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FacestackError", "ConfigError", "FetchError", "WireError", "printable"]

#: the longest text an error body repeats back (the rest is cut and marked with "...")
VALUE_LIMIT = 200


class FacestackError(Exception):
    """Root of every error facestack raises on purpose (a bug raises something else)."""


class ConfigError(FacestackError):
    """A configuration file that cannot be used; the message names file, line, key and value."""


class WireError(FacestackError):
    """An error answered over HTTP; ``to_json`` is its body."""

    status = 500
    code = "UNKNOWN_ERROR"

    def __init__(self, reason: str, *, param: str | None = None, value: Any = None,
                 **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.param = param
        self.value = value
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.param is not None:
            body["param"] = self.param
            body["value"] = printable(self.value)
        body.update(self.extra)
        return body


def printable(value: Any, *, lists: bool = False) -> Any:
    """``value`` as an error body repeats it: JSON scalars as they are, text cut to
    :data:`VALUE_LIMIT` characters, anything else (bytes, objects) as a short repr; ``lists``:
    a short list of scalars stays a list."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if lists and isinstance(value, (list, tuple)) and len(value) <= 20 and all(
            isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT - 3] + "..."


class FetchError(FacestackError):
    """A pinned registry archive cannot be downloaded, or its hash differs from the pin."""
