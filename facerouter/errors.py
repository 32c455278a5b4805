"""Error hierarchy of the facerouter package.

:class:`FacerouterError` is the root. Errors raised while starting (config, plugin loading) carry the
plugin name and, for hook problems, the hook and its expected signature, so start-up fails with a
message that says what to fix. Errors answered to a frame sender carry the HTTP ``status`` and the
wire ``code`` (same ``{"code", "reason", "param", "value"}`` body as sfapi).
"""
from __future__ import annotations

from facestack.core import errors as core

__all__ = [
    "FacerouterError",
    "ConfigError",
    "PluginError",
    "PluginLoadError",
    "PluginHookError",
    "PluginConfigError",
    "FrameError",
    "BadFrame",
    "FrameRefused",
    "NoFaceFound",
    "Overloaded",
    "SfapiUnavailable",
    "SfapiUnauthorized",
    "PayloadTooLarge",
    "StoreUnavailable",
]


class FacerouterError(core.FacestackError):
    """Root of every error raised by facerouter itself."""


class ConfigError(FacerouterError, core.ConfigError):
    """The facerouter config (or a plugin's section of it) is invalid."""


# --- plugins -------------------------------------------------------------------------------------

class PluginError(FacerouterError):
    """A problem with one plugin; ``plugin`` is its name (or its source when it has none yet)."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


class PluginLoadError(PluginError):
    """A plugin module cannot be imported or does not define a plugin."""


class PluginHookError(PluginLoadError):
    """A plugin's hook is missing or has the wrong signature.

    Attributes:
        hook: the hook's name (``preprocess``, ``process``, ``shutdown`` or ``activate``).
        signature: the signature the hook must accept.
    """

    def __init__(self, plugin: str, hook: str, signature: str, problem: str) -> None:
        super().__init__(plugin, f"hook {hook}{signature}: {problem}")
        self.hook = hook
        self.signature = signature


class PluginConfigError(PluginError, ConfigError):
    """A plugin's config section does not validate against the plugin's config model."""


# --- frames (answered to the sender) -------------------------------------------------------------

class FrameError(FacerouterError, core.WireError):
    """A frame could not be handled; ``status`` and ``code`` make the HTTP answer, the body is
    ``{"code", "reason"[, "param", "value"]}`` (:class:`facestack.core.errors.WireError`)."""

    status = 500
    code = "UNKNOWN_ERROR"


class BadFrame(FrameError):
    """A part of the frame is missing or malformed (``param`` names the part)."""

    status = 400
    code = "BAD_PARAM"


class FrameRefused(FrameError):
    """The frame is well formed but this router will not handle it (e.g. no face0, detector '')."""

    status = 400
    code = "BAD_PARAM"


class NoFaceFound(FrameError):
    """sfapi found no face to process in the frame (retrying would not help)."""

    status = 422
    code = "EXTRACTION_ERROR"


class Overloaded(FrameError):
    """Too many frames in flight, or the router is stopping: the sender should retry later."""

    status = 503
    code = "OVER_CAPACITY"


class SfapiUnavailable(FrameError):
    """sfapi is unreachable, overloaded or failing (5xx): the sender should retry later."""

    status = 503
    code = "SFAPI_UNAVAILABLE"


class SfapiUnauthorized(FrameError):
    """sfapi refused the router's own token (401/403): an operator's mistake, not the frame's.

    Answered 502 so that the sender keeps the frame and retries it once the token is fixed.
    """

    status = 502
    code = "SFAPI_UNAUTHORIZED"


class PayloadTooLarge(FrameError):
    """The request body is larger than ``max_body_bytes``."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class StoreUnavailable(FrameError):
    """The router's idempotency-key store failed: the sender should retry later."""

    status = 503
    code = "STORAGE_ERROR"
