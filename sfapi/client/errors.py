"""Errors raised by the sfapi client library.

Two kinds of failure are told apart, as in the documented ``ntech.sfapi_client``:

* :class:`SFApiRemoteError` -- the service answered, with a non-2xx status and a JSON error body
  ``{"code": ..., "reason": ..., "param": ..., "value": ...}``;
* :class:`SFApiMalformedResponseError` -- no usable answer: a network failure, a timeout
  (:class:`SFApiTimeoutError`), or a body the client cannot read. The underlying exception, when there
  is one, is chained as ``__cause__``.

Both derive from :class:`SFApiError`, so ``except SFApiError`` catches every failure of a call.
"""
from __future__ import annotations

from typing import Any

from facestack.core.errors import FacestackError

__all__ = [
    "SFApiError",
    "SFApiRemoteError",
    "SFApiMalformedResponseError",
    "SFApiTimeoutError",
    "REMOTE_ERROR_CODES",
]

#: The error codes the service documents (``SFApiRemoteError.code`` may still carry another string).
REMOTE_ERROR_CODES: frozenset[str] = frozenset({
    "UNKNOWN_ERROR",
    "BAD_PARAM",
    "CONFLICT",
    "EXTRACTION_ERROR",
    "LICENSE_ERROR",
    "MALFORMED_REQUEST",
    "OVER_CAPACITY",
    "SOURCE_NOT_FOUND",
    "SOURCE_GALLERY_NOT_FOUND",
    "STORAGE_ERROR",
    "CACHE_ERROR",
    "NOT_FOUND",
    "NOT_IMPLEMENTED",
    "GALLERY_NOT_FOUND",
})


class SFApiError(FacestackError):
    """Root of every error raised by the client library."""


class SFApiRemoteError(SFApiError):
    """The service answered with an error body.

    Attributes:
        code: short ``CAPS_AND_UNDERSCORES`` string for automatic handling (e.g. ``"CONFLICT"``).
        reason: human-readable description; not meant to be interpreted automatically.
        param: for ``BAD_PARAM``, the name of the invalid parameter (else usually ``None``).
        value: for ``BAD_PARAM``, the rejected value (else usually ``None``).
        status: the HTTP status of the answer (``None`` when not known).
    """

    def __init__(self, code: str, reason: str, param: str | None = None, value: Any = None,
                 status: int | None = None) -> None:
        self.code = code
        self.reason = reason
        self.param = param
        self.value = value
        self.status = status
        super().__init__(code, reason, param, value, status)

    def __str__(self) -> str:
        text = f"{self.code}: {self.reason}"
        if self.param is not None:
            text += f" (param={self.param!r}, value={self.value!r})"
        if self.status is not None:
            text += f" [HTTP {self.status}]"
        return text


class SFApiMalformedResponseError(SFApiError):
    """No usable answer: network failure, timeout, or a response the client could not read.

    Attributes:
        status: HTTP status of the unreadable answer, or ``None`` when there was no answer at all.
        body: the first bytes of the unreadable body (at most 1 KiB), or ``None``.

    The exception that caused it (an ``aiohttp`` error, a ``TimeoutError``, a JSON decoding error
    ...) is available as ``__cause__``.
    """

    def __init__(self, message: str, *, status: int | None = None, body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:1024] if body is not None else None


class SFApiTimeoutError(SFApiMalformedResponseError):
    """The call did not complete within its timeout (the per-call one or the client default)."""
