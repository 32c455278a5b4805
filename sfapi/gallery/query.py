"""Gallery listing/search requests: the query-string and JSON forms, parsed into filter specs, and
the opaque page cursor.

Both forms become a list of filter specs ``{"field", "op", "value"[, "threshold"]}``:

* query string: ``id.gte=5``, ``id.lte=9``, ``id.oneof=1&id.oneof=2`` (or ``id.oneof=1,2``),
  ``meta.<key>.lte|gte=v``, ``meta.<key>.oneof=a&meta.<key>.oneof=b``, ``meta.<key>.subset=x&...``,
  ``looks_like=detection:<id>`` or ``looks_like=face:<gallery>/<id>`` with ``threshold=0.75``;
  plus ``sort``, ``limit``, ``page``, ``ignore_errors``.
* JSON body of ``POST .../faces/search``: ``{"filters": [{"field": "id", "op": "gte", "value": 5},
  {"field": "meta.age", "op": "gte", "value": 30}, {"field": "detection", "op": "looks_like",
  "value": "<id>", "threshold": 0.75}, {"field": "face", "op": "looks_like", "value": {"gallery":
  "g", "face": 1}, "threshold": 0.7}], "sort": "-confidence", "limit": 10, "page": null,
  "ignore_errors": false}``.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from multidict import MultiMapping

from sfapi.engines.similarity import DEFAULT_THRESHOLD
from sfapi.errors import BadParam, MalformedRequest
from sfapi.gallery.types import MAX_LIMIT, UINT64_MAX, Cursor, IdFilter, MetaFilter, Schema, Sort

SORTS: tuple[str, ...] = ("id", "-id", "-confidence")
_ID_OPS = ("lte", "gte", "oneof")
_META_OPS = ("lte", "gte", "oneof", "subset")
_QS_FIXED = {"sort", "limit", "page", "ignore_errors", "looks_like", "threshold"}


@dataclass(frozen=True)
class LikeSpec:
    """A look-alike filter before its vector is resolved: a detection id or a stored face."""

    kind: str  # "detection" | "face"
    detection: str = ""
    gallery: str = ""
    face: int = 0
    threshold: float = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class ListRequest:
    ids: tuple[IdFilter, ...]
    meta: tuple[MetaFilter, ...]
    like: LikeSpec | None
    sort: Sort
    limit: int
    after: Cursor | None
    ignore_errors: bool


def face_id(raw: Any, param: str = "id") -> int:
    """An unsigned 64-bit face id from a path or JSON value."""
    try:
        value = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None or not 0 <= value <= UINT64_MAX or (isinstance(raw, str) and not raw.isdigit()):
        raise BadParam(param, raw, f"{param} must be an unsigned 64-bit integer")
    return value


def parse_source(raw: Any, param: str = "from") -> LikeSpec:
    """``detection:<id>`` or ``face:<gallery>/<id>`` (also used by looks_like)."""
    if isinstance(raw, str) and raw.startswith("detection:") and len(raw) > len("detection:"):
        return LikeSpec("detection", detection=raw[len("detection:"):])
    if isinstance(raw, str) and raw.startswith("face:") and "/" in raw:
        gallery, _, fid = raw[len("face:"):].rpartition("/")
        if gallery:
            return LikeSpec("face", gallery=gallery, face=face_id(fid, param))
    raise BadParam(param, raw, f'{param} must be "detection:<id>" or "face:<gallery>/<id>"')


def specs_from_query(q: MultiMapping[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Filter specs and the other options from a query string."""
    specs: list[dict[str, Any]] = []
    for key in set(q.keys()):
        if key in _QS_FIXED:
            continue
        parts = key.split(".")
        values = q.getall(key)
        if parts[0] == "id" and len(parts) == 2 and parts[1] in _ID_OPS:
            if parts[1] == "oneof":
                items = [v for raw in values for v in raw.split(",") if v != ""]
                specs.append({"field": "id", "op": "oneof", "value": items, "_param": key})
            else:
                specs.extend({"field": "id", "op": parts[1], "value": v, "_param": key} for v in values)
        elif parts[0] == "meta" and len(parts) >= 3 and parts[-1] in _META_OPS:
            field = ".".join(parts[1:-1])
            op = parts[-1]
            if op in ("oneof", "subset"):
                specs.append({"field": f"meta.{field}", "op": op, "value": list(values), "_param": key})
            else:
                specs.extend({"field": f"meta.{field}", "op": op, "value": v, "_param": key} for v in values)
        else:
            raise BadParam(key, q.get(key), f"unknown query parameter {key!r}")
    if "looks_like" in q:
        like = parse_source(q["looks_like"], "looks_like")
        spec: dict[str, Any] = {"field": like.kind, "op": "looks_like", "_param": "looks_like",
                                "value": like.detection if like.kind == "detection"
                                else {"gallery": like.gallery, "face": like.face}}
        if "threshold" in q:
            spec["threshold"] = q["threshold"]
        specs.append(spec)
    elif "threshold" in q:
        raise BadParam("threshold", q["threshold"], "threshold needs looks_like")
    opts = {k: q[k] for k in ("sort", "limit", "page", "ignore_errors") if k in q}
    return specs, opts


def specs_from_body(body: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not isinstance(body, dict):
        raise MalformedRequest("search body must be a JSON object")
    unknown = set(body) - {"filters", "sort", "limit", "page", "ignore_errors"}
    if unknown:
        key = sorted(unknown)[0]
        raise BadParam(key, body[key], f"unknown field {key!r} in search body")
    filters = body.get("filters") or []
    if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
        raise BadParam("filters", filters, "filters must be a list of objects")
    opts = {k: body[k] for k in ("sort", "limit", "page", "ignore_errors") if k in body and body[k] is not None}
    return [dict(f, _param=f"filters[{i}]") for i, f in enumerate(filters)], opts


def build_request(specs: Sequence[Mapping[str, Any]], opts: Mapping[str, Any], schema: Schema) -> ListRequest:
    """Typed filters from specs, checked against the gallery's meta schema."""
    ids: list[IdFilter] = []
    metas: list[MetaFilter] = []
    like: LikeSpec | None = None
    for spec in specs:
        param = str(spec.get("_param", "filters"))
        field, op, value = spec.get("field"), spec.get("op"), spec.get("value")
        if field == "id":
            if op not in _ID_OPS:
                raise BadParam(param, op, f"id filters are {', '.join(_ID_OPS)}")
            if op == "oneof":
                vals = value if isinstance(value, list) else [value]
                ids.append(IdFilter("oneof", tuple(face_id(v, param) for v in vals)))
            else:
                ids.append(IdFilter(op, face_id(value, param)))  # type: ignore[arg-type]
        elif isinstance(field, str) and field.startswith("meta."):
            metas.append(_meta_filter(field[5:], op, value, schema, param))
        elif field in ("detection", "face") and op == "looks_like":
            if like is not None:
                raise BadParam(param, field, "only one look-alike filter per request")
            like = _like(field, value, spec.get("threshold", DEFAULT_THRESHOLD), param)
        else:
            raise BadParam(param, field, f"unknown filter field {field!r} (id, meta.<key>, detection, face)")
    sort = opts.get("sort") or ("-confidence" if like is not None else "id")
    if sort not in SORTS:
        raise BadParam("sort", sort, f"sort must be one of {', '.join(SORTS)}")
    if sort == "-confidence" and like is None:
        raise BadParam("sort", sort, "sort -confidence needs a look-alike filter")
    limit = _int(opts.get("limit", 1000), "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParam("limit", limit, f"limit must be 1..{MAX_LIMIT}")
    after = decode_cursor(opts["page"], sort) if opts.get("page") else None
    ignore = opts.get("ignore_errors", False)
    if isinstance(ignore, str):
        if ignore.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
            raise BadParam("ignore_errors", ignore, "ignore_errors must be true or false")
        ignore = ignore.lower() in ("1", "true", "yes", "")
    return ListRequest(tuple(ids), tuple(metas), like, sort, limit, after, bool(ignore))  # type: ignore[arg-type]


def _meta_filter(key: str, op: Any, value: Any, schema: Schema, param: str) -> MetaFilter:
    kind = schema.get(key)
    p = f"meta.{key}"
    if kind is None:
        raise BadParam(p, key, f"meta key {key!r} is not in the gallery's schema")
    if op not in _META_OPS:
        raise BadParam(p, op, f"meta filters are {', '.join(_META_OPS)}")
    if kind == "strings" and op != "subset":
        raise BadParam(p, op, f"meta key {key!r} is a list of strings: use subset")
    if kind != "strings" and op == "subset":
        raise BadParam(p, op, f"subset applies to list-of-strings keys; {key!r} is {kind}")
    if op in ("oneof", "subset"):
        vals = value if isinstance(value, list) else [value]
        if not vals:
            raise BadParam(p, value, f"{op} needs at least one value")
        return MetaFilter(key, op, tuple(_meta_value(v, kind, p) for v in vals))
    return MetaFilter(key, op, _meta_value(value, kind, p))  # type: ignore[arg-type]


def _meta_value(v: Any, kind: str, param: str) -> int | str:
    if kind == "int":
        return _int(v, param)
    if not isinstance(v, str):
        raise BadParam(param, v, f"{param} takes string values")
    return v


def _like(field: str, value: Any, threshold: Any, param: str) -> LikeSpec:
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise BadParam("threshold", threshold, "threshold must be a number in 0..1") from None
    if not 0.0 <= thr <= 1.0:
        raise BadParam("threshold", threshold, "threshold must be a number in 0..1")
    if field == "detection":
        if not isinstance(value, str) or not value:
            raise BadParam(param, value, "detection look-alike needs a detection id")
        return LikeSpec("detection", detection=value.removeprefix("detection:"), threshold=thr)
    if isinstance(value, dict) and isinstance(value.get("gallery"), str):
        return LikeSpec("face", gallery=value["gallery"], face=face_id(value.get("face"), param), threshold=thr)
    if isinstance(value, str):
        spec = parse_source(value if value.startswith("face:") else f"face:{value}", param)
        return LikeSpec("face", gallery=spec.gallery, face=spec.face, threshold=thr)
    raise BadParam(param, value, 'face look-alike needs {"gallery": ..., "face": id}')


def _int(v: Any, param: str) -> int:
    if isinstance(v, bool):
        raise BadParam(param, v, f"{param} must be an integer")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise BadParam(param, v, f"{param} must be an integer") from None


def encode_cursor(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps({"s": cursor.sort, "i": cursor.last_id, "c": cursor.last_confidence}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(page: Any, sort: str) -> Cursor:
    try:
        text = str(page)
        obj = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = Cursor(obj["s"], int(obj["i"]), None if obj["c"] is None else float(obj["c"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadParam("page", page, "page is not a cursor returned as next_page") from None
    if cursor.sort != sort:
        raise BadParam("page", page, f"page was made for sort {cursor.sort}, not {sort}")
    return cursor
