"""Errors of the vision layer (models, runtimes, image decoding): plain errors, not HTTP answers.

A service maps them to its own answers at its edge (sfapi: :func:`sfapi.errors.from_image_error`).
"""
from __future__ import annotations

from typing import Any

from facestack.core.errors import FacestackError, FetchError

__all__ = ["VisionError", "ModelPackError", "RuntimeUnavailable", "ImageError", "EmptyImage",
           "UnreadableImage", "ImageTooLarge"]


class VisionError(FacestackError):
    """Root of the vision layer's errors."""


class ModelPackError(VisionError, FetchError):
    """The model pack cannot be built, verified or loaded."""


class RuntimeUnavailable(VisionError):
    """The inference runtime asked for in config is not available on this machine."""


class ImageError(VisionError):
    """Image bytes that cannot be used; ``param`` names where they came from, ``value`` what was
    seen (the type, the size)."""

    def __init__(self, param: str, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.param = param
        self.value = value
        self.reason = reason


class EmptyImage(ImageError):
    """No bytes at all."""


class UnreadableImage(ImageError):
    """Not an accepted image type, or the decoder failed on it."""


class ImageTooLarge(ImageError):
    """More pixels than the limit allows."""
