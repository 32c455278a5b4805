"""facerouter's OpenAPI document (``GET /openapi.json``), the routes plugins add included.

The router's own routes (``/v0/frame``, ``/healthz``, ``/metrics``, ``/openapi.json``) are written
out here. A plugin describes its routes by giving its plugin object an ``openapi`` attribute: a dict
(or a callable returning one) with ``paths`` and optionally ``components`` (``schemas`` ...), in
OpenAPI 3.0 form; its paths replace what the router would derive. Any other route a plugin added
is derived from the application's routing table: its path (capture groups become ``{p1}``,
``{p2}`` ... with the group's pattern), the methods its handler implements, and a ``default``
answer, so a client sees it exists even when its plugin says nothing more.
"""
from __future__ import annotations

import copy
import logging
import re
from typing import Any, Iterable, Iterator

import tornado.routing
import tornado.web

from facestack.core.tornado_edge import allowed_methods
from facerouter.request import BS_TYPES, IDEMPOTENCY_HEADER

__all__ = ["build_document", "plugin_routes", "ERROR_SCHEMA"]

log = logging.getLogger(__name__)

#: the error body of every refusal: ``{"code", "reason"[, "param", "value"]}``
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["code", "reason"],
    "properties": {"code": {"type": "string"}, "reason": {"type": "string"},
                   "param": {"type": "string", "nullable": True}, "value": {}},
}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if retry_after:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                             "schema": {"type": "string"}}}
    return answer


_AUTH_ERRORS = {"401": _error("no valid API token (when tokens are checked)"),
                "403": _error("a read-only token on a write")}

_FRAME_BODY = {
    "type": "object",
    "required": ["photo", "bbox", "cam_id", "timestamp", "detectorParams", "bs_type", "labels"],
    "properties": {
        "photo": {"type": "string", "format": "binary", "description": "JPEG (or PNG/WEBP) of the frame"},
        "face0": {"type": "string", "format": "binary",
                  "description": "JPEG of the normalized face, at least 16x16"},
        "bbox": {"type": "string", "description": "JSON [[x1, y1, x2, y2]] in photo pixels"},
        "cam_id": {"type": "string", "maxLength": 1024},
        "timestamp": {"type": "string", "description": "RFC 3339 with a UTC offset"},
        "detectorParams": {"type": "string", "description": "JSON object"},
        "bs_type": {"type": "string", "enum": list(BS_TYPES)},
        "labels": {"type": "string", "description": "JSON object of strings"},
    },
}

_FRAME_ANSWER = {
    "type": "object", "required": ["event_id", "failed_plugins", "processed"],
    "properties": {
        "event_id": {"type": "string", "pattern": "^[0-9]+$"},
        "failed_plugins": {"type": "array", "items": {"type": "string"}},
        "processed": {"type": "array", "items": {"type": "string"}},
        "duplicate": {"type": "boolean", "description": "this Idempotency-Key was answered before"},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}

_HEALTH = {
    "type": "object", "required": ["status", "inflight", "max_inflight", "node_id", "plugins"],
    "properties": {"status": {"type": "string", "enum": ["ok", "stopping"]},
                   "inflight": {"type": "integer"}, "max_inflight": {"type": "integer"},
                   "node_id": {"type": "integer"},
                   "plugins": {"type": "array", "items": {"type": "string"}}},
}


def _core_paths() -> dict[str, Any]:
    return {
        "/v0/frame": {"post": {
            "summary": "One face event from the video worker",
            "parameters": [{
                "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                "description": "names the post: every delivery of one post carries the same key and "
                               "is handled once (same event_id; later ones answered as duplicates)",
                "schema": {"type": "string", "pattern": "^[!-~]{1,200}$"}}],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FRAME_BODY}}},
            "responses": {
                "200": {"description": "handled (or a duplicate of a post handled before)",
                        "content": {"application/json": {"schema": _FRAME_ANSWER}}},
                "400": _error("a part is missing or malformed (param names it)"),
                **_AUTH_ERRORS,
                "413": _error("the body is over max_body_bytes"),
                "422": _error("sfapi found no face"),
                "502": _error("sfapi refused the router's token (SFAPI_UNAUTHORIZED): retry later"),
                "503": _error("overloaded, stopping, or sfapi unavailable: retry later", retry_after=True),
            }}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": {"description": "serving", "content": {"application/json": {"schema": _HEALTH}}},
            "503": {"description": "stopping", "content": {"application/json": {"schema": _HEALTH}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            **_AUTH_ERRORS}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": {"type": "object"}}}},
            **_AUTH_ERRORS}}},
    }


def _walk(rules: Iterable[Any]) -> Iterator[tuple[tornado.routing.PathMatches, Any]]:
    for rule in rules:
        target = rule.target
        if isinstance(target, tornado.routing.RuleRouter):
            yield from _walk(target.rules)
        elif isinstance(rule.matcher, tornado.routing.PathMatches):
            yield rule.matcher, target


_GROUP = re.compile(r"\(((?:\\.|[^()\\])*)\)")


def plugin_routes(app: tornado.web.Application) -> dict[str, Any]:
    """OpenAPI path items derived from the routes plugins added to ``app`` (the router's own routes
    are in ``wildcard_router``; ``add_handlers`` puts plugins' in ``default_router``)."""
    paths: dict[str, Any] = {}
    for matcher, handler in _walk(app.default_router.rules):
        if not (isinstance(handler, type) and issubclass(handler, tornado.web.RequestHandler)):
            continue
        pattern = matcher.regex.pattern.lstrip("^").rstrip("$")
        groups = _GROUP.findall(pattern)
        if matcher._path is None or len(groups) != matcher._group_count:
            log.info("route %s: too complex to describe in the OpenAPI document", pattern)
            continue
        names = [f"p{i + 1}" for i in range(len(groups))]
        path = matcher._path % tuple("{" + n + "}" for n in names)
        if path.endswith("/?"):  # an optional trailing slash: one route, described without it
            path = path[:-2] or "/"
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": f"^(?:{g})$"}} for n, g in zip(names, groups)]
        item: dict[str, Any] = {}
        for method in allowed_methods(handler):
            if method in ("HEAD", "OPTIONS"):
                continue
            op: dict[str, Any] = {"summary": f"{handler.__name__} (a plugin's route)",
                                  "responses": {"default": {"description": "the plugin's answer"}}}
            if params:
                op["parameters"] = copy.deepcopy(params)
            item[method.lower()] = op
        if item:
            paths.setdefault(path, item)
    return paths


def build_document(app: tornado.web.Application, plugins: dict[str, Any], version: str) -> dict[str, Any]:
    """The whole document: the router's routes, each plugin's own description (its object's
    ``openapi``), and a derived entry for every other plugin route."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "facerouter", "version": version,
                 "description": "Face events from the video worker, and the routes of the loaded "
                                "plugins. Errors are {code, reason[, param, value]}."},
        "paths": _core_paths(),
        "components": {"schemas": {"Error": ERROR_SCHEMA},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    described: dict[str, Any] = {}
    for name, obj in plugins.items():
        fragment = getattr(obj, "openapi", None)
        if callable(fragment):
            try:
                fragment = fragment()
            except Exception:  # a plugin's bug must not take the document down
                log.exception("plugin %s: openapi() failed; its routes are derived instead", name)
                continue
        if not isinstance(fragment, dict):
            continue
        described.update(fragment.get("paths", {}))
        for kind, items in fragment.get("components", {}).items():
            doc["components"].setdefault(kind, {}).update(items)
    taken = {_shape(p) for p in list(doc["paths"]) + list(described)}
    for path, item in plugin_routes(app).items():
        if _shape(path) not in taken:
            doc["paths"][path] = item
    doc["paths"].update(described)
    return doc


def _shape(path: str) -> str:
    """A path with its parameters' names left out (``/a/{x}`` and ``/a/{y}`` are one route)."""
    return re.sub(r"\{[^}]*\}", "{}", path)
