"""Error hierarchy of the video worker.

:class:`VideoWorkerError` is the root. Errors answered over the job API carry the HTTP ``status``
and the wire ``code`` (body ``{"code", "desc"}``, the video manager's shape); source errors say
whether reconnecting can help; delivery errors say whether the post may be retried.
"""
from __future__ import annotations

from typing import Any

from facestack.core import errors as core

__all__ = [
    "VideoWorkerError",
    "ConfigError",
    "EngineError",
    "SourceError",
    "SourceOpenError",
    "SourceStalled",
    "DeliveryError",
    "PostRejected",
    "RouterUnavailable",
    "RouterUnauthorized",
    "SpoolError",
    "ApiError",
    "BadJob",
    "JobNotFound",
    "StoreUnavailable",
]


class VideoWorkerError(core.FacestackError):
    """Root of every error raised by the video worker itself."""


class ConfigError(VideoWorkerError, core.ConfigError):
    """The worker config or a camera job's settings are invalid (message: ``file:line key: why``)."""


class EngineError(VideoWorkerError):
    """The detector cannot be built (no model pack, unknown runtime)."""


# --- sources ---------------------------------------------------------------------------------------

class SourceError(VideoWorkerError):
    """A camera stream failed; the job reconnects with back-off."""


class SourceOpenError(SourceError):
    """The stream could not be opened (unreachable, refused, not a video)."""


class SourceStalled(SourceError):
    """No frame arrived within the read timeout."""


# --- delivery --------------------------------------------------------------------------------------

class DeliveryError(VideoWorkerError):
    """A post could not be delivered to facerouter."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PostRejected(DeliveryError):
    """facerouter refused the post for good (4xx other than 408/429): retrying cannot help."""


class RouterUnavailable(DeliveryError):
    """facerouter is unreachable, timed out or answered 5xx/408/429: retry later."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RouterUnauthorized(RouterUnavailable):
    """facerouter refused the worker's token (401/403), or sfapi refused facerouter's
    (502 ``SFAPI_UNAUTHORIZED``): an operator's mistake, not the post's. The post is kept (spooled)
    and retried with back-off until the token is fixed; the job shows ``unauthorized``."""


class SpoolError(VideoWorkerError):
    """The on-disk spool cannot be read or written."""


# --- job API ---------------------------------------------------------------------------------------

class ApiError(VideoWorkerError):
    """An error answered over the job API as ``{"code", "desc"}`` with ``status``."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, desc: str, **extra: Any) -> None:
        super().__init__(desc)
        self.desc = desc
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        """The wire body: the video manager's ``desc``, and the ``reason`` every service's body has."""
        return {"code": self.code, "desc": self.desc, "reason": self.desc, **self.extra}


class BadJob(ApiError):
    """The job body is malformed or its settings do not validate."""

    status = 400
    code = "BAD_PARAM"


class JobNotFound(ApiError):
    """No job with that id."""

    status = 404
    code = "NOT_FOUND"


class StoreUnavailable(ApiError):
    """The job store (:mod:`video_worker.jobstore`) did not answer: writes and reads of the fleet's
    jobs wait for it; running jobs keep running until their leases run out."""

    status = 503
    code = "STORE_UNAVAILABLE"
