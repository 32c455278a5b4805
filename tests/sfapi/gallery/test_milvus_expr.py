"""Translation of gallery filters into Milvus filter expressions (no Milvus needed)."""
from __future__ import annotations

from typing import Any

import pytest

from sfapi.gallery.milvus_expr import (
    NOTHING,
    compare_int,
    conjunction,
    filter_expr,
    from_pk,
    id_clause,
    int_in,
    meta_clause,
    meta_fields,
    pk_after,
    pk_upto,
    quote,
    to_pk,
)
from sfapi.gallery.types import UINT64_MAX, Cursor, IdFilter, MetaFilter

SCHEMA = {"age": "int", "camera": "string", "tags": "strings", "a key with spaces/ü": "int"}
MIN1 = -(2**63) + 1  # the smallest literal ever written


@pytest.mark.parametrize("face_id,pk", [
    (0, "0000000000000000"), (2**63, "8000000000000000"), (UINT64_MAX, "ffffffffffffffff"), (2**63 - 1, "7fffffffffffffff"),
    (12, "000000000000000c"),
])
def test_pk_mapping_preserves_order(face_id: int, pk: str) -> None:
    assert to_pk(face_id) == pk and from_pk(pk) == face_id


def test_pk_string_order_is_id_order() -> None:
    ids = [0, 1, 9, 10, 255, 256, 2**63 - 1, 2**63, UINT64_MAX - 1, UINT64_MAX]
    assert sorted(ids, key=to_pk) == ids


def test_meta_fields_are_identifiers_in_sorted_key_order() -> None:
    assert meta_fields(SCHEMA) == {"a key with spaces/ü": "m0", "age": "m1", "camera": "m2", "tags": "m3"}


@pytest.mark.parametrize("text,literal", [
    ("cam-a", '"cam-a"'), ("", '""'), ('say "hi"', r'"say \"hi\""'), ("back\\slash", r'"back\\slash"'),
    ("it's", '"it\'s"'), ("tab\tnl\ncr\r", r'"tab\tnl\ncr\r"'), ("ünï", '"ünï"'),
])
def test_quote(text: str, literal: str) -> None:
    assert quote(text) == literal


@pytest.mark.parametrize("op,value,present,want", [
    ("lte", 5, "p", "f <= 5"), ("gte", -3, "p", "f >= -3"), ("lt", 0, None, "f < 0"), ("gt", 9, None, "f > 9"),
    ("gte", -(2**63), "p", "p"), ("gte", -(2**63), None, None),
    ("lte", -(2**63), "p", f"f < {MIN1}"), ("eq", -(2**63), None, f"f < {MIN1}"),
    ("gt", -(2**63), None, f"f >= {MIN1}"), ("lt", -(2**63), None, NOTHING),
    ("lte", 2**63 - 1, "p", f"f <= {2**63 - 1}"),
])
def test_compare_int(op: str, value: int, present: Any, want: Any) -> None:
    assert compare_int("f", op, value, present=present) == want


@pytest.mark.parametrize("values,want", [
    ([3, 1, 3], "f in [1, 3]"), ([], NOTHING), ([-(2**63)], f"f < {MIN1}"),
    ([5, -(2**63)], f"(f in [5] or f < {MIN1})"),
])
def test_int_in(values: list[int], want: Any) -> None:
    assert int_in("f", values) == want


@pytest.mark.parametrize("flt,want", [
    (IdFilter("lte", 150), 'pk <= "0000000000000096"'),
    (IdFilter("gte", 2**63), 'pk >= "8000000000000000"'),
    (IdFilter("lte", UINT64_MAX), 'pk <= "ffffffffffffffff"'),
    (IdFilter("oneof", (3, 0, 3)), 'pk in ["0000000000000000", "0000000000000003"]'),
    (IdFilter("oneof", ()), NOTHING),
    (IdFilter("oneof", 7), 'pk in ["0000000000000007"]'),
])
def test_id_clause(flt: IdFilter, want: Any) -> None:
    assert id_clause(flt) == want


# SCHEMA keys in sorted order: "a key with spaces/ü" (0), "age" (1), "camera" (2), "tags" (3)
@pytest.mark.parametrize("flt,want", [
    (MetaFilter("age", "lte", 30), "(array_contains(mp, 1)) and (m1 <= 30)"),
    (MetaFilter("age", "gte", -(2**63)), "array_contains(mp, 1)"),
    (MetaFilter("age", "lte", -(2**63)), f"(array_contains(mp, 1)) and (m1 < {MIN1})"),
    (MetaFilter("age", "oneof", (50, 1, 2)), "(array_contains(mp, 1)) and (m1 in [1, 2, 50])"),
    (MetaFilter("age", "oneof", ()), NOTHING),
    (MetaFilter("a key with spaces/ü", "gte", 1), "(array_contains(mp, 0)) and (m0 >= 1)"),
    (MetaFilter("camera", "oneof", ("cam-b", "cam-a", "cam-b")), '(array_contains(mp, 2)) and (m2 in ["cam-a", "cam-b"])'),
    (MetaFilter("camera", "oneof", ()), NOTHING),
    (MetaFilter("camera", "lte", "cam-b"), '(array_contains(mp, 2)) and (m2 <= "cam-b")'),
    (MetaFilter("camera", "gte", 'x"y'), r'(array_contains(mp, 2)) and (m2 >= "x\"y")'),
    (MetaFilter("tags", "subset", ("red",)), 'array_contains_all(m3, ["red"])'),
    (MetaFilter("tags", "subset", ("red", "male", "red")), 'array_contains_all(m3, ["male", "red"])'),
    (MetaFilter("tags", "subset", ()), None),
])
def test_meta_clause(flt: MetaFilter, want: Any) -> None:
    assert meta_clause(SCHEMA, flt) == want


@pytest.mark.parametrize("cursor,want", [
    (None, None),
    (Cursor("id", 10), 'pk > "000000000000000a"'),
    (Cursor("-id", 10), 'pk < "000000000000000a"'),
    (Cursor("-confidence", 10, 0.5), None),
])
def test_pk_after(cursor: Cursor | None, want: Any) -> None:
    assert pk_after(cursor) == want


def test_pk_upto() -> None:
    assert pk_upto("00000000000000ff", descending=False) == 'pk <= "00000000000000ff"'
    assert pk_upto("00000000000000ff", descending=True) == 'pk >= "00000000000000ff"'


@pytest.mark.parametrize("clauses,want", [
    ([], None), ([None, None], None), (["a"], "a"), (["a", None, "b or c"], "(a) and (b or c)"),
    (["a", NOTHING, "b"], NOTHING),
])
def test_conjunction(clauses: list[Any], want: Any) -> None:
    assert conjunction(clauses) == want


@pytest.mark.parametrize("ids,meta,want", [
    ((), (), None),
    ((IdFilter("gte", 50), IdFilter("lte", 60)), (), '(pk >= "0000000000000032") and (pk <= "000000000000003c")'),
    ((IdFilter("lte", 200),), (MetaFilter("tags", "subset", ("blue",)), MetaFilter("age", "gte", 20)),
     '(pk <= "00000000000000c8") and (array_contains_all(m3, ["blue"])) and ((array_contains(mp, 1)) and (m1 >= 20))'),
    ((), (MetaFilter("tags", "subset", ()),), None),
    ((IdFilter("oneof", ()),), (MetaFilter("age", "gte", 20),), NOTHING),
])
def test_filter_expr(ids: tuple[IdFilter, ...], meta: tuple[MetaFilter, ...], want: Any) -> None:
    assert filter_expr(SCHEMA, ids, meta) == want


def test_no_literal_is_int64_min() -> None:
    """The Milvus parser cannot read -9223372036854775808: it is never written."""
    texts = [meta_clause(SCHEMA, MetaFilter("age", op, -(2**63))) for op in ("lte", "gte")]
    texts += [meta_clause(SCHEMA, MetaFilter("age", "oneof", (-(2**63),)))]
    assert all(str(-(2**63)) not in str(t) for t in texts)
