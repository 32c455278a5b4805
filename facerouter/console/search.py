"""Search by photo: ``POST /ui/api/search`` multipart ``image`` plus optional text parts
``date_from``, ``date_to`` (ISO 8601 times) and ``cameras`` (comma-separated camera ids).

The photo's one face is searched in ``console.search_gallery`` (the archive plugin's gallery, which
holds the face of every entry under the entry's id with meta ``cam_id`` and ``ts``) with sfapi's
filtered look-alike search: similarity at least ``console.search_threshold``, ``ts`` in the range,
``cam_id`` one of the cameras; at most ``console.search_limit`` hits, best first. Each hit comes
with its entry from the persons plugin (crop, result, person) when that entry still exists.
Answers ``{"gallery", "threshold", "results": [{"id", "confidence", "cam_id", "ts", "entry"}]}``;
400 ``NO_FACE`` / ``SEVERAL_FACES`` / ``BAD_PARAM``; 503 when sfapi is unavailable. A read: a
read-only session may search (the route is a POST only because it carries a photo).
"""
from __future__ import annotations

import datetime
import logging
from typing import Any

from sfapi.client import SFApiError, SFApiRemoteError
from sfapi.client import filters as F

from .pages import ConsoleHandler

__all__ = ["SearchHandler", "photo_part", "one_face"]

log = logging.getLogger(__name__)

_MAGIC = (b"\xff\xd8", b"\x89PNG", b"RIFF")


def parse_time(text: str, name: str) -> int:
    """Unix seconds of an ISO 8601 time (UTC when it names no zone); ValueError names ``name``."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 time (e.g. 2026-01-31T12:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp())


def photo_part(handler: ConsoleHandler, known: tuple[str, ...]) -> tuple[bytes, dict[str, str]] | None:
    """The ``image`` file and the text parts of a multipart upload, or None after a 400."""
    req = handler.request
    if not req.headers.get("Content-Type", "").startswith("multipart/form-data"):
        handler.fail(400, "BAD_PARAM", "send the photo as multipart/form-data", "Content-Type")
        return None
    names = set(req.files) | set(req.body_arguments)
    unknown = names - {"image", *known}
    if unknown:
        handler.fail(400, "BAD_PARAM", f"unknown part {sorted(unknown)[0]!r}; known: image, "
                     f"{', '.join(known)}", sorted(unknown)[0])
        return None
    files = req.files.get("image", [])
    if len(files) != 1 or not files[0].body:
        handler.fail(400, "BAD_PARAM", "part 'image' (one photo file) is missing", "image")
        return None
    data = files[0].body
    limit = handler.console.max_upload_bytes
    if len(data) > limit:
        handler.fail(400, "BAD_PARAM", f"the photo is larger than {limit} bytes", "image")
        return None
    if not data.startswith(_MAGIC):
        handler.fail(400, "BAD_PARAM", "the photo is not a JPEG, PNG or WEBP image", "image")
        return None
    fields: dict[str, str] = {}
    for name in known:
        values = req.body_arguments.get(name, [])
        if len(values) > 1:
            handler.fail(400, "BAD_PARAM", f"part {name!r} is given {len(values)} times", name)
            return None
        if values:
            try:
                fields[name] = values[0].decode("utf-8")
            except UnicodeDecodeError:
                handler.fail(400, "BAD_PARAM", f"part {name!r} is not UTF-8", name)
                return None
    return data, fields


async def one_face(handler: ConsoleHandler, image: bytes, facen: bool) -> Any:
    """The photo's only face (detected by sfapi), or None after answering 400 / 503."""
    try:
        faces = await handler.console.sfapi.detect(image=image, facen=facen)
    except SFApiRemoteError as exc:
        if (exc.status or 500) < 500:
            handler.fail(400, "BAD_PARAM", f"the photo was refused: {exc.reason}", "image")
        else:
            handler.fail(503, "SFAPI_UNAVAILABLE", f"sfapi is unavailable: {exc}")
        return None
    except SFApiError as exc:
        handler.fail(503, "SFAPI_UNAVAILABLE", f"sfapi is unavailable: {exc}")
        return None
    if not faces:
        handler.fail(400, "NO_FACE", "no face was found in the photo", "image")
        return None
    if len(faces) > 1:
        handler.fail(400, "SEVERAL_FACES", f"{len(faces)} faces were found in the photo; "
                     "use a photo of one person (crop it to their face)", "image")
        return None
    return faces[0]


class SearchHandler(ConsoleHandler):
    """``POST /ui/api/search``."""

    async def post(self) -> None:
        got = photo_part(self, ("date_from", "date_to", "cameras"))
        if got is None:
            return
        image, fields = got
        cfg = self.console.config
        flt: list[F.Filter] = []
        try:
            for name, op in (("date_from", "gte"), ("date_to", "lte")):
                if fields.get(name, "").strip():
                    flt.append(getattr(F.Meta("ts"), op)(parse_time(fields[name], name)))
        except ValueError as exc:
            self.fail(400, "BAD_PARAM", str(exc), str(exc).split()[0])
            return
        cameras = [c.strip() for c in fields.get("cameras", "").split(",") if c.strip()]
        if cameras:
            flt.append(F.Meta("cam_id").oneof(*cameras))
        face = await one_face(self, image, facen=True)
        if face is None:
            return
        flt.insert(0, F.Detection(face, cfg.search_threshold))
        try:
            hits = await self.console.sfapi[cfg.search_gallery].list(
                filters=flt, limit=cfg.search_limit, sort="-confidence")
        except SFApiRemoteError as exc:
            if exc.code in ("GALLERY_NOT_FOUND", "NOT_FOUND"):
                self.fail(404, "NOT_FOUND", f"gallery {cfg.search_gallery!r} does not exist: load "
                          "the archive plugin so every face is kept for search", "gallery")
            else:
                self.fail(503, "SFAPI_UNAVAILABLE", f"search failed: {exc}")
            return
        except SFApiError as exc:
            self.fail(503, "SFAPI_UNAVAILABLE", f"sfapi is unavailable: {exc}")
            return
        results = []
        for hit in hits:
            meta = hit.meta or {}
            entry_id = int(hit.id.face)
            results.append({"id": str(entry_id), "confidence": round(float(hit.confidence or 0), 3),
                            "cam_id": meta.get("cam_id"), "ts": meta.get("ts"),
                            "entry": await self.console.entry(entry_id)})
        self.send({"gallery": cfg.search_gallery, "threshold": cfg.search_threshold,
                   "results": results})
