"""Translation of gallery filters and cursors into Milvus boolean filter expressions.

The Milvus backend (sfapi.gallery.milvus) keeps one collection per gallery with these fields:

* ``pk`` INT64 primary key: the face id shifted by ``-2**63`` (:func:`to_pk`), so the signed
  order of Milvus equals the unsigned order of face ids (the embedded store does the same in SQLite);
* ``m0``, ``m1``, ... one typed, nullable field per meta key of the gallery's schema in sorted key
  order (:func:`meta_fields`): ``int`` -> INT64, ``string`` -> VARCHAR, ``strings`` -> ARRAY of
  VARCHAR. A face without a key holds NULL there, and Milvus comparisons with NULL are false, so a
  face lacking a key never matches a filter on it, as in the embedded store. ``subset`` of no
  values matches every face and is left out of the expression.

Every function here is pure: it returns expression text, ``None`` for "no condition" or
:data:`NOTHING` for "matches no face" (the store answers those searches without asking Milvus).
Values are written as literals: strings double-quoted with the escapes both the Milvus server
grammar and milvus-lite read (``\\\\ \\" \\n \\r \\t``); the integer -2**63 is never written as a
literal (the Milvus parser reads ``-9223372036854775808`` as the negation of an out-of-range
positive number), comparisons against it are rewritten instead.
"""
from __future__ import annotations

from typing import Iterable, Sequence, Union

from sfapi.gallery.types import Cursor, IdFilter, MetaFilter, Schema

PK = "pk"
VECTOR = "facen"
FEATURES = "features"
ID_OFFSET = 2**63
INT64_MIN = -(2**63)


class _Nothing:
    """The expression that no face matches."""

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING = _Nothing()
#: expression text, None (no condition) or NOTHING (no face matches)
Expr = Union[str, None, _Nothing]

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_OPS = {"lte": "<=", "gte": ">=", "lt": "<", "gt": ">", "eq": "=="}


def to_pk(face_id: int) -> int:
    """The Milvus primary key of an unsigned 64-bit face id (order-preserving)."""
    return int(face_id) - ID_OFFSET


def from_pk(pk: int) -> int:
    return int(pk) + ID_OFFSET


def meta_fields(schema: Schema) -> dict[str, str]:
    """Milvus field name of every meta key: ``m0``, ``m1``, ... in sorted key order (meta keys may
    be any non-empty string; Milvus field names are identifiers)."""
    return {key: f"m{i}" for i, key in enumerate(sorted(schema))}


def quote(text: str) -> str:
    """A double-quoted Milvus string literal."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def _int_list(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def compare_int(field: str, op: str, value: int, *, nullable: bool) -> Expr:
    """``field <op> value`` for an INT64 field (``op``: lte, gte, lt, gt, eq), never writing the
    literal -2**63. ``nullable``: a true comparison still excludes NULL."""
    value = int(value)
    if value == INT64_MIN:
        if op in ("gte",):
            return f"{field} is not null" if nullable else None
        if op == "lt":
            return NOTHING
        if op == "gt":
            return f"{field} >= {INT64_MIN + 1}"
        return f"{field} < {INT64_MIN + 1}"  # lte, eq: only -2**63 itself
    return f"{field} {_OPS[op]} {value}"


def int_in(field: str, values: Sequence[int]) -> Expr:
    """``field in [...]`` for INT64 values (an empty set matches nothing)."""
    wanted = sorted({int(v) for v in values})
    if not wanted:
        return NOTHING
    rest = [v for v in wanted if v != INT64_MIN]
    parts = []
    if rest:
        parts.append(f"{field} in {_int_list(rest)}")
    if len(rest) != len(wanted):
        parts.append(f"{field} < {INT64_MIN + 1}")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def id_clause(flt: IdFilter) -> Expr:
    """An id filter (values already validated as unsigned 64-bit) on the primary key."""
    if flt.op == "oneof":
        values = flt.value if isinstance(flt.value, (tuple, list)) else (flt.value,)
        return int_in(PK, [to_pk(v) for v in values])
    return compare_int(PK, flt.op, to_pk(int(flt.value)), nullable=False)  # type: ignore[arg-type]


def meta_clause(schema: Schema, flt: MetaFilter) -> Expr:
    """A meta filter (already checked against the schema by sfapi.gallery.meta.check_filter)."""
    field = meta_fields(schema)[flt.field]
    kind = schema[flt.field]
    values = list(flt.value) if isinstance(flt.value, (tuple, list)) else [flt.value]
    if kind == "int":
        if flt.op == "oneof":
            return int_in(field, values)  # type: ignore[arg-type]
        return compare_int(field, flt.op, values[0], nullable=True)  # type: ignore[arg-type]
    if kind == "string":
        if flt.op == "oneof":
            wanted = sorted(set(values))  # type: ignore[type-var]
            if not wanted:
                return NOTHING
            return f"{field} in [" + ", ".join(quote(str(v)) for v in wanted) + "]"
        return f"{field} {_OPS[flt.op]} {quote(str(values[0]))}"
    # strings: subset = the face's list holds every value; no values = every face
    wanted = sorted(set(values))  # type: ignore[type-var]
    if not wanted:
        return None
    return f"array_contains_all({field}, [" + ", ".join(quote(str(v)) for v in wanted) + "])"


def pk_after(cursor: Cursor | None) -> Expr:
    """Faces strictly after an id-ordered cursor (``id``: larger ids, ``-id``: smaller ids);
    None for no cursor or a confidence cursor (applied on the scores)."""
    if cursor is None or cursor.sort == "-confidence":
        return None
    op = "gt" if cursor.sort == "id" else "lt"
    return compare_int(PK, op, to_pk(cursor.last_id), nullable=False)


def pk_upto(pk: int, *, descending: bool) -> Expr:
    """The key window ``pk <= pk`` (ascending pages) or ``pk >= pk`` (descending pages)."""
    return compare_int(PK, "gte" if descending else "lte", pk, nullable=False)


def conjunction(clauses: Iterable[Expr]) -> Expr:
    """AND of clauses: None when there is none, NOTHING when any matches nothing."""
    parts: list[str] = []
    for clause in clauses:
        if clause is NOTHING:
            return NOTHING
        if clause is not None:
            parts.append(clause)  # type: ignore[arg-type]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


def filter_expr(schema: Schema, ids: Sequence[IdFilter], meta: Sequence[MetaFilter]) -> Expr:
    """The expression of a query's id and meta filters."""
    return conjunction([id_clause(f) for f in ids] + [meta_clause(schema, f) for f in meta])
