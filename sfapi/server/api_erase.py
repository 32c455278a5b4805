"""``POST /v2/detect/erase``: forget the cached detections that look like a stored face (admins).

The persons plugin's erasure calls it. Body ``{"looks_like": {"gallery", "face"}, "threshold"}``;
answers ``{"removed": n, "complete": bool}``: ``complete`` is false where the cache cannot be
searched (memcached): its detections expire after ``cache.ttl_s``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

from facestack.core import safejson
from facestack.vision.engines.similarity import cosine_threshold
from sfapi.errors import BadParam, MalformedRequest
from sfapi.server.cache import CachedDetection, MemoryCache
from sfapi.server.state import STATE

__all__ = ["erase_detections"]


def _body(raw: bytes) -> tuple[str, int, float]:
    try:
        body = safejson.loads(raw)
    except safejson.JsonRefused as exc:
        raise MalformedRequest(f"body is not acceptable JSON: {exc}") from None
    if not isinstance(body, dict) or set(body) - {"looks_like", "threshold"}:
        raise BadParam("body", None, 'the body is {"looks_like": {"gallery", "face"}, "threshold"}')
    like = body.get("looks_like")
    if not isinstance(like, dict) or set(like) != {"gallery", "face"}:
        raise BadParam("looks_like", like, 'looks_like is {"gallery": <name>, "face": <id>}')
    gallery, face = like["gallery"], like["face"]
    if not isinstance(gallery, str) or not gallery:
        raise BadParam("looks_like", gallery, "looks_like.gallery must be a gallery name")
    if isinstance(face, bool) or not isinstance(face, int) or not 0 <= face < 1 << 63:
        raise BadParam("looks_like", face, "looks_like.face must be a face id (an integer)")
    thr = body.get("threshold", 0.75)
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
        raise BadParam("threshold", thr, "threshold must be a number in 0..1")
    return gallery, face, float(thr)


async def erase_detections(request: web.Request) -> web.Response:
    st = request.app[STATE]
    gallery, face, thr = _body(await request.read())
    rec = await st.gallery.get(gallery, face)  # GalleryNotFound, NotFound: 404
    cache = st.cache
    if not isinstance(cache, MemoryCache):
        return web.json_response({"removed": 0, "complete": False})
    items: list[CachedDetection] = cache.snapshot()
    if not items:
        return web.json_response({"removed": 0, "complete": True})
    target = np.asarray(rec.facen, np.float32)

    def match() -> list[str]:
        same = [d for d in items if d.model == rec.model and d.facen.shape == target.shape]
        if not same:
            return []
        cos = np.stack([d.facen for d in same]) @ target
        return [d.id for d, c in zip(same, cos) if c >= cosine_threshold(thr)]

    ids = await st.run_cpu(match)
    removed = cache.drop(ids)
    return web.json_response({"removed": removed, "complete": True})


def paths() -> dict[str, Any]:
    """The route's OpenAPI path item."""
    return {"/v2/detect/erase": {"post": {
        "summary": "Forget cached detections that look like a stored face (admin)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["looks_like"], "additionalProperties": False,
            "properties": {"looks_like": {"type": "object", "required": ["gallery", "face"],
                                          "additionalProperties": False, "properties": {
                                              "gallery": {"type": "string", "minLength": 1},
                                              "face": {"type": "integer", "minimum": 0}}},
                           "threshold": {"type": "number", "minimum": 0, "maximum": 1}}}}}},
        "responses": {"200": {"description": "what was removed", "content": {"application/json": {
            "schema": {"type": "object", "required": ["removed", "complete"], "properties": {
                "removed": {"type": "integer"}, "complete": {"type": "boolean"}}}}}},
            **{str(s): {"description": d, "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}} for s, d in (
                (400, "a bad body"), (401, "no valid API token"), (403, "not an admin's token"),
                (404, "no such gallery or face"), (413, "body too large"))}}}}}
