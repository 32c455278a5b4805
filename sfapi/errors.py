"""Error hierarchy of the sfapi package.

Every error the service can answer with is a subclass of :class:`SfapiError` carrying the wire
``code`` of the reference API, the HTTP ``status`` and, for BAD_PARAM, the ``param`` and ``value``.
"""
from __future__ import annotations

from typing import Any

from facestack.core.errors import ConfigError, FacestackError, printable
from facestack.vision.errors import (EmptyImage, ImageError, ImageTooLarge, ModelPackError,
                                     RuntimeUnavailable)

#: re-exported: the common config error and the vision errors sfapi's commands report
__all__ = ["ConfigError", "ModelPackError", "RuntimeUnavailable"]


class SfapiError(FacestackError):
    """Root of every sfapi error; ``to_json`` gives the wire body."""

    code = "UNKNOWN_ERROR"
    status = 500

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "reason": self.reason}
        body.update(self.extra)
        return body


class MalformedRequest(SfapiError):
    code = "MALFORMED_REQUEST"
    status = 400


class BadParam(SfapiError):
    code = "BAD_PARAM"
    status = 400

    def __init__(self, param: str, value: Any, reason: str) -> None:
        super().__init__(reason, param=param, value=printable(value))
        self.param = param
        self.value = value


class PayloadTooLarge(SfapiError):
    """An image over the configured byte or pixel limit (reported as BAD_PARAM with status 413)."""

    code = "BAD_PARAM"
    status = 413

    def __init__(self, param: str, value: Any, reason: str) -> None:
        super().__init__(reason, param=param, value=printable(value))


class ExtractionError(SfapiError):
    code = "EXTRACTION_ERROR"
    status = 422


class OverCapacity(SfapiError):
    code = "OVER_CAPACITY"
    status = 503


class CacheError(SfapiError):
    code = "CACHE_ERROR"
    status = 503


class NotFound(SfapiError):
    code = "NOT_FOUND"
    status = 404


class NotImplementedFeature(SfapiError):
    """NOT_IMPLEMENTED, a code of the reference API: kept for the routes it documents and a later
    backend that lacks a feature (none of today's raises it)."""

    code = "NOT_IMPLEMENTED"
    status = 501


class Conflict(SfapiError):
    code = "CONFLICT"
    status = 409


class GalleryNotFound(SfapiError):
    code = "GALLERY_NOT_FOUND"
    status = 404


class SourceNotFound(SfapiError):
    code = "SOURCE_NOT_FOUND"
    status = 404


class SourceGalleryNotFound(SfapiError):
    code = "SOURCE_GALLERY_NOT_FOUND"
    status = 404


class StorageError(SfapiError):
    code = "STORAGE_ERROR"
    status = 503


def from_image_error(exc: ImageError) -> SfapiError:
    """The HTTP answer for image bytes the vision layer refused."""
    if isinstance(exc, EmptyImage):
        return MalformedRequest(exc.reason)
    if isinstance(exc, ImageTooLarge):
        return PayloadTooLarge(exc.param, exc.value, exc.reason)
    return BadParam(exc.param, exc.value, exc.reason)
