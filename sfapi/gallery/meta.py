"""Validation of gallery names, meta schemas, face meta and search filters against a schema.

Everything here is pure Python on small inputs and raises :class:`sfapi.errors.BadParam` naming the
offending parameter (``name``, ``schema``, ``meta.<key>``, ``facen``, ``limit``, ``sort``, ``page``).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from sfapi.errors import BadParam
from sfapi.gallery.types import (
    MAX_LIMIT,
    UINT64_MAX,
    IdFilter,
    MetaFilter,
    MetaValue,
    Query,
    Schema,
)

#: A gallery name: 1-64 of ``A-Z a-z 0-9 _ . -``, not starting with a dot (so never ``.`` or ``..``).
NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_META_TYPES = ("int", "string", "strings")
_SORTS = ("id", "-id", "-confidence")
#: meta ints are stored as SQLite / numpy int64
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def validate_name(name: str, param: str = "name") -> str:
    """A gallery name: 1-64 characters of ``[A-Za-z0-9_.-]``, not starting with a dot."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadParam(param, name, "a gallery name is 1-64 characters of A-Z a-z 0-9 _ . - "
                                    "and does not start with a dot")
    return name


def validate_schema(schema: Schema) -> Schema:
    """Check a meta schema (field name -> ``int`` | ``string`` | ``strings``); returns a copy."""
    if not isinstance(schema, dict):
        raise BadParam("schema", schema, "the meta schema is a mapping of field name to type")
    out: Schema = {}
    for key, kind in schema.items():
        if not isinstance(key, str) or not key:
            raise BadParam("schema", key, "meta field names are non-empty strings")
        if kind not in _META_TYPES:
            raise BadParam(f"schema.{key}", kind, f"meta type must be one of {', '.join(_META_TYPES)}")
        out[key] = kind
    return out


def validate_face_id(face_id: Any, param: str = "id") -> int:
    """Face ids are unsigned 64-bit integers."""
    if isinstance(face_id, bool) or not isinstance(face_id, (int, np.integer)):
        raise BadParam(param, face_id, "a face id is an unsigned 64-bit integer")
    value = int(face_id)
    if not 0 <= value <= UINT64_MAX:
        raise BadParam(param, value, "a face id is an unsigned 64-bit integer")
    return value


def check_meta_value(schema: Schema, key: str, value: Any) -> MetaValue:
    """One meta value checked against its declared type; returns the normalized value."""
    param = f"meta.{key}"
    kind = schema.get(key)
    if kind is None:
        raise BadParam(param, value, f"meta field {key!r} is not in the gallery's schema")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BadParam(param, value, f"meta field {key!r} is an int")
        value = int(value)
        if not _INT_MIN <= value <= _INT_MAX:
            raise BadParam(param, value, f"meta field {key!r} is a 64-bit signed int")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise BadParam(param, value, f"meta field {key!r} is a string")
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadParam(param, value, f"meta field {key!r} is a list of strings")
    return list(value)


def validate_meta(schema: Schema, meta: dict[str, Any] | None, *, allow_none: bool = False) -> dict[str, Any]:
    """A face's meta checked against ``schema``; with ``allow_none`` a None value is kept as None
    (update_meta: leave that key as it is)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise BadParam("meta", meta, "meta is a mapping of field name to value")
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if value is None and allow_none:
            if key not in schema:
                raise BadParam(f"meta.{key}", value, f"meta field {key!r} is not in the gallery's schema")
            out[key] = None
            continue
        out[key] = check_meta_value(schema, key, value)
    return out


def validate_facen(facen: Any, dim: int | None) -> np.ndarray:
    """A facen as a contiguous float32 vector of the gallery's dimension (any when ``dim`` is None)."""
    try:
        vec = np.ascontiguousarray(facen, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadParam("facen", type(facen).__name__, "a facen is a vector of floats") from None
    if vec.ndim != 1 or vec.size == 0:
        raise BadParam("facen", f"shape {vec.shape}", "a facen is a non-empty 1-d vector")
    if dim is not None and vec.size != dim:
        raise BadParam("facen", f"shape {vec.shape}", f"expected a facen of dimension {dim}, got {vec.size}")
    if not np.isfinite(vec).all():
        raise BadParam("facen", "non-finite", "a facen has only finite values")
    return vec


def check_filter(schema: Schema, flt: MetaFilter) -> None:
    """A meta filter on a known field, of an operation and value type that the field supports."""
    param = f"meta.{flt.field}"
    kind = schema.get(flt.field)
    if kind is None:
        raise BadParam(param, flt.field, f"meta field {flt.field!r} is not in the gallery's schema")
    allowed = {"int": ("lte", "gte", "oneof"), "string": ("lte", "gte", "oneof"), "strings": ("subset",)}[kind]
    if flt.op not in allowed:
        raise BadParam(param, flt.op, f"filter {flt.op!r} does not apply to {kind} field {flt.field!r}")
    values = flt.value if isinstance(flt.value, (tuple, list)) else (flt.value,)
    if flt.op in ("lte", "gte") and isinstance(flt.value, (tuple, list)):
        raise BadParam(param, flt.value, f"filter {flt.op!r} takes one value")
    want: tuple[type, ...] = (int, np.integer) if kind == "int" else (str,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, want):
            raise BadParam(param, v, f"filter {flt.op!r} on {kind} field {flt.field!r} takes "
                           f"{'ints' if kind == 'int' else 'strings'}")


def check_id_filter(flt: IdFilter) -> None:
    if flt.op not in ("lte", "gte", "oneof"):
        raise BadParam("id", flt.op, f"unknown id filter {flt.op!r}")
    if flt.op == "oneof":
        values = flt.value if isinstance(flt.value, (tuple, list)) else (flt.value,)
        for v in values:
            validate_face_id(v, "id")
    else:
        if isinstance(flt.value, (tuple, list)):
            raise BadParam("id", flt.value, f"filter {flt.op!r} takes one value")
        validate_face_id(flt.value, "id")


def check_query(schema: Schema, query: Query) -> None:
    """Everything about a query that can be checked without the data."""
    for idf in query.ids:
        check_id_filter(idf)
    for mf in query.meta:
        check_filter(schema, mf)
    if isinstance(query.limit, bool) or not isinstance(query.limit, int) or not 1 <= query.limit <= MAX_LIMIT:
        raise BadParam("limit", query.limit, f"limit is an integer in 1..{MAX_LIMIT}")
    if query.sort not in _SORTS:
        raise BadParam("sort", query.sort, f"sort is one of {', '.join(_SORTS)}")
    if query.sort == "-confidence" and query.like is None:
        raise BadParam("sort", query.sort, "sorting by confidence needs a look-alike filter")
    if query.like is not None:
        thr = query.like.threshold
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr) or not 0 <= thr <= 1:
            raise BadParam("threshold", thr, "a look-alike threshold is a number in 0..1")
    cur = query.after
    if cur is not None:
        if cur.sort != query.sort:
            raise BadParam("page", cur.sort, f"the page cursor belongs to sort {cur.sort!r}, not {query.sort!r}")
        validate_face_id(cur.last_id, "page")
        if cur.sort == "-confidence" and (cur.last_confidence is None or not math.isfinite(cur.last_confidence)):
            raise BadParam("page", cur.last_confidence, "a confidence cursor carries the last confidence")


def dumps(obj: Any) -> str:
    """Compact JSON used for meta and features in the store of record."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
