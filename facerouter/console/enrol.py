"""Enrolment from the console: ``POST /ui/api/persons`` multipart ``image``, ``source`` (name or
id) and optional ``on_match`` (``refuse`` by default, ``create``, ``reinit``).

The photo is first counted for faces (400 ``NO_FACE``, 400 ``SEVERAL_FACES``: the persons API
itself takes the largest face of a group photo, which is right for imports but surprising for a
person clicking "enrol"), then enrolled through the persons plugin's own contract: 201
``{"pid", "entry"}``, 200 after a re-init, 409 ``CONFLICT`` naming the matched ``pid``, 400 for a
face too small.
"""
from __future__ import annotations

import logging

from sfapi.client import SFApiError

from .pages import ConsoleHandler
from .search import one_face, photo_part

__all__ = ["EnrolHandler"]

log = logging.getLogger(__name__)


class EnrolHandler(ConsoleHandler):
    """``POST /ui/api/persons``."""

    async def post(self) -> None:
        plugin = self.console.persons()
        if plugin is None:
            self.fail(404, "NOT_FOUND", "the persons plugin is not loaded")
            return
        got = photo_part(self, ("source", "on_match"))
        if got is None:
            return
        image, fields = got
        if not fields.get("source"):
            self.fail(400, "BAD_PARAM", "choose the source (camera) the person is enrolled from",
                      "source")
            return
        if await one_face(self, image, facen=False) is None:
            return
        try:
            src = plugin.sources.resolve(fields["source"])
            out = await plugin.uploads.create(image, src, fields.get("on_match", "refuse"))
        except SFApiError as exc:
            self.fail(503, "SFAPI_UNAVAILABLE", f"sfapi is unavailable: {exc}")
            return
        except Exception as exc:  # the persons plugin's ApiError (its module is loaded by path)
            to_json = getattr(exc, "to_json", None)
            status = getattr(exc, "status", None)
            if to_json is None or not isinstance(status, int):
                raise
            log.info("console enrolment refused: %s", exc)
            self.send(to_json(), status)
            return
        self.send({"pid": out.pid, "entry": out.entry}, 201 if out.created else 200)
