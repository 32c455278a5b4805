"""The plugin API: :class:`Plugin`, the request type plugins receive, and the hook signatures.

A plugin is a module in a plugin directory (or named by its dotted module name in the config). It
either exports ``activate(app, ctx, plugin_name, plugin_source)`` returning the plugin object, or
defines exactly one :class:`Plugin` subclass, which the router builds as ``MyPlugin(ctx)``.

For every frame the router calls, for every plugin::

    features = await plugin.preprocess(request, labels)      # all plugins concurrently
    detection = sfapi detect(face0, <union of features>)
    await plugin.process(request, photo, bbox, event_id, detection)  # plugins that asked for any

and ``plugin.shutdown()`` once when the router stops. Hooks may be ``def`` or ``async def``: sync
hooks run in a worker thread so they never block the event loop; async hooks run on the loop and
must not block it. Each call has a time limit (``plugin_timeout_s``); a hook that raises or passes it
is logged and counted, and never affects the other plugins.
"""
from __future__ import annotations

import typing
from typing import Any, ClassVar, Mapping

import tornado.httputil
from pydantic import BaseModel

from facerouter.objects import DetectFace

if typing.TYPE_CHECKING:
    from facerouter.context import Context
    from facerouter.request import FrameParams

__all__ = ["Plugin", "FrHTTPRequest", "FEATURES", "HOOKS"]

#: Feature names ``preprocess`` may return (each turns on the sfapi detect flag of that name).
FEATURES: tuple[str, ...] = ("facen", "gender", "age", "emotions")


class FrHTTPRequest(tornado.httputil.HTTPServerRequest):
    """The ``request`` argument of the hooks: Tornado's request of the frame with ``params`` added.

    ``params`` is the frame's parsed parts (:class:`facerouter.request.FrameParams`): ``photo``,
    ``face0``, ``bbox``, ``cam_id``, ``timestamp`` (aware :class:`datetime.datetime`),
    ``detectorParams``, ``bs_type``, ``labels`` and ``idempotency_key`` (the sender's
    ``Idempotency-Key`` header, or ``None``). Everything else (``headers``, ``files``,
    ``remote_ip`` ...) is the Tornado request's own.

    Also set before ``preprocess``: ``event_id`` (int, the same as ``process``'s argument) and
    ``redelivered`` (bool). A post the sender delivers again (same ``Idempotency-Key``) keeps its
    ``event_id``; once the router answered it, it never reaches the plugins again, but if the
    router or a plugin failed before answering, the next delivery reaches them again with
    ``redelivered`` true. A plugin that stores something should key it by ``event_id`` (a gallery
    face id, a unique column, an upsert) so that it is stored once however often it arrives.
    """

    params: FrameParams
    event_id: int
    redelivered: bool

    @classmethod
    def of(cls, request: tornado.httputil.HTTPServerRequest, params: FrameParams) -> FrHTTPRequest:
        """The frame request: ``request``'s state (shared, not copied) with ``params`` added."""
        frame = cls.__new__(cls)
        frame.__dict__.update(vars(request))
        frame.params = params
        frame.event_id = 0
        frame.redelivered = False
        return frame


class Plugin:
    """Base class of plugins; every hook is a no-op that may be overridden (sync or async).

    Args:
        ctx: the plugin's :class:`~facerouter.context.Context` (``ctx.sfapi``, ``ctx.idgen``,
            ``ctx.plugins``, ``ctx.config``), kept as ``self.ctx``.

    A subclass may set ``config_model`` to a pydantic model: the plugin's config section is then
    validated against it at start-up and ``ctx.config`` is the validated model (otherwise
    ``ctx.config`` is the section as a plain dict).
    """

    #: pydantic model of this plugin's config section (``None``: the section is a plain dict).
    config_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Say which face features this plugin needs for this frame.

        Args:
            request: the frame request; ``request.params`` holds its parsed parts.
            labels: the frame's labels (the same as ``request.params.labels``).

        Returns:
            some of ``'facen'``, ``'gender'``, ``'age'``, ``'emotions'``; an empty tuple (or
            ``None``) means "not interested": :meth:`process` is then not called for this frame.
        """
        return ()

    def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]], event_id: int,
                detection: DetectFace) -> None:
        """Handle the detected face, with the features this or other plugins asked for.

        Args:
            request: the frame request (``request.params`` as in :meth:`preprocess`).
            photo: the frame JPEG (``request.params.photo``).
            bbox: ``[[x1, y1, x2, y2]]``, the face in ``photo`` pixels (``request.params.bbox``).
            event_id: unique id of this face event (from ``ctx.idgen``); usable as a gallery face
                id. The same for every delivery of one post (``Idempotency-Key``): store by it.
            detection: sfapi's detection of the face: ``id`` (cache id, present with facen),
                ``bbox``, ``features`` (gender, age, emotions when asked for).
        """
        return None

    def shutdown(self) -> None:
        """Release resources; called once when the router stops, after the last frame."""
        return None


#: Positional arguments each hook is called with (besides ``self``), for load-time checks.
HOOKS: dict[str, tuple[str, ...]] = {
    "preprocess": ("request", "labels"),
    "process": ("request", "photo", "bbox", "event_id", "detection"),
    "shutdown": (),
}


def noop_hooks() -> dict[str, Any]:
    """The base class's own hook functions (the driver skips a hook that is still one of them)."""
    return {name: getattr(Plugin, name) for name in HOOKS}

