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
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from multidict import MultiMapping

from facestack.core import safejson
from facestack.vision.engines.similarity import DEFAULT_THRESHOLD
from sfapi.errors import BadParam, MalformedRequest
from sfapi.gallery.meta import validate_name
from sfapi.gallery.types import MAX_LIMIT, UINT64_MAX, Cursor, IdFilter, MetaFilter, Schema, Sort

SORTS: tuple[str, ...] = ("id", "-id", "-confidence")
_ID_OPS = ("lte", "gte", "oneof")
_META_OPS = ("lte", "gte", "oneof", "subset")
_QS_FIXED = {"sort", "limit", "page", "ignore_errors", "looks_like", "threshold"}
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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


def face_id(raw: Any, param: str = "id", text_ok: bool = True) -> int:
    """An unsigned 64-bit face id: a JSON integer, or (``text_ok``: path, query) ASCII digits."""
    value: int | None = None
    if type(raw) is int:
        value = raw
    elif text_ok and isinstance(raw, str) and _UINT.fullmatch(raw):
        value = int(raw)
    if value is None or not 0 <= value <= UINT64_MAX:
        raise BadParam(param, raw, f"{param} must be an unsigned 64-bit integer (0..{UINT64_MAX})")
    return value


def parse_source(raw: Any, param: str = "from") -> LikeSpec:
    """``detection:<id>`` or ``face:<gallery>/<id>`` (also used by looks_like)."""
    if isinstance(raw, str) and raw.startswith("detection:") and len(raw) > len("detection:"):
        return LikeSpec("detection", detection=raw[len("detection:"):])
    if isinstance(raw, str) and raw.startswith("face:") and "/" in raw:
        gallery, _, fid = raw[len("face:"):].rpartition("/")
        if gallery:
            validate_name(gallery, param)
            return LikeSpec("face", gallery=gallery, face=face_id(fid, param))
    raise BadParam(param, raw, f'{param} must be "detection:<id>" or "face:<gallery>/<id>"')


def specs_from_query(q: MultiMapping[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Filter specs and the other options from a query string."""
    specs: list[dict[str, Any]] = []
    for key in sorted(set(q.keys())):
        values = q.getall(key)
        if len(values) > 1 and not key.endswith((".oneof", ".subset")):
            raise BadParam(key, values[-1], f"query parameter {key!r} given {len(values)} times; give it once")
        if key in _QS_FIXED:
            continue
        parts = key.split(".")
        if parts[0] == "id" and len(parts) == 2 and parts[1] in _ID_OPS:
            if parts[1] == "oneof":
                items = [v for raw in values for v in raw.split(",") if v != ""]
                specs.append({"field": "id", "op": "oneof", "value": items, "_param": key, "_text": True})
            else:
                specs.append({"field": "id", "op": parts[1], "value": values[0], "_param": key, "_text": True})
        elif parts[0] == "meta" and len(parts) >= 3 and parts[-1] in _META_OPS:
            field = ".".join(parts[1:-1])
            op = parts[-1]
            if op in ("oneof", "subset"):
                specs.append({"field": f"meta.{field}", "op": op, "value": list(values), "_param": key, "_text": True})
            else:
                specs.append({"field": f"meta.{field}", "op": op, "value": values[0], "_param": key, "_text": True})
        else:
            raise BadParam(key, q.get(key), f"unknown query parameter {key!r}")
    if "looks_like" in q:
        like = parse_source(q["looks_like"], "looks_like")
        spec: dict[str, Any] = {"field": like.kind, "op": "looks_like", "_param": "looks_like", "_text": True,
                                "value": like.detection if like.kind == "detection"
                                else {"gallery": like.gallery, "face": like.face}}
        if "threshold" in q:
            spec["threshold"] = q["threshold"]
        specs.append(spec)
    elif "threshold" in q:
        raise BadParam("threshold", q["threshold"], "threshold needs looks_like")
    opts: dict[str, Any] = {k: q[k] for k in ("sort", "limit", "page", "ignore_errors") if k in q}
    opts["_text"] = True
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
        text = bool(spec.get("_text"))
        unknown = set(spec) - {"field", "op", "value", "threshold", "_param", "_text"}
        if unknown:
            key = sorted(unknown)[0]
            raise BadParam(param, key, f"unknown key {key!r} in a filter; expected field, op, value, threshold")
        field, op, value = spec.get("field"), spec.get("op"), spec.get("value")
        if not isinstance(op, str):
            raise BadParam(param, op, "a filter's op is a string")
        if field == "id":
            if op not in _ID_OPS:
                raise BadParam(param, op, f"id filters are {', '.join(_ID_OPS)}")
            if op == "oneof":
                vals = value if isinstance(value, list) else [value]
                if not vals:
                    raise BadParam(param, value, "oneof needs at least one id")
                ids.append(IdFilter("oneof", tuple(face_id(v, param, text) for v in vals)))
            else:
                ids.append(IdFilter(op, face_id(value, param, text)))  # type: ignore[arg-type]
        elif isinstance(field, str) and field.startswith("meta."):
            metas.append(_meta_filter(field[5:], op, value, schema, param, text))
        elif field in ("detection", "face") and op == "looks_like":
            if like is not None:
                raise BadParam(param, field, "only one look-alike filter per request")
            like = _like(field, value, spec.get("threshold", DEFAULT_THRESHOLD), param, text)
        else:
            raise BadParam(param, field, f"unknown filter field {field!r} (id, meta.<key>, detection, face)")
    text = bool(opts.get("_text"))
    sort = opts.get("sort") or ("-confidence" if like is not None else "id")
    if not isinstance(sort, str) or sort not in SORTS:
        raise BadParam("sort", sort, f"sort must be one of {', '.join(SORTS)}")
    if sort == "-confidence" and like is None:
        raise BadParam("sort", sort, "sort -confidence needs a look-alike filter")
    limit = _int(opts.get("limit", 1000), "limit", text)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParam("limit", limit, f"limit must be 1..{MAX_LIMIT}")
    if "page" in opts and not isinstance(opts["page"], str):
        raise BadParam("page", opts["page"], "page is a string (a next_page cursor)")
    after = decode_cursor(opts["page"], sort) if opts.get("page") else None
    ignore = opts.get("ignore_errors", False)
    if not text and not isinstance(ignore, bool):
        raise BadParam("ignore_errors", ignore, "ignore_errors must be true or false")
    if isinstance(ignore, str):
        if ignore.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
            raise BadParam("ignore_errors", ignore, "ignore_errors must be true or false")
        ignore = ignore.lower() in ("1", "true", "yes", "")
    return ListRequest(tuple(ids), tuple(metas), like, sort, limit, after, bool(ignore))  # type: ignore[arg-type]


def _meta_filter(key: str, op: Any, value: Any, schema: Schema, param: str, text: bool) -> MetaFilter:
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
        return MetaFilter(key, op, tuple(_meta_value(v, kind, p, text) for v in vals))
    return MetaFilter(key, op, _meta_value(value, kind, p, text))  # type: ignore[arg-type]


def _meta_value(v: Any, kind: str, param: str, text: bool) -> int | str:
    if kind == "int":
        value = _int(v, param, text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise BadParam(param, v, f"{param} is a 64-bit signed integer")
        return value
    if not isinstance(v, str):
        raise BadParam(param, v, f"{param} takes string values")
    return v


def _like(field: str, value: Any, threshold: Any, param: str, text: bool) -> LikeSpec:
    if type(threshold) in (int, float):
        thr = float(threshold)
    elif text and isinstance(threshold, str) and _NUMBER.fullmatch(threshold):
        thr = float(threshold)
    else:
        raise BadParam("threshold", threshold, "threshold must be a number in 0..1")
    if not math.isfinite(thr) or not 0.0 <= thr <= 1.0:
        raise BadParam("threshold", threshold, "threshold must be a number in 0..1")
    if field == "detection":
        if not isinstance(value, str) or not value:
            raise BadParam(param, value, "detection look-alike needs a detection id")
        return LikeSpec("detection", detection=value.removeprefix("detection:"), threshold=thr)
    if isinstance(value, dict) and isinstance(value.get("gallery"), str) and set(value) <= {"gallery", "face"}:
        gallery = validate_name(value["gallery"], param)
        return LikeSpec("face", gallery=gallery, face=face_id(value.get("face"), param, text), threshold=thr)
    if isinstance(value, str):
        spec = parse_source(value if value.startswith("face:") else f"face:{value}", param)
        return LikeSpec("face", gallery=spec.gallery, face=spec.face, threshold=thr)
    raise BadParam(param, value, 'face look-alike needs {"gallery": ..., "face": id}')


def _int(v: Any, param: str, text: bool) -> int:
    """A JSON integer, or (``text``: query strings) an ASCII-digit integer; nothing else."""
    if type(v) is int:
        return v
    if text and isinstance(v, str) and _INT.fullmatch(v):
        return int(v)
    raise BadParam(param, v, f"{param} must be an integer")


def encode_cursor(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps({"s": cursor.sort, "i": cursor.last_id, "c": cursor.last_confidence}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(page: Any, sort: str) -> Cursor:
    try:
        text = str(page)
        obj = safejson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), max_bytes=4096)
        sort_, last, conf = obj["s"], obj["i"], obj["c"]
        if sort_ not in SORTS or type(last) is not int or not 0 <= last <= UINT64_MAX \
                or not (conf is None or type(conf) in (int, float)):
            raise ValueError("not a cursor")
        cursor = Cursor(sort_, last, None if conf is None else float(conf))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadParam("page", page, "page is not a cursor returned as next_page") from None
    if cursor.sort != sort:
        raise BadParam("page", page, f"page was made for sort {cursor.sort}, not {sort}")
    return cursor
