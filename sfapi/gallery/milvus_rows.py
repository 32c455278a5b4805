"""Milvus rows <-> gallery records: a face checked and encoded as a row of its gallery's
collection (sfapi.gallery.milvus_expr names the fields), and a row read back as a FaceRecord.
Validation is sfapi.gallery.meta's; only Milvus' own column limits are checked here."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from sfapi.errors import BadParam
from sfapi.gallery.meta import dumps, validate_face_id, validate_facen, validate_meta
from sfapi.gallery.milvus_conn import MAX_ARRAY, MAX_VARCHAR
from sfapi.gallery.milvus_expr import FEATURES, PK, PRESENT, VECTOR, from_pk, meta_fields, to_pk
from sfapi.gallery.types import FaceRecord, Schema

#: what a row holds for a key the face lacks (never read back as a value)
_NEUTRAL: dict[str, Any] = {"int": 0, "string": "", "strings": []}


def to_row(schema: Schema, record: FaceRecord, dim: int | None) -> tuple[dict[str, Any], FaceRecord]:
    """A record checked and encoded as a Milvus row (and the normalized record)."""
    face_id = validate_face_id(record.id)
    vec = validate_facen(record.facen, dim)
    meta = validate_meta(schema, record.meta)
    for key, value in meta.items():
        check_limits(key, value)
    try:
        features_json = dumps(record.features or {})
    except (TypeError, ValueError) as exc:
        raise BadParam("features", type(record.features).__name__, f"features must be JSON: {exc}") from None
    if len(features_json.encode()) > MAX_VARCHAR:
        raise BadParam("features", f"{len(features_json)} characters", f"features JSON is at most {MAX_VARCHAR} bytes")
    row: dict[str, Any] = {PK: to_pk(face_id), VECTOR: vec.tolist(), FEATURES: features_json}
    row.update(meta_columns(schema, meta))
    return row, FaceRecord(face_id, vec, meta, json.loads(features_json), record.model)


def check_limits(key: str, value: Any) -> None:
    """Milvus column limits: strings of at most MAX_VARCHAR bytes, lists of at most MAX_ARRAY."""
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > MAX_ARRAY:
        raise BadParam(f"meta.{key}", f"{len(value)} values", f"the Milvus backend keeps at most {MAX_ARRAY} values")
    for v in values:
        if isinstance(v, str) and len(v.encode()) > MAX_VARCHAR:
            raise BadParam(f"meta.{key}", v, f"the Milvus backend keeps strings of at most {MAX_VARCHAR} bytes")


def meta_columns(schema: Schema, meta: dict[str, Any]) -> dict[str, Any]:
    """The meta fields of a row holding ``meta`` (validated): every typed field (the neutral value
    for a missing key) and the presence list."""
    fields = meta_fields(schema)
    out: dict[str, Any] = {fld: meta.get(key, _NEUTRAL[schema[key]]) for key, fld in fields.items()}
    if fields:
        out[PRESENT] = [i for i, key in enumerate(fields) if key in meta]
    return out


def meta_of(schema: Schema, row: dict[str, Any]) -> dict[str, Any]:
    """The meta of a row: the keys in its presence list and their values."""
    keys = list(meta_fields(schema).items())
    out: dict[str, Any] = {}
    for i in sorted(int(i) for i in row.get(PRESENT) or ()):
        key, fld = keys[i]
        value = row[fld]
        out[key] = list(value) if schema[key] == "strings" else value
    return out


def row_fields(schema: Schema) -> list[str]:
    """Every field of a face row (what a read asks for)."""
    fields = meta_fields(schema)
    return [PK, VECTOR, FEATURES, *fields.values(), *([PRESENT] if fields else [])]


def to_record(schema: Schema, model: str | None, row: dict[str, Any]) -> FaceRecord:
    """A row read with every field, as a record of a gallery of ``model``."""
    vec = np.asarray(row[VECTOR], np.float32)
    return FaceRecord(from_pk(row[PK]), vec, meta_of(schema, row), json.loads(row[FEATURES]), model or "")
