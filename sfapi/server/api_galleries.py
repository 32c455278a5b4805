"""Handlers for galleries and their faces: /v2/galleries[/{name}[/faces[/{id}|/search]]]."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from aiohttp import web

from sfapi.errors import BadParam, GalleryNotFound, MalformedRequest, NotFound, SourceGalleryNotFound, SourceNotFound
from sfapi.gallery.query import (ListRequest, LikeSpec, build_request, encode_cursor, face_id, parse_source,
                                 specs_from_body, specs_from_query)
from sfapi.gallery.meta import validate_name
from sfapi.gallery.types import FaceRecord, Hit, LookAlike, Query
from sfapi.server.params import json_body, known_only
from sfapi.server.state import STATE, SfapiState

log = logging.getLogger(__name__)


def _name(request: web.Request) -> str:
    """The gallery named in the path, checked against the name pattern before any store is asked."""
    return validate_name(request.match_info["name"])


def face_json(gallery: str, rec: FaceRecord, confidence: float | None = None) -> dict[str, Any]:
    return {"id": {"gallery": gallery, "face": rec.id}, "features": rec.features, "meta": rec.meta,
            "confidence": None if confidence is None else round(float(confidence), 6)}


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object body (``{}`` when empty) with no fields outside ``allowed``; no query string."""
    known_only(request.query, set())
    obj = await json_body(request, {})
    if not isinstance(obj, dict):
        raise MalformedRequest("body must be a JSON object")
    unknown = set(obj) - allowed
    if unknown:
        key = sorted(unknown)[0]
        raise BadParam(key, obj[key], f"unknown field {key!r}; expected {', '.join(sorted(allowed)) or 'no body'}")
    return obj


async def list_galleries(request: web.Request) -> web.Response:
    st = request.app[STATE]
    known_only(request.query, set())
    items = await st.gallery.list_galleries()
    return web.json_response({"galleries": [{"name": g.name, "number": g.number} for g in items]})


async def create_gallery(request: web.Request) -> web.Response:
    st = request.app[STATE]
    name = _name(request)
    body = await _body(request, {"meta_schema"})
    schema = st.cfg.gallery.schema_for(name)
    if "meta_schema" in body:
        schema = _schema(body["meta_schema"])
    info = await st.gallery.create_gallery(name, schema)
    return web.json_response({"name": info.name, "number": info.number})


async def drop_gallery(request: web.Request) -> web.Response:
    st = request.app[STATE]
    known_only(request.query, set())
    await st.gallery.drop_gallery(_name(request))
    return web.Response(status=204)


async def add_face(request: web.Request) -> web.Response:
    st = request.app[STATE]
    gallery = _name(request)
    fid = face_id(request.match_info["id"])
    body = await _body(request, {"from", "meta"})
    meta = body.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise BadParam("meta", meta, "meta must be an object")
    facen, features, model = await _source(st, parse_source(body.get("from"), "from"))
    rec = await st.gallery.add(gallery, FaceRecord(fid, facen, meta, features, model))
    return web.json_response(face_json(gallery, rec))


async def get_face(request: web.Request) -> web.Response:
    st = request.app[STATE]
    gallery = _name(request)
    known_only(request.query, set())
    rec = await st.gallery.get(gallery, face_id(request.match_info["id"]))
    return web.json_response(face_json(gallery, rec))


async def update_face(request: web.Request) -> web.Response:
    st = request.app[STATE]
    gallery = _name(request)
    fid = face_id(request.match_info["id"])
    body = await _body(request, {"meta"})
    meta = body.get("meta")
    if not isinstance(meta, dict) or set(body) - {"meta"}:
        raise BadParam("meta", meta, 'body must be {"meta": {...}}')
    rec = await st.gallery.update_meta(gallery, fid, meta)
    return web.json_response(face_json(gallery, rec))


async def delete_face(request: web.Request) -> web.Response:
    st = request.app[STATE]
    known_only(request.query, set())
    await st.gallery.delete(_name(request), face_id(request.match_info["id"]))
    return web.Response(status=204)


async def list_faces(request: web.Request) -> web.Response:
    specs, opts = specs_from_query(request.query)
    return await _search(request, specs, opts)


async def search_faces(request: web.Request) -> web.Response:
    specs, opts = specs_from_body(await _body(request, {"filters", "sort", "limit", "page", "ignore_errors"}))
    return await _search(request, specs, opts)


async def _search(request: web.Request, specs: list[dict[str, Any]], opts: dict[str, Any]) -> web.Response:
    st = request.app[STATE]
    gallery = _name(request)
    schema = await st.gallery.schema(gallery)
    req = build_request(specs, opts, schema)
    like = await _resolve_like(st, req.like) if req.like is not None else None
    query = Query(req.ids, req.meta, like, req.sort, req.limit, req.after, req.ignore_errors)
    result = await st.gallery.search(gallery, query)
    return web.json_response({"results": [_hit(gallery, h) for h in result.hits],
                              "next_page": encode_cursor(result.next_page)})


def _hit(gallery: str, hit: Hit) -> dict[str, Any]:
    return face_json(gallery, hit.record, hit.confidence)


async def _resolve_like(st: SfapiState, like: LikeSpec) -> LookAlike:
    if like.kind == "detection":
        det = await st.cache.get(like.detection)
        if det is None:
            raise BadParam("looks_like", like.detection, f"detection {like.detection} not found (expired or never made)")
        return LookAlike(det.facen, like.threshold, det.model)
    try:
        rec = await st.gallery.get(like.gallery, like.face)
    except (GalleryNotFound, NotFound) as exc:
        raise BadParam("looks_like", f"{like.gallery}/{like.face}", f"look-alike face: {exc.reason}") from None
    return LookAlike(rec.facen, like.threshold, rec.model)


async def _source(st: SfapiState, src: LikeSpec) -> tuple[np.ndarray, dict[str, Any], str]:
    if src.kind == "detection":
        det = await st.cache.get(src.detection)
        if det is None:
            raise SourceNotFound(f"detection {src.detection} not found (expired or never made)",
                                 param="from", value=f"detection:{src.detection}")
        return det.facen, dict(det.face.get("features", {})), det.model
    try:
        rec = await st.gallery.get(src.gallery, src.face)
    except GalleryNotFound:
        raise SourceGalleryNotFound(f"gallery {src.gallery} not found", param="from",
                                    value=f"face:{src.gallery}/{src.face}") from None
    except NotFound:
        raise SourceNotFound(f"face {src.face} not found in gallery {src.gallery}", param="from",
                             value=f"face:{src.gallery}/{src.face}") from None
    return rec.facen, dict(rec.features), rec.model


def _schema(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not all(v in ("int", "string", "strings") for v in raw.values()):
        raise BadParam("meta_schema", raw, 'meta_schema maps keys to "int", "string" or "strings"')
    return dict(raw)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/galleries", list_galleries)
    r.add_post("/v2/galleries/{name}", create_gallery)
    r.add_delete("/v2/galleries/{name}", drop_gallery)
    r.add_get("/v2/galleries/{name}/faces", list_faces)
    r.add_post("/v2/galleries/{name}/faces/search", search_faces)
    r.add_post("/v2/galleries/{name}/faces/{id}", add_face)
    r.add_get("/v2/galleries/{name}/faces/{id}", get_face)
    r.add_patch("/v2/galleries/{name}/faces/{id}", update_face)
    r.add_delete("/v2/galleries/{name}/faces/{id}", delete_face)


__all__ = ["add_routes", "face_json", "ListRequest"]
