"""The persons API in OpenAPI 3.0 form: the plugin's ``openapi()`` fragment, merged by facerouter
into its ``/openapi.json`` (see :mod:`facerouter.openapi`)."""
from __future__ import annotations

from typing import Any

__all__ = ["fragment"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_NULLABLE_STR = {"type": "string", "nullable": True}
_TIME = {"type": "string", "description": "RFC 3339 UTC"}
_ID = {"type": "string", "pattern": "^[0-9]+$"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(description, _ERROR)


_COMMON = {"400": _err("a bad parameter (param names it)"), "401": _err("no valid API token"),
           "403": _err("the token's role does not grant this route"),
           "503": _err("sfapi or the database is unavailable")}


def _responses(ok: dict[str, Any], *, not_found: bool = False, conflict: bool = False,
               too_large: bool = False) -> dict[str, Any]:
    out = {**ok, **_COMMON}
    if not_found:
        out["404"] = _err("no such item")
    if conflict:
        out["409"] = _err("a conflict (the face matches a person, the name is taken ...)")
    if too_large:
        out["413"] = _err("the body is over facerouter's max_body_bytes")
    return out


_SETTINGS_PROPS: dict[str, Any] = {
    "license": {"type": "integer", "minimum": 0, "nullable": True},
    **{k: {"type": "integer", "minimum": 0} for k in (
        "identify_facesize_threshold", "manual_create_facesize_threshold",
        "auto_create_facesize_threshold")},
    **{k: {"type": "boolean"} for k in (
        "use_pps_time", "manual_create_on_ha", "manual_create_on_junk", "manual_identify_asm",
        "auto_create_persons", "auto_create_check_blur", "auto_create_check_exposure",
        "auto_create_on_ha", "auto_create_on_junk", "auto_check_face_angle", "auto_check_liveness",
        "auto_create_liveness_only", "auto_identify_asm")},
    "store_images_for_results": {"type": "array", "items": {"type": "string"}},
}

_SCHEMAS: dict[str, Any] = {
    "PersonsSource": {"type": "object", "required": ["id", "name", "created", "updated"],
                      "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                     "created": _TIME, "updated": _TIME, **_SETTINGS_PROPS}},
    "PersonsSourceIn": {"type": "object", "properties": {"name": {"type": "string"},
                                                         **_SETTINGS_PROPS}},
    "PersonsThresholds": {"type": "object", "required": ["exact", "ha", "junk"],
                          "properties": {k: {"type": "number"} for k in ("exact", "ha", "junk")}},
    "PersonsPerson": {"type": "object", "required": ["pid", "face_id", "source_id", "entry_id"],
                      "properties": {"pid": {"type": "string"}, "face_id": _ID,
                                     "source_id": {"type": "integer", "nullable": True},
                                     "entry_id": {**_ID, "nullable": True},
                                     "created": _TIME, "updated": _TIME}},
    "PersonsEntry": {"type": "object", "required": ["id", "pid", "result", "source", "created"],
                     "properties": {
                         "id": _ID, "pid": _NULLABLE_STR, "result": {"type": "string"},
                         "confidence": {"type": "number", "nullable": True},
                         "age": {"type": "integer", "nullable": True}, "sex": _NULLABLE_STR,
                         "mood": _NULLABLE_STR, "liveness": _NULLABLE_STR,
                         "source": {"type": "object", "properties": {
                             "id": {"type": "integer", "nullable": True}, "name": _NULLABLE_STR}},
                         "created": _TIME, "face_size": {"type": "number", "nullable": True},
                         "bbox": {"nullable": True}, "cam_id": _NULLABLE_STR,
                         "images": {"type": "object", "additionalProperties": _NULLABLE_STR}}},
    "PersonsToken": {"type": "object", "required": ["name", "role", "state", "created_ms"],
                     "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                                    "state": {"type": "string", "enum": ["active", "expired", "revoked"]},
                                    "created_ms": {"type": "integer"},
                                    "expires_ms": {"type": "integer", "nullable": True},
                                    "revoked_ms": {"type": "integer", "nullable": True},
                                    "sha256_prefix": {"type": "string"},
                                    "token": {"type": "string", "description": "the secret, only "
                                              "in the answer to POST (shown once)"}}},
    "PersonsTokenIn": {"type": "object", "required": ["name"], "additionalProperties": False,
                       "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_.@:-]{1,128}$"},
                                      "role": {"type": "string", "enum": ["read", "ingest", "operator",
                                                                          "admin", "write"]},
                                      "expires_in_s": {"type": "number", "exclusiveMinimum": True,
                                                       "minimum": 0}}},
    "PersonsAudit": {"type": "object", "required": ["id", "ts_ms", "time", "service", "token", "role",
                                                    "method", "route", "path", "status"],
                     "properties": {"id": {"type": "integer"}, "ts_ms": {"type": "integer"},
                                    "time": _TIME, "service": {"type": "string"},
                                    "token": {"type": "string"}, "role": {"type": "string"},
                                    "method": {"type": "string"}, "route": {"type": "string"},
                                    "path": {"type": "string"}, "object_id": _NULLABLE_STR,
                                    "status": {"type": "integer"}, "detail": _NULLABLE_STR}},
    "PersonsUpload": {"type": "object", "required": ["image", "source"],
                      "properties": {"image": {"type": "string", "format": "binary"},
                                     "source": {"type": "string",
                                                "description": "a source name or id"}}},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page_params(*extra: str) -> list[dict[str, Any]]:
    params = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
              {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]
    return params + [{"name": n, "in": "query", "schema": {"type": "string"}} for n in extra]


def _path(name: str, pattern: str = "^[^/]+$") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": pattern}}


def fragment(prefix: str) -> dict[str, Any]:
    """``{"paths", "components"}`` of the API under ``prefix`` (e.g. ``/v1``)."""
    p = prefix
    upload = {"required": True, "content": {"multipart/form-data": {"schema": _ref("PersonsUpload")}}}
    source_body = {"required": True, "content": {"application/json": {"schema": _ref("PersonsSourceIn")}}}
    pick = {"200": _json("the person and the entry made", {
        "type": "object", "required": ["pid", "entry"],
        "properties": {"pid": {"type": "string"}, "entry": _ref("PersonsEntry")}})}
    paths: dict[str, Any] = {
        f"{p}/sources": {
            "get": {"summary": "Sources", "parameters": _page_params("q"), "responses": _responses(
                {"200": _json("a page", {"type": "object", "required": ["count", "results"],
                                         "properties": {"count": {"type": "integer"}, "results": {
                                             "type": "array", "items": _ref("PersonsSource")}}})})},
            "post": {"summary": "Create a source", "requestBody": source_body,
                     "responses": _responses({"201": _json("created", _ref("PersonsSource"))},
                                             conflict=True, too_large=True)}},
        f"{p}/sources/{{id}}": {
            "parameters": [_path("id")],
            "get": {"summary": "One source", "responses": _responses(
                {"200": _json("the source", _ref("PersonsSource"))}, not_found=True)},
            "put": {"summary": "Replace a source's settings", "requestBody": source_body,
                    "responses": _responses({"200": _json("the source", _ref("PersonsSource"))},
                                            not_found=True, conflict=True, too_large=True)},
            "patch": {"summary": "Change some settings", "requestBody": source_body,
                      "responses": _responses({"200": _json("the source", _ref("PersonsSource"))},
                                              not_found=True, conflict=True, too_large=True)},
            "delete": {"summary": "Delete a source", "responses": _responses(
                {"204": {"description": "deleted"}}, not_found=True, conflict=True)}},
        f"{p}/thresholds": {
            "get": {"summary": "Thresholds", "responses": _responses(
                {"200": _json("current", _ref("PersonsThresholds"))})},
            "put": {"summary": "Set thresholds", "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("PersonsThresholds")}}},
                "responses": _responses({"200": _json("new", _ref("PersonsThresholds"))}, too_large=True)},
            "patch": {"summary": "Set thresholds", "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("PersonsThresholds")}}},
                "responses": _responses({"200": _json("new", _ref("PersonsThresholds"))}, too_large=True)}},
        f"{p}/status": {"get": {"summary": "Plugin status", "responses": _responses(
            {"200": _json("counters", {"type": "object"})})}},
        f"{p}/persons": {
            "get": {"summary": "Persons", "parameters": _page_params(), "responses": _responses(
                {"200": _json("a page", {"type": "object", "required": ["count", "results"],
                                         "properties": {"count": {"type": "integer"}, "results": {
                                             "type": "array", "items": _ref("PersonsPerson")}}})})},
            "post": {"summary": "A person from a photo", "requestBody": upload,
                     "responses": _responses({"201": pick["200"]}, not_found=True, conflict=True,
                                             too_large=True) | {
                         "422": _err("no usable face in the photo")}}},
        f"{p}/persons/reinit/{{entry_id}}": {
            "parameters": [_path("entry_id")],
            "post": {"summary": "Re-enrol from a stored entry",
                     "parameters": [{"name": "pid", "in": "query", "schema": {"type": "string"}}],
                     "responses": _responses(pick, not_found=True, conflict=True) | {
                         "422": _err("no usable face in the entry's image")}}},
        f"{p}/persons/{{pid}}/reinit": {
            "parameters": [_path("pid")],
            "post": {"summary": "Re-enrol from a photo", "requestBody": upload,
                     "responses": _responses(pick, not_found=True, conflict=True, too_large=True) | {
                         "422": _err("no usable face in the photo")}}},
        f"{p}/persons/{{pid}}": {
            "parameters": [_path("pid")],
            "get": {"summary": "One person", "responses": _responses(
                {"200": _json("the person", _ref("PersonsPerson"))}, not_found=True)},
            "delete": {"summary": "Delete a person; with erase=true (admin) everything of them, "
                                  "with a report",
                       "parameters": [{"name": "erase", "in": "query", "schema": {"type": "boolean"}}],
                       "responses": _responses(
                {"204": {"description": "deleted"},
                 "200": _json("erased: the report", {"type": "object", "required": [
                     "pid", "entries", "images", "archive_faces", "backups_still_holding"]})},
                not_found=True)}},
        f"{p}/entries": {"get": {
            "summary": "Entries (filters as query parameters)",
            "parameters": _page_params("id__lt", "id__gte", "result", "pid", "source", "date_from",
                                       "date_to"),
            "responses": _responses({"200": _json("a page: a list under the reference prefix, "
                                                  "an object with next_page under the rich one", {
                "anyOf": [{"type": "array", "items": _ref("PersonsEntry")}, {
                    "type": "object", "required": ["results", "next_page"],
                    "properties": {"results": {"type": "array", "items": _ref("PersonsEntry")},
                                   "next_page": _NULLABLE_STR}}]})})}},
        f"{p}/entries/stats": {"get": {
            "summary": "Counts per group",
            "parameters": [{"name": "group_by", "in": "query", "schema": {"type": "string"}}],
            "responses": _responses({"200": _json("counts", {})})}},
        f"{p}/entries/stats/pid/{{pid}}": {
            "parameters": [_path("pid")],
            "get": {"summary": "One person's counts", "responses": _responses(
                {"200": _json("counts", {"type": "object"})}, not_found=True)}},
        f"{p}/entries/{{id}}/image/{{kind}}": {
            "parameters": [_path("id"), _path("kind", "^(?:face|photo)$")],
            "get": {"summary": "An entry's kept JPEG", "responses": _responses(
                {"200": {"description": "JPEG", "content": {"image/jpeg": {
                    "schema": {"type": "string", "format": "binary"}}}}}, not_found=True)}},
        f"{p}/entries/{{id}}": {
            "parameters": [_path("id")],
            "get": {"summary": "One entry", "responses": _responses(
                {"200": _json("the entry", _ref("PersonsEntry"))}, not_found=True)},
            "delete": {"summary": "Delete an entry and its images", "responses": _responses(
                {"204": {"description": "deleted"}}, not_found=True)}},
    }
    admin_only = {"403": _err("the token is not an admin's")}
    paths |= {
        f"{p}/tokens": {
            "get": {"summary": "API tokens (admin; never their secrets)", "responses": _responses(
                {"200": _json("the tokens", {"type": "object", "required": ["results"], "properties": {
                    "results": {"type": "array", "items": _ref("PersonsToken")}}})}) | admin_only},
            "post": {"summary": "Create a token (admin); its secret is in this answer only",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("PersonsTokenIn")}}},
                     "responses": _responses({"201": _json("the token and its secret",
                                                           _ref("PersonsToken"))},
                                             conflict=True, too_large=True) | admin_only}},
        f"{p}/tokens/{{name}}": {
            "parameters": [_path("name")],
            "delete": {"summary": "Revoke a token (admin)", "responses": _responses(
                {"200": _json("the revoked token", _ref("PersonsToken"))}, not_found=True) | admin_only}},
        f"{p}/audit": {"get": {
            "summary": "The audit log (admin), oldest first",
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("token", "method", "route", "object_id", "service", "since",
                                     "until")] + [
                {"name": "status", "in": "query", "schema": {"type": "integer", "minimum": 100,
                                                             "maximum": 599}},
                {"name": "after_id", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": 1000}}],
            "responses": _responses({"200": _json("records", {
                "type": "object", "required": ["results", "next_after_id"], "properties": {
                    "results": {"type": "array", "items": _ref("PersonsAudit")},
                    "next_after_id": {"type": "integer", "nullable": True}}})}) | admin_only}},
    }
    return {"paths": paths, "components": {"schemas": dict(_SCHEMAS)}}
