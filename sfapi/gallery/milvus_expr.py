"""Translation of gallery filters and cursors into Milvus boolean filter expressions.

The Milvus backend (sfapi.gallery.milvus) keeps one collection per gallery with these fields
(:data:`LAYOUT`; no field is nullable, as Milvus servers before 2.5 have no nullable fields):

* ``pk`` VARCHAR primary key: the face id as 16 lower-case hex digits (:func:`to_pk`), so string
  order equals the unsigned order of face ids. (An INT64 key cannot hold every unsigned 64-bit id:
  Milvus 2.3 queries never return the row keyed 2**63-1, and its parser cannot read -2**63.)
* ``m0``, ``m1``, ... one typed field per meta key of the gallery's schema in sorted key order
  (:func:`meta_fields`): ``int`` -> INT64, ``string`` -> VARCHAR, ``strings`` -> ARRAY of VARCHAR.
  A face lacking a key holds a neutral value there (0, ``""``, ``[]``);
* ``mp`` (:data:`PRESENT`, ARRAY of INT64; only when the schema has keys): the indexes of the keys
  the face has. A comparison on key ``i`` is written ``array_contains(mp, i) and (...)``, so a face
  lacking a key never matches a filter on it, as in the embedded store. A ``subset`` filter needs
  no presence test (the neutral ``[]`` holds no value); ``subset`` of no values matches every face
  and is left out of the expression.

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
PRESENT = "mp"
#: the collection layout written into every gallery's catalog row (galleries of earlier sfapi
#: versions, with INT64 keys and nullable meta fields, have none and are refused)
LAYOUT = 2
#: characters of a key
PK_LEN = 16
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


def to_pk(face_id: int) -> str:
    """The Milvus primary key of an unsigned 64-bit face id (order-preserving)."""
    return f"{int(face_id):016x}"


def from_pk(pk: str) -> int:
    return int(pk, 16)


def meta_fields(schema: Schema) -> dict[str, str]:
    """Milvus field name of every meta key: ``m0``, ``m1``, ... in sorted key order (meta keys may
    be any non-empty string; Milvus field names are identifiers)."""
    return {key: f"m{i}" for i, key in enumerate(sorted(schema))}


def presence(schema: Schema, key: str) -> str:
    """The condition "the face has meta key ``key``"."""
    return f"array_contains({PRESENT}, {sorted(schema).index(key)})"


def quote(text: str) -> str:
    """A double-quoted Milvus string literal."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def _str_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(quote(v) for v in values) + "]"


def compare_int(field: str, op: str, value: int, *, present: Expr = None) -> Expr:
    """``field <op> value`` for an INT64 field (``op``: lte, gte, lt, gt, eq), never writing the
    literal -2**63. ``present``: the answer of ``>= -2**63`` (None: every face)."""
    value = int(value)
    if value == INT64_MIN:
        if op == "gte":
            return present
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
        parts.append(f"{field} in [" + ", ".join(str(v) for v in rest) + "]")
    if len(rest) != len(wanted):
        parts.append(f"{field} < {INT64_MIN + 1}")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def pk_in(face_ids: Iterable[int]) -> Expr:
    """Faces with these ids (none: NOTHING)."""
    wanted = sorted({to_pk(v) for v in face_ids})
    return f"{PK} in {_str_list(wanted)}" if wanted else NOTHING


def id_clause(flt: IdFilter) -> Expr:
    """An id filter (values already validated as unsigned 64-bit) on the primary key."""
    if flt.op == "oneof":
        values = flt.value if isinstance(flt.value, (tuple, list)) else (flt.value,)
        return pk_in(int(v) for v in values)
    return f"{PK} {_OPS[flt.op]} {quote(to_pk(int(flt.value)))}"  # type: ignore[arg-type]


def meta_clause(schema: Schema, flt: MetaFilter) -> Expr:
    """A meta filter (already checked against the schema by sfapi.gallery.meta.check_filter)."""
    field = meta_fields(schema)[flt.field]
    kind = schema[flt.field]
    values = list(flt.value) if isinstance(flt.value, (tuple, list)) else [flt.value]
    present = presence(schema, flt.field)
    clause: Expr
    if kind == "strings":  # subset: the face's list holds every value; no values: every face
        wanted = sorted(set(values))  # type: ignore[type-var]
        return f"array_contains_all({field}, {_str_list(wanted)})" if wanted else None  # type: ignore[arg-type]
    if kind == "int":
        if flt.op == "oneof":
            clause = int_in(field, values)  # type: ignore[arg-type]
        else:
            clause = compare_int(field, flt.op, values[0], present=present)  # type: ignore[arg-type]
            if clause == present:
                return clause
    elif flt.op == "oneof":
        wanted = sorted(set(values))  # type: ignore[type-var]
        clause = f"{field} in {_str_list(wanted)}" if wanted else NOTHING  # type: ignore[arg-type]
    else:
        clause = f"{field} {_OPS[flt.op]} {quote(str(values[0]))}"
    return conjunction([present, clause])


def pk_after(cursor: Cursor | None) -> Expr:
    """Faces strictly after an id-ordered cursor (``id``: larger ids, ``-id``: smaller ids);
    None for no cursor or a confidence cursor (applied on the scores)."""
    if cursor is None or cursor.sort == "-confidence":
        return None
    return f"{PK} {'>' if cursor.sort == 'id' else '<'} {quote(to_pk(cursor.last_id))}"


def pk_upto(pk: str, *, descending: bool) -> Expr:
    """The key window ``pk <= pk`` (ascending pages) or ``pk >= pk`` (descending pages)."""
    return f"{PK} {'>=' if descending else '<='} {quote(pk)}"


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
