"""The OpenAPI 3.1 document of sfapi, served at /docs/spec and checked against real answers in tests."""
from __future__ import annotations

from typing import Any

from sfapi.gallery.meta import NAME_PATTERN
from sfapi.gallery.types import MAX_LIMIT, UINT64_MAX

ERROR_CODES = ["UNKNOWN_ERROR", "BAD_PARAM", "CONFLICT", "EXTRACTION_ERROR", "LICENSE_ERROR", "MALFORMED_REQUEST",
               "OVER_CAPACITY", "SOURCE_NOT_FOUND", "SOURCE_GALLERY_NOT_FOUND", "STORAGE_ERROR", "CACHE_ERROR",
               "NOT_FOUND", "NOT_IMPLEMENTED", "GALLERY_NOT_FOUND", "UNAUTHORIZED", "FORBIDDEN"]

#: Statuses any operation can answer: a malformed request or parameter, and the token checks.
_COMMON = (400, 401, 403)

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["code", "reason"],
        "properties": {"code": {"type": "string", "enum": ERROR_CODES}, "reason": {"type": "string"},
                       "param": {"type": "string", "description": "the invalid parameter (BAD_PARAM)"},
                       "value": {"description": "the value it had (BAD_PARAM)"}},
        "if": {"properties": {"code": {"const": "BAD_PARAM"}}},
        "then": {"required": ["param", "value"]},
    },
    "BBox": {
        "type": "object", "required": ["left", "top", "right", "bottom"],
        "properties": {k: {"type": "integer"} for k in ("left", "top", "right", "bottom")},
    },
    "Features": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "gender": {"type": "object", "required": ["gender", "score"],
                       "properties": {"gender": {"type": "string", "enum": ["male", "female"]},
                                      "score": {"type": "number", "minimum": 0, "maximum": 1}}},
            "age": {"type": "integer", "minimum": 0, "description": "years"},
            "emotions": {"type": "array", "minItems": 7, "maxItems": 7, "description": "best first",
                         "items": {"type": "object", "required": ["emotion", "score"],
                                   "properties": {"emotion": {"type": "string", "enum": [
                                       "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]},
                                       "score": {"type": "number", "minimum": 0, "maximum": 1}}}},
        },
    },
    "DetectFace": {
        "type": "object", "required": ["bbox", "detection_score", "quality", "landmarks", "rotation"],
        "properties": {
            "id": {"type": "string", "description": "detection id (cached) when facen was requested"},
            "bbox": {"$ref": "#/components/schemas/BBox"},
            "detection_score": {"type": "number", "minimum": 0, "maximum": 1},
            "quality": {"type": "number", "minimum": 0, "maximum": 1},
            "landmarks": {"type": "array", "minItems": 5, "maxItems": 5,
                          "description": "left eye, right eye, nose, mouth left, mouth right (x, y)",
                          "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}},
            "rotation": {"type": "integer", "enum": [0, 90, 180, 270],
                         "description": "clockwise turn of the image in which the face was found (autorotate)"},
            "features": {"$ref": "#/components/schemas/Features"},
            "facen": {"type": "string", "description": "base64 of little-endian float32, L2-normalized"},
            "facen_model": {"type": "string"},
        },
    },
    "DetectResponse": {
        "type": "object", "required": ["orientation", "faces"],
        "properties": {"orientation": {"type": "integer", "minimum": 1, "maximum": 8,
                                       "description": "EXIF orientation of the input (applied before detection)"},
                       "faces": {"type": "array", "items": {"$ref": "#/components/schemas/DetectFace"}}},
    },
    "VerifyResponse": {
        "type": "object", "required": ["confidence", "threshold", "match"],
        "properties": {"confidence": {"type": "number", "minimum": 0, "maximum": 1},
                       "threshold": {"type": "number", "description": "the model's default match threshold"},
                       "match": {"type": "boolean"}},
    },
    "Version": {
        "type": "object", "required": ["service", "version", "models"],
        "properties": {"service": {"type": "string"}, "version": {"type": "string"}, "runtime": {"type": "string"},
                       "models": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
}


def _flag(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": text,
            "schema": {"type": "boolean", "default": False}}


def _json(ref: str, text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json("Error", "error") for s in sorted(set(statuses) | set(_COMMON))}


def build_spec(version: str) -> dict[str, Any]:
    from sfapi.server.api_erase import paths as erase_paths
    detect_params = [
        _flag("facen", "extract the face vector and cache the detection under an id"),
        _flag("gender", "estimate gender"), _flag("age", "estimate age"), _flag("emotions", "estimate emotions"),
        _flag("return_facen", "return the face vector (implies facen)"),
        _flag("autorotate", "try 4 orientations; overlaps with IoU > 0.5 merged"),
        {"name": "detector", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["nnd", "normalized"], "default": "nnd"},
         "description": "normalized: the image is already a normalized face crop; detection is skipped"},
    ]
    image_body = {"required": True, "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/webp": {"schema": {"type": "string", "format": "binary"}},
        "image/bmp": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"photo": {"type": "string", "format": "binary"}}}},
        "application/json": {"schema": {"type": "object", "required": ["url"],
                                        "properties": {"url": {"type": "string", "format": "uri"}}}},
    }}
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "a detection id returned by /v2/detect with facen=true"}
    verify_params = [{"name": n, "in": "query", "required": True, "schema": {"type": "string"},
                      "description": "detection id"} for n in ("first", "second")]
    paths: dict[str, Any] = {
        "/v2/detect": {"post": {
            "summary": "Detect faces and extract the requested features", "parameters": detect_params,
            "requestBody": image_body,
            "responses": {"200": _json("DetectResponse", "faces found (possibly none)"),
                          **_errors(400, 413, 422, 503)}}},
        "/v2/detect/{id}": {"get": {
            "summary": "A cached detection", "parameters": [id_param, _flag("return_facen", "include the facen")],
            "responses": {"200": _json("DetectFace", "the detection"), **_errors(400, 404, 503)}}},
        "/v2/verify": {
            "get": {"summary": "Similarity of two cached detections", "parameters": verify_params,
                    "responses": {"200": _json("VerifyResponse", "similarity"), **_errors(400, 404, 503)}},
            "post": {"summary": "Similarity of two cached detections (JSON body {first, second})",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["first", "second"], "additionalProperties": False,
                         "properties": {"first": {"type": "string"}, "second": {"type": "string"}}}}}},
                     "responses": {"200": _json("VerifyResponse", "similarity"), **_errors(400, 404, 413, 503)}}},
        "/v2/version": {"get": {"summary": "Service and model versions",
                                "responses": {"200": _json("Version", "versions"), **_errors()}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json("Health", "healthy"), **_errors()}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **_errors()}}},
        "/docs/spec": {"get": {"summary": "This document",
                               "responses": {"200": {"description": "OpenAPI document",
                                                     "content": {"application/json": {"schema": {"type": "object"}}}},
                                             **_errors()}}},
    }
    all_paths = {**paths, **gallery_paths(), **erase_paths()}
    for item in all_paths.values():
        for method, op in item.items():
            if method != "parameters":
                for resp in op["responses"].values():
                    resp.setdefault("headers", {})["X-Request-Id"] = _REQUEST_ID
    return {"openapi": "3.1.0", "info": {"title": "sfapi", "version": version,
                                         "description": "Face detection, face vectors (facen), gender, age, emotions. "
                                                        "Every response carries X-Request-Id."},
            "paths": all_paths, "components": {"schemas": {**_SCHEMAS, **_GALLERY_SCHEMAS}}}


_REQUEST_ID: dict[str, Any] = {"required": True, "schema": {"type": "string", "minLength": 1},
                               "description": "the client's X-Request-Id, or one made for this request"}


_GALLERY_SCHEMAS: dict[str, Any] = {
    "GalleryList": {
        "type": "object", "required": ["galleries"],
        "properties": {"galleries": {"type": "array", "items": {"$ref": "#/components/schemas/GalleryInfo"}}},
    },
    "GalleryInfo": {"type": "object", "required": ["name", "number"],
                    "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                                   "number": {"type": "integer", "minimum": 0}}},
    "CreateGallery": {
        "type": "object", "additionalProperties": False,
        "properties": {"meta_schema": {"type": "object", "description": "meta key -> type",
                                       "additionalProperties": {"type": "string", "enum": ["int", "string", "strings"]}}},
    },
    "MetaValue": {"description": "int, string or list of strings, as the gallery's meta schema says"},
    "Face": {
        "type": "object", "required": ["id", "features", "meta", "confidence"],
        "properties": {
            "id": {"type": "object", "required": ["gallery", "face"],
                   "properties": {"gallery": {"type": "string", "pattern": NAME_PATTERN},
                                  "face": {"type": "integer", "minimum": 0, "maximum": UINT64_MAX}}},
            "features": {"type": "object"},
            "meta": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/MetaValue"}},
            "confidence": {"description": "similarity 0..1 to the look-alike query; null without one"},
        },
    },
    "ListResponse": {
        "type": "object", "required": ["results", "next_page"],
        "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                       "next_page": {"description": "cursor for the page parameter; null on the last page"}},
    },
    "AddFace": {
        "type": "object", "required": ["from"], "additionalProperties": False,
        "properties": {"from": {"type": "string", "description": "detection:<id> or face:<gallery>/<id>"},
                       "meta": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/MetaValue"},
                                "description": "values typed as the gallery's meta schema says"}},
    },
    "UpdateFace": {
        "type": "object", "required": ["meta"], "additionalProperties": False,
        "properties": {"meta": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/MetaValue"},
                                "description": "keys to change; a null value leaves the key as it is"}},
    },
    "Filter": {
        "type": "object", "required": ["field", "op", "value"],
        "description": "id lte|gte|oneof; meta.<key> lte|gte|oneof (int, string keys) or subset (list keys); "
                       "detection|face looks_like with threshold (0..1, default 0.75)",
        "additionalProperties": False,
        "properties": {"field": {"type": "string"}, "op": {"type": "string",
                                                            "enum": ["lte", "gte", "oneof", "subset", "looks_like"]},
                       "value": {}, "threshold": {"type": "number", "minimum": 0, "maximum": 1}},
    },
    "SearchBody": {
        "type": "object", "additionalProperties": False,
        "properties": {"filters": {"type": "array", "items": {"$ref": "#/components/schemas/Filter"}},
                       "sort": {"type": "string", "enum": ["id", "-id", "-confidence"]},
                       "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                       "page": {"type": "string"}, "ignore_errors": {"type": "boolean"}},
    },
}

_FACE_ID: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": UINT64_MAX}

_LIST_PARAMS: list[dict[str, Any]] = [
    {"name": "id.gte", "in": "query", "schema": _FACE_ID, "description": "face id >= value"},
    {"name": "id.lte", "in": "query", "schema": _FACE_ID, "description": "face id <= value"},
    {"name": "id.oneof", "in": "query", "schema": {"type": "array", "items": _FACE_ID},
     "style": "form", "explode": True, "description": "repeat the parameter (or comma-separate ids)"},
    {"name": "meta", "in": "query", "style": "form", "explode": True,
     "schema": {"type": "object", "propertyNames": {"pattern": r"^meta\.[^.]+\.(lte|gte|oneof|subset)$"},
                "additionalProperties": {"type": "string"}},
     "description": "meta filters, each its own parameter named meta.<key>.<op>: op lte|gte|oneof on int and "
                    "string keys, subset on list-of-string keys; <key> must be in the gallery's meta schema; repeat "
                    "the parameter for each value of oneof/subset, e.g. meta.camera.oneof=a&meta.camera.oneof=b"},
    {"name": "looks_like", "in": "query", "schema": {"type": "string"},
     "description": "detection:<id> or face:<gallery>/<id>: faces at least `threshold` similar"},
    {"name": "threshold", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.75},
     "description": "with looks_like only"},
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["id", "-id", "-confidence"]},
     "description": "default: -confidence with looks_like, else id"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 1000, "minimum": 1, "maximum": MAX_LIMIT}},
    {"name": "page", "in": "query", "schema": {"type": "string"}, "description": "next_page of the previous answer"},
    {"name": "ignore_errors", "in": "query", "schema": {"type": "boolean", "default": False},
     "description": "answer from the shards that are up when some are not"},
]


def gallery_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 64},
            "description": "1-64 of A-Z a-z 0-9 _ . -, not starting with a dot", "example": "people"}
    fid = {"name": "id", "in": "path", "required": True, "schema": _FACE_ID,
           "description": f"face id, ASCII digits, 0..{UINT64_MAX}", "example": 1}
    face = _json("Face", "the face")

    def body(ref: str, required: bool = True) -> dict[str, Any]:
        return {"required": required,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}

    return {
        "/v2/galleries": {"get": {"summary": "Galleries and their sizes",
                                  "responses": {"200": _json("GalleryList", "galleries"), **_errors(503)}}},
        "/v2/galleries/{name}": {
            "parameters": [name],
            "post": {"summary": "Create a gallery (meta schema from config, or meta_schema in the body)",
                     "requestBody": body("CreateGallery", required=False),
                     "responses": {"200": _json("GalleryInfo", "created"), **_errors(409, 413, 503)}},
            "delete": {"summary": "Drop a gallery",
                       "responses": {"204": {"description": "dropped"}, **_errors(404, 503)}}},
        "/v2/galleries/{name}/faces": {
            "parameters": [name],
            "get": {"summary": "List or search faces", "parameters": _LIST_PARAMS,
                    "responses": {"200": _json("ListResponse", "a page of faces"), **_errors(404, 503)}}},
        "/v2/galleries/{name}/faces/search": {
            "parameters": [name],
            "post": {"summary": "List or search faces with a JSON body (long filter lists)",
                     "requestBody": body("SearchBody", required=False),
                     "responses": {"200": _json("ListResponse", "a page of faces"), **_errors(404, 413, 503)}}},
        "/v2/galleries/{name}/faces/{id}": {
            "parameters": [name, fid],
            "post": {"summary": "Add a face from a detection or another face", "requestBody": body("AddFace"),
                     "responses": {"200": face, **_errors(404, 409, 413, 503)}},
            "get": {"summary": "A face", "responses": {"200": face, **_errors(404, 503)}},
            "patch": {"summary": "Update meta (a null value leaves the key as it is)", "requestBody": body("UpdateFace"),
                      "responses": {"200": face, **_errors(404, 413, 503)}},
            "delete": {"summary": "Delete a face",
                       "responses": {"204": {"description": "deleted"}, **_errors(404, 503)}}},
    }
