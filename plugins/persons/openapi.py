"""The persons API in OpenAPI 3.0 form: the plugin's ``openapi()`` fragment, merged by facerouter
into its ``/openapi.json`` (see :mod:`facerouter.openapi`).

Both prefixes are described: ``api_prefix`` (``/v1``, the reference's shapes: a plain list of
entries, 202 on deleting a source, the reference's moods) and ``rich_api_prefix`` (``/v2``: entry
pages with ``next_page``, 204 on every delete, the emotion network's moods). Every other route is
the same under both. Each path also answers with a trailing slash; the document lists each once,
without it. ``tests/facerouter/test_fuzz.py`` holds the server to this document, and
``tests/plugins/persons/test_openapi.py`` checks every answer of a real enrolment flow against it.
"""
from __future__ import annotations

import copy
from typing import Any, Literal

from .config import RESULTS
from .entries import FILTER_PARAMS, LIVENESS, MOODS, REFERENCE_MOODS
from .stats import GROUPS
from .uploads import ON_MATCH

__all__ = ["fragment"]

Shape = Literal["reference", "rich"]

_MAX_ID = (1 << 63) - 1
_STR = {"type": "string"}
_NULLABLE_STR = {"type": "string", "nullable": True}
_TIME = {"type": "string", "description": "RFC 3339 UTC, e.g. 2024-05-01T12:30:00.000Z"}
_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
_PID_PATTERN = "^[0-9a-fA-F]{1,32}(-[0-9a-fA-F]{1,32}){1,7}$"
_PID = {"type": "string", "pattern": _PID_PATTERN,
        "description": "a UUID (or hex digits in dash-separated groups, which name nobody)"}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}


def _obj(props: dict[str, Any], required: tuple[str, ...] | None = None,
         closed: bool = True) -> dict[str, Any]:
    """An object schema (every property required unless ``required`` says which)."""
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": list(props if required is None else required)}
    if closed:
        out["additionalProperties"] = False
    if not out["required"]:
        del out["required"]
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(*codes: str) -> dict[str, Any]:
    """The error body with one of ``codes`` (the router's own 404 has no param/value)."""
    return _obj({"code": {"type": "string", "enum": list(codes)}, "reason": _STR,
                 "param": _NULLABLE_STR, "value": {}}, ("code", "reason"), closed=False)


_SETTINGS: dict[str, Any] = {
    "license_id": {**_NULLABLE_STR, "description": "the license the source counts against "
                   "(an id; stored, does not change processing)"},
    "spaces_ids": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": _MAX_ID}},
    "image_retention_days": {"type": "integer", "minimum": 0, "maximum": 36500, "nullable": True},
    "entry_retention_days": {"type": "integer", "minimum": 0, "maximum": 36500, "nullable": True},
    **{k: {"type": "integer", "minimum": 0} for k in (
        "identify_facesize_threshold", "manual_create_facesize_threshold",
        "auto_create_facesize_threshold")},
    **{k: {"type": "boolean"} for k in (
        "use_pps_time", "manual_create_on_ha", "manual_create_on_junk", "manual_identify_asm",
        "auto_create_persons", "auto_create_check_blur", "auto_create_check_exposure",
        "auto_create_on_ha", "auto_create_on_junk", "auto_check_face_angle", "auto_check_liveness",
        "auto_create_liveness_only", "auto_identify_asm")},
    "store_images_for_results": {"type": "array",
                                 "items": {"type": "string", "enum": list(RESULTS)}},
}
_LICENSE_IN = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": _MAX_ID},
                         {"type": "string", "minLength": 1, "maxLength": 255}],
               "nullable": True,
               "description": "a license id (license and license_id are one field)"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
_SETTINGS_IN = {**_SETTINGS, "license_id": _LICENSE_IN, "license": _LICENSE_IN}


def _entry(shape: Shape) -> dict[str, Any]:
    if shape == "reference":
        mood: dict[str, Any] = {"type": "string", "enum": list(REFERENCE_MOODS)}
    else:
        mood = {"type": "string", "enum": list(MOODS), "nullable": True}
    return _obj({
        "id": _DIGITS, "pid": _NULLABLE_STR, "result": {"type": "string", "enum": list(RESULTS)},
        "confidence": {"type": "number", "nullable": True},
        "age": {"type": "integer", "nullable": True},
        "sex": {"type": "integer", "enum": [0, 1], "nullable": True,
                "description": "0 male, 1 female"},
        "mood": mood, "liveness": {"type": "string", "enum": list(LIVENESS)},
        "source": _obj({"id": {"type": "integer"}, "name": _NULLABLE_STR}),
        "created": _TIME, "face_size": {"type": "number", "nullable": True},
        "bbox": {"type": "array", "nullable": True,
                 "items": {"type": "array", "items": {"type": "number"}}},
        "cam_id": _NULLABLE_STR,
        "images": _obj({"face": _NULLABLE_STR, "photo": _NULLABLE_STR}),
    })


_SCHEMAS: dict[str, Any] = {
    "PersonsToken": _obj({"name": _STR, "role": _STR, "state": _STR, "created_ms": {"type": "integer"},
                          "expires_ms": {"type": "integer", "nullable": True},
                          "revoked_ms": {"type": "integer", "nullable": True},
                          "secret": _STR}, ("name", "role", "state", "created_ms"), closed=False),
    "PersonsTokenIn": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 128},
                            "role": {"type": "string", "enum": ["read", "ingest", "operator", "admin", "write"]},
                            "expires_in_s": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}, ("name",)),
    "PersonsExportIn": _obj({"what": {"type": "string", "enum": ["persons"]},
                             "to": {"type": "string", "maxLength": 256, "pattern": "^[^\\r\\n\\x00]*$"}},
                            ()),
    "PersonsExportDoneIn": _obj({"persons": {"type": "integer", "minimum": 0},
                                 "without_photo": {"type": "integer", "minimum": 0},
                                 "error": {"type": "string", "maxLength": 512,
                                           "pattern": "^[^\\r\\n\\x00]*$"}}, ()),
    "PersonsExport": _obj({"id": _STR, "what": _STR, "to": _NULLABLE_STR, "started": _TIME,
                           "token": _NULLABLE_STR, "persons": {"type": "integer"},
                           "without_photo": {"type": "integer"}, "error": _NULLABLE_STR,
                           "finished": _TIME}, ("id", "what", "to", "started", "token"), closed=False),
    "PersonsAudit": _obj({"id": {"type": "integer"}, "ts_ms": {"type": "integer"}, "time": _TIME,
                          "service": _STR, "token": _STR, "role": _STR, "method": _STR, "route": _STR,
                          "path": _STR, "object_id": _NULLABLE_STR, "status": {"type": "integer"},
                          "detail": _NULLABLE_STR},
                         ("id", "ts_ms", "time", "service", "token", "role", "method", "route", "path",
                          "status"), closed=False),
    "PersonsSource": _obj({"id": {"type": "integer"}, "name": _STR, **_SETTINGS,
                           "license": _NULLABLE_STR, "created": _TIME, "updated": _TIME}),
    "PersonsSourceIn": _obj({"name": _NAME, **_SETTINGS_IN}, ("name",)),
    "PersonsSourceUpdate": _obj({"name": _NAME, **_SETTINGS_IN}, ()),
    "PersonsThresholds": _obj({k: {"type": "number", "minimum": 0, "maximum": 100}
                               for k in ("exact", "ha", "junk")}),
    "PersonsThresholdsIn": {**_obj({k: {"type": "number", "minimum": 0, "maximum": 100}
                                    for k in ("exact", "ha", "junk")}, ()),
                            "description": "some or all thresholds (junk <= ha <= exact)"},
    "PersonsPerson": _obj({"pid": _STR, "face_id": _DIGITS,
                           "source_id": {"type": "integer", "nullable": True},
                           "entry_id": {**_DIGITS, "nullable": True},
                           "created": _TIME, "updated": _TIME}),
    "PersonsEntry": _entry("reference"),
    "PersonsRichEntry": _entry("rich"),
    "PersonsEnrolUpload": _obj({
        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WEBP"},
        "source": {"type": "string", "description": "a source name or id"},
        "on_match": {"type": "string", "enum": list(ON_MATCH)},
        "facesize": {"type": "integer", "minimum": 0},
        "create_on_ha": {"type": "boolean"}, "create_on_junk": {"type": "boolean"},
        "identify_asm": {"type": "boolean"}}, ("image", "source")),
    "PersonsReinitUpload": _obj({
        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WEBP"},
        "source": {"type": "string", "description": "a source name or id"},
        "facesize": {"type": "integer", "minimum": 0}, "identify_asm": {"type": "boolean"},
        "result": {"type": "string", "enum": list(RESULTS)}}, ("image", "source")),
    "PersonsReinitEntry": _obj({
        "id": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": _MAX_ID}, _DIGITS],
               "description": "the entry whose kept image becomes the person's face"},
        "pid": {**_PID, "nullable": True, "description": "the person (default: the entry's)"}},
        ("id",)),
    "PersonsError": _error("BAD_PARAM", "MALFORMED_REQUEST", "NOT_FOUND", "CONFLICT",
                           "SERVICE_UNAVAILABLE"),
    "PersonsEnrolConflict": {**_obj({
        "code": {"type": "string", "enum": ["CONFLICT"]}, "reason": _STR,
        "param": {"type": "string", "enum": ["image"]},
        "value": {"type": "string", "enum": ["exact", "ha", "junk"]},
        "pid": _STR, "result": {"type": "string", "enum": ["exact", "ha", "junk"]},
        "confidence": {"type": "number"}}),
        "description": "the face matches a person (on_match=refuse): nothing was stored"},
    "PersonsStatus": _obj({
        "entries_by_result": _COUNTS, "unknown_sources": _COUNTS, "auto_create_refused": _COUNTS,
        "webhooks": {"type": "array", "items": {"type": "object"}},
        "images_removed_by_retention": {"type": "integer", "minimum": 0},
        "liveness": _STR}),
    "PersonsPersonStats": _obj({
        "pid": _STR, "exists": {"type": "boolean"}, "total": {"type": "integer", "minimum": 0},
        "by_result": _COUNTS,
        "by_source": {"type": "array", "items": _obj({"source_id": {"type": "integer"},
                                                      "count": {"type": "integer"}})},
        "first_seen": {**_TIME, "nullable": True}, "last_seen": {**_TIME, "nullable": True}}),
    "PersonsAggregate": _obj({
        "fields": {"type": "array", "items": {"type": "string", "enum": [*GROUPS, "count"]}},
        "stats": {"type": "array", "items": {"type": "array", "items": {
            "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "description": "the group values in the order of fields, then the count"}},
        "period": _obj({"date_from": _NULLABLE_STR, "date_to": _NULLABLE_STR})}),
}


def _err(description: str, *codes: str) -> dict[str, Any]:
    return _json(description, _error(*codes) if codes else {"$ref": "#/components/schemas/Error"})


_BAD = _err("a bad parameter, named by param (unknown query parameters included)", "BAD_PARAM",
            "MALFORMED_REQUEST")
_AUTH = {"401": _err("no valid API token (when the router checks tokens)"),
         "403": _err("the token's role does not grant this route")}
_NOT_FOUND = _err("no such item", "NOT_FOUND")
_TOO_LARGE = _err("the body is over the router's max_body_bytes", "PAYLOAD_TOO_LARGE")
_SFAPI_DOWN = _err("sfapi is unavailable: retry later", "SERVICE_UNAVAILABLE")


def _responses(ok: dict[str, Any], *, not_found: bool = False, body: bool = False,
               sfapi: bool = False, bad: dict[str, Any] = _BAD,
               conflict: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {**ok, "400": bad, **_AUTH}
    if not_found:
        out["404"] = _NOT_FOUND
    if body:
        out["413"] = _TOO_LARGE
    if sfapi:
        out["503"] = _SFAPI_DOWN
    if conflict is not None:
        out["409"] = conflict
    return out


def _q(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        out["description"] = description
    return out


def _list_q(name: str, items: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """A list parameter (repeated; comma-separated values are accepted too)."""
    return {**_q(name, {"type": "array", "items": items, "minItems": 1}, description),
            "style": "form", "explode": True}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_ID_INT = {"type": "integer", "minimum": 0, "maximum": _MAX_ID}
_ID_PATH = {"type": "string", "pattern": "^[0-9]{1,19}$", "description": "an id, 0..2^63-1"}


def _page(max_limit: int, default_limit: int) -> list[dict[str, Any]]:
    return [_q("limit", {"type": "integer", "minimum": 1, "maximum": max_limit},
               f"page size (default {default_limit})"),
            _q("offset", {"type": "integer", "minimum": 0, "maximum": _MAX_ID})]


def _filters(shape: Shape) -> list[dict[str, Any]]:
    moods = REFERENCE_MOODS if shape == "reference" else MOODS
    out = {
        "pid": _list_q("pid", _PID),
        "result": _list_q("result", {"type": "string", "enum": list(RESULTS)}),
        "age_from": _q("age_from", {"type": "integer", "minimum": 0, "maximum": 200}),
        "age_to": _q("age_to", {"type": "integer", "minimum": 0, "maximum": 200}),
        "sex": _q("sex", {"type": "integer", "enum": [0, 1]}, "0 male, 1 female"),
        "mood": _list_q("mood", {"type": "string", "enum": list(moods)}),
        "liveness": _list_q("liveness", {"type": "string", "enum": list(LIVENESS)}),
        "sources_ids": _list_q("sources_ids", _ID_INT),
        "spaces_ids": _list_q("spaces_ids", _ID_INT, "the sources of any of these spaces"),
        "date_from": _q("date_from", {"type": "string", "format": "date-time"},
                        "RFC 3339 or a date (no offset: UTC), inclusive"),
        "date_to": _q("date_to", {"type": "string", "format": "date-time"},
                      "RFC 3339 or a date (no offset: UTC), inclusive"),
    }
    assert tuple(out) == FILTER_PARAMS
    return list(out.values())


def _pointer(path: str, method: str) -> str:
    """An ``operationRef`` to ``method`` of ``path`` in this document."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _paths(p: str, shape: Shape, max_limit: int, default_limit: int) -> dict[str, Any]:
    """The path items under prefix ``p`` in ``shape``."""
    entry = _ref("PersonsEntry" if shape == "reference" else "PersonsRichEntry")
    pick = _obj({"pid": _STR, "entry": entry})
    source = _json("the source", _ref("PersonsSource"))
    thresholds = _json("the thresholds now", _ref("PersonsThresholds"))
    source_in = {"required": True, "content": {"application/json": {
        "schema": _ref("PersonsSourceIn")}}}
    source_update = {"required": False, "content": {"application/json": {
        "schema": _ref("PersonsSourceUpdate")}}}
    thresholds_in = {"required": False, "content": {"application/json": {
        "schema": _ref("PersonsThresholdsIn")}}}
    upload_bad = _err("a bad part, named by param; NO_FACE: no face in the image", "BAD_PARAM",
                      "MALFORMED_REQUEST", "NO_FACE")
    reinit_upload = {"required": True, "content": {"multipart/form-data": {
        "schema": _ref("PersonsReinitUpload")}}}
    if shape == "reference":
        deleted = {"202": {"description": "deleted (the reference's answer; no body)"}}
        entries_ok = _json("entries, newest first", {"type": "array", "items": entry})
    else:
        deleted = {"204": {"description": "deleted"}}
        entries_ok = _json("entries, newest first; next_page is the id__lt of the next page "
                           "(null on the last)", _obj({
                               "results": {"type": "array", "items": entry},
                               "next_page": {**_DIGITS, "nullable": True}}))
    page = _page(max_limit, default_limit)
    return {
        f"{p}/sources": {
            "get": {"summary": "Sources, by id", "parameters": [
                _q("q", _STR, "a substring of the name (any case)"),
                _list_q("spaces_ids", _ID_INT, "the sources of any of these spaces"), *page],
                "responses": _responses({"200": _json("one page", _obj({
                    "count": {"type": "integer", "minimum": 0},
                    "results": {"type": "array", "items": _ref("PersonsSource")}}))})},
            "post": {"summary": "Create a source", "requestBody": source_in,
                     "responses": _responses({"201": {
                         **_json("created", _ref("PersonsSource")),
                         "links": {f"{m.title()}Source": {
                             "operationRef": _pointer(f"{p}/sources/{{id}}", m),
                             "parameters": {"id": "$response.body#/id"}}
                             for m in ("get", "put", "patch", "delete")}}},
                                             body=True, conflict=_err("the name is taken",
                                                                  "CONFLICT"))}},
        f"{p}/sources/{{id}}": {
            "parameters": [_path("id", _ID_PATH)],
            "get": {"summary": "One source", "responses": _responses({"200": source},
                                                                     not_found=True)},
            "put": {"summary": "Replace a source's name and settings (settings left out: "
                               "their defaults)", "requestBody": source_update,
                    "responses": _responses({"200": source}, not_found=True, body=True,
                                            conflict=_err("the name is taken", "CONFLICT"))},
            "patch": {"summary": "Change some of a source's settings (the others stay)",
                      "requestBody": source_update,
                      "responses": _responses({"200": source}, not_found=True, body=True,
                                              conflict=_err("the name is taken", "CONFLICT"))},
            "delete": {"summary": "Delete a source (its entries stay)",
                       "responses": _responses(deleted, not_found=True)}},
        f"{p}/thresholds": {
            "get": {"summary": "The exact / ha / junk thresholds",
                    "responses": _responses({"200": thresholds})},
            "put": {"summary": "Set some or all thresholds", "requestBody": thresholds_in,
                    "responses": _responses({"200": thresholds}, body=True)},
            "patch": {"summary": "Set some or all thresholds", "requestBody": thresholds_in,
                      "responses": _responses({"200": thresholds}, body=True)}},
        f"{p}/status": {"get": {"summary": "Counters of the plugin", "responses": _responses(
            {"200": _json("counters", _ref("PersonsStatus"))})}},
        f"{p}/persons": {
            "get": {"summary": "Persons, newest first", "parameters": page,
                    "responses": _responses({"200": _json("one page", _obj({
                        "count": {"type": "integer", "minimum": 0},
                        "results": {"type": "array", "items": _ref("PersonsPerson")}}))})},
            "post": {"summary": "Enrol a person from a photo (the largest face)",
                     "parameters": [_q("on_match", {"type": "string", "enum": list(ON_MATCH)},
                                       "what a face matching a person does (also a part)")],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {
                         "schema": _ref("PersonsEnrolUpload")}}},
                     "responses": _responses(
                         {"201": _json("a new person and its entry (result new)", pick),
                          "200": _json("on_match=reinit: the matched person, re-initialised "
                                       "(entry result reinit)", pick)},
                         body=True, sfapi=True, bad=upload_bad, conflict=_json(
                             "the face matches a person (on_match=refuse); nothing stored",
                             _ref("PersonsEnrolConflict")))}},
        f"{p}/persons/reinit": {
            "post": {"summary": "Re-initialise a person from a stored entry's image",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("PersonsReinitEntry")}}},
                     "responses": _responses({"200": _json("the person and the new entry "
                                                           "(result reinit)", pick)},
                                             not_found=True, body=True, sfapi=True,
                                             bad=upload_bad)}},
        f"{p}/persons/reinit/{{ref}}": {
            "parameters": [_path("ref", {"type": "string", "pattern": "^[^/]+$",
                                         "description": "an entry id (digits): re-initialise "
                                         "from its kept image; or a pid: from the uploaded "
                                         "photo, as POST persons/{pid}/reinit"})],
            "post": {"summary": "Re-initialise a person from an entry, or from a photo",
                     "parameters": [_q("pid", _PID, "with an entry id: the person (default: "
                                       "the entry's)")],
                     "requestBody": {"required": False, "content": {"multipart/form-data": {
                         "schema": _ref("PersonsReinitUpload")}}},
                     "responses": _responses({"200": _json("the person and the new entry "
                                                           "(result reinit)", pick)},
                                             not_found=True, body=True, sfapi=True,
                                             bad=upload_bad)}},
        f"{p}/persons/{{pid}}/reinit": {
            "parameters": [_path("pid", _PID)],
            "post": {"summary": "Re-initialise a person from a photo (the largest face)",
                     "requestBody": reinit_upload,
                     "responses": _responses({"200": _json("the person and the new entry "
                                                           "(result reinit)", pick)},
                                             not_found=True, body=True, sfapi=True,
                                             bad=upload_bad)}},
        f"{p}/persons/{{pid}}": {
            "parameters": [_path("pid", _PID)],
            "get": {"summary": "One person", "responses": _responses(
                {"200": _json("the person", _ref("PersonsPerson"))}, not_found=True)},
            "delete": {"summary": "Delete a person and its gallery face (entries stay); with "
                                  "erase=true (admin) everything of them, with a report",
                       "parameters": [_q("erase", {"type": "boolean"})],
                       "responses": _responses({
                           "204": {"description": "deleted"},
                           "200": _json("erased: the report", {
                               "type": "object", "required": ["pid", "entries", "images", "archive_faces",
                                                              "backups_still_holding"]})},
                           not_found=True, sfapi=True)}},
        f"{p}/tokens": {
            "get": {"summary": "API tokens (admin; never their secrets)", "responses": _responses(
                {"200": _json("the tokens", _obj({"results": {"type": "array", "items": _ref("PersonsToken")}},
                                                 ("results",), closed=False))})},
            "post": {"summary": "Create a token (admin); its secret is in this answer only",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("PersonsTokenIn")}}},
                     "responses": _responses({"201": _json("the token and its secret", _ref("PersonsToken"))},
                                             body=True, conflict=_err("the name is taken", "CONFLICT"))}},
        f"{p}/tokens/{{name}}": {
            "parameters": [_path("name", {"type": "string", "pattern": "^[^/]+$"})],
            "delete": {"summary": "Revoke a token (admin)", "responses": _responses(
                {"200": _json("the revoked token", _ref("PersonsToken"))}, not_found=True)}},
        f"{p}/exports": {"post": {
            "summary": "Open an export of person data (recorded in the audit log)",
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": _ref("PersonsExportIn")}}},
            "responses": _responses({"201": _json("the open export", _ref("PersonsExport"))},
                                    body=True)}},
        f"{p}/exports/{{id}}/done": {
            "parameters": [_path("id", {"type": "string", "pattern": "^[^/]+$"})],
            "post": {"summary": "Close an export with what it wrote (recorded in the audit log)",
                     "requestBody": {"required": False, "content": {"application/json": {
                         "schema": _ref("PersonsExportDoneIn")}}},
                     "responses": _responses({"200": _json("the closed export", _ref("PersonsExport"))},
                                             body=True, not_found=True)}},
        f"{p}/audit": {"get": {
            "summary": "The audit log (admin), oldest first",
            "parameters": [*(_q(n, {"type": "string"}) for n in ("token", "method", "route", "object_id",
                                                                   "service", "since", "until")),
                           _q("status", {"type": "integer", "minimum": 100, "maximum": 599}),
                           _q("after_id", {"type": "integer", "minimum": 0}),
                           _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
            "responses": _responses({"200": _json("records", _obj({
                "results": {"type": "array", "items": _ref("PersonsAudit")},
                "next_after_id": {"type": "integer", "nullable": True}}, ("results", "next_after_id"),
                closed=False))})}},
        f"{p}/entries": {"get": {
            "summary": "Entries matching the filters, newest first",
            "parameters": [*_filters(shape), *page,
                           _q("id__lt", _ID_INT, "keyset paging: ids below this"),
                           _q("id__gte", _ID_INT, "keyset paging: ids from this")],
            "responses": _responses({"200": entries_ok})}},
        f"{p}/entries/stats": {"get": {
            "summary": "Entry counts per group over a period (default: the last 30 days)",
            "parameters": [_list_q("group_by", {"type": "string", "enum": list(GROUPS)},
                                   "groups, in order (default result; hours and weekdays UTC)"),
                           *_filters(shape)],
            "responses": _responses({"200": _json("counts", _ref("PersonsAggregate"))})}},
        f"{p}/entries/stats/pid/{{pid}}": {
            "parameters": [_path("pid", _PID)],
            "get": {"summary": "One person's entry counts, first and last seen",
                    "responses": _responses({"200": _json("counts",
                                                          _ref("PersonsPersonStats"))},
                                            not_found=True)}},
        f"{p}/entries/{{id}}/image/{{kind}}": {
            "parameters": [_path("id", _ID_PATH),
                           _path("kind", {"type": "string", "enum": ["face", "photo"]})],
            "get": {"summary": "An entry's kept JPEG", "responses": _responses(
                {"200": {"description": "JPEG", "content": {"image/jpeg": {
                    "schema": {"type": "string", "format": "binary"}}}}}, not_found=True)}},
        f"{p}/entries/{{id}}": {
            "parameters": [_path("id", _ID_PATH)],
            "get": {"summary": "One entry", "responses": _responses(
                {"200": _json("the entry", entry)}, not_found=True)},
            "delete": {"summary": "Delete an entry and its images",
                       "responses": _responses({"204": {"description": "deleted"}},
                                               not_found=True)}},
    }


def fragment(prefix: str = "/v1", rich_prefix: str = "/v2", *, max_limit: int = 1000,
             default_limit: int = 20) -> dict[str, Any]:
    """``{"paths", "components"}`` of the API under ``prefix`` (the reference's shapes) and
    ``rich_prefix`` (the richer ones)."""
    paths = {**_paths(prefix, "reference", max_limit, default_limit),
             **_paths(rich_prefix, "rich", max_limit, default_limit)}
    return {"paths": copy.deepcopy(paths),
            "components": {"schemas": copy.deepcopy(_SCHEMAS)}}
