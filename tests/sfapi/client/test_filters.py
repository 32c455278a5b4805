"""Serialization and validation of every search filter (table-driven)."""
from __future__ import annotations

from typing import Any

import pytest

from sfapi.client import filters
from sfapi.client.objects import BBox, DetectFace, Face, FaceId

DET = DetectFace(id="det-1", bbox=BBox(1, 2, 3, 4))
STORED = Face(id=FaceId("staff", 77), meta={"name": "Ann"})

SERIALIZED: list[tuple[str, filters.Filter, dict[str, Any]]] = [
    ("id lte", filters.Id.lte(1234), {"field": "id", "op": "lte", "value": 1234}),
    ("id gte", filters.Id.gte(5), {"field": "id", "op": "gte", "value": 5}),
    ("id oneof", filters.Id.oneof(1234, 5678), {"field": "id", "op": "oneof", "value": [1234, 5678]}),
    ("id oneof list", filters.Id.oneof([1, 2]), {"field": "id", "op": "oneof", "value": [1, 2]}),
    ("id oneof empty", filters.Id.oneof(), {"field": "id", "op": "oneof", "value": []}),
    ("meta lte int", filters.Meta("foo").lte(1234), {"field": "meta.foo", "op": "lte", "value": 1234}),
    ("meta gte int", filters.Meta("age").gte(45), {"field": "meta.age", "op": "gte", "value": 45}),
    ("meta gte str", filters.Meta("day").gte("2024-01-01"),
     {"field": "meta.day", "op": "gte", "value": "2024-01-01"}),
    ("meta oneof", filters.Meta("camera").oneof("abc", "def"),
     {"field": "meta.camera", "op": "oneof", "value": ["abc", "def"]}),
    ("meta oneof ints", filters.Meta("n").oneof(1, 2),
     {"field": "meta.n", "op": "oneof", "value": [1, 2]}),
    ("meta subset", filters.Meta("foo").subset("male", "angry"),
     {"field": "meta.foo", "op": "subset", "value": ["male", "angry"]}),
    ("meta subset list", filters.Meta("foo").subset(["a"]),
     {"field": "meta.foo", "op": "subset", "value": ["a"]}),
    ("meta class form", filters.Meta.lte("foo", 7), {"field": "meta.foo", "op": "lte", "value": 7}),
    ("meta class form oneof", filters.Meta.oneof("cam", "a", "b"),
     {"field": "meta.cam", "op": "oneof", "value": ["a", "b"]}),
    ("detection by id", filters.Detection("abc", 0.77),
     {"field": "detection", "op": "looks_like", "value": "abc", "threshold": 0.77}),
    ("detection by object", filters.Detection(DET, 0.5),
     {"field": "detection", "op": "looks_like", "value": "det-1", "threshold": 0.5}),
    ("detection int threshold", filters.Detection("abc", 1),
     {"field": "detection", "op": "looks_like", "value": "abc", "threshold": 1.0}),
    ("face by FaceId", filters.Face(FaceId("gal1", 1234), 0.77),
     {"field": "face", "op": "looks_like", "value": {"gallery": "gal1", "face": 1234},
      "threshold": 0.77}),
    ("face by Face", filters.Face(STORED, 0.6),
     {"field": "face", "op": "looks_like", "value": {"gallery": "staff", "face": 77},
      "threshold": 0.6}),
    ("face by str", filters.Face("gal1/12", 0.1),
     {"field": "face", "op": "looks_like", "value": {"gallery": "gal1", "face": 12},
      "threshold": 0.1}),
    ("face by tuple", filters.Face(("g", 3), 0.0),
     {"field": "face", "op": "looks_like", "value": {"gallery": "g", "face": 3}, "threshold": 0.0}),
]


@pytest.mark.parametrize(("flt", "expected"), [(f, e) for _, f, e in SERIALIZED],
                         ids=[name for name, _, _ in SERIALIZED])
def test_to_json(flt: filters.Filter, expected: dict[str, Any]) -> None:
    assert isinstance(flt, filters.Filter)
    assert flt.to_json() == expected
    assert flt.to_json(gallery="other") == expected  # the gallery only resolves bare face ids


@pytest.mark.parametrize("face", [1234, "1234"])
def test_face_filter_bare_id_resolved_to_searched_gallery(face: int | str) -> None:
    flt = filters.Face(face, 0.5)
    assert flt.to_json(gallery="staff")["value"] == {"gallery": "staff", "face": 1234}
    with pytest.raises(ValueError, match="names no gallery"):
        flt.to_json()


BAD: list[tuple[str, Any, type[Exception]]] = [
    ("id lte str", lambda: filters.Id.lte("1"), TypeError),
    ("id gte bool", lambda: filters.Id.gte(True), TypeError),
    ("id oneof float", lambda: filters.Id.oneof(1, 2.5), TypeError),
    ("id instantiated", lambda: filters.Id(), TypeError),
    ("meta empty name", lambda: filters.Meta(""), TypeError),
    ("meta unnamed bad value", lambda: filters.Meta.oneof(1234, 5.5), TypeError),
    ("meta float", lambda: filters.Meta("x").gte(1.5), TypeError),
    ("meta subset dict", lambda: filters.Meta("x").subset({"a": 1}), TypeError),
    ("detection no id", lambda: filters.Detection(DetectFace(None, BBox(0, 0, 1, 1)), 0.5),
     ValueError),
    ("detection int id", lambda: filters.Detection(5, 0.5), TypeError),
    ("threshold > 1", lambda: filters.Detection("a", 1.5), ValueError),
    ("threshold < 0", lambda: filters.Face(FaceId("g", 1), -0.1), ValueError),
    ("threshold nan", lambda: filters.Detection("a", float("nan")), ValueError),
    ("threshold str", lambda: filters.Detection("a", "0.5"), TypeError),
    ("face bad str", lambda: filters.Face("g/abc", 0.5), ValueError),
    ("face float", lambda: filters.Face(1.5, 0.5), TypeError),
    ("face tuple non-int", lambda: filters.Face(("g", "1"), 0.5), TypeError),
]


@pytest.mark.parametrize(("make", "error"), [(m, e) for _, m, e in BAD],
                         ids=[name for name, _, _ in BAD])
def test_invalid_filters_rejected(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_filters_are_immutable_and_comparable() -> None:
    assert filters.Meta("a").gte(1) == filters.Meta.gte("a", 1)
    assert filters.Detection("x", 0.5) == filters.Detection("x", 0.5)
    with pytest.raises(AttributeError):
        filters.Id.lte(3).value = 4  # type: ignore[misc]


def test_serialize_list() -> None:
    out = filters.serialize([filters.Id.gte(123456), filters.Meta("age").gte(45),
                             filters.Meta("camera").oneof("abc", "def"), filters.Face(9, 0.7)],
                            gallery="g")
    assert out == [
        {"field": "id", "op": "gte", "value": 123456},
        {"field": "meta.age", "op": "gte", "value": 45},
        {"field": "meta.camera", "op": "oneof", "value": ["abc", "def"]},
        {"field": "face", "op": "looks_like", "value": {"gallery": "g", "face": 9},
         "threshold": 0.7},
    ]
    assert filters.serialize(None) == []
    with pytest.raises(TypeError):
        filters.serialize([{"field": "id"}])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        filters.serialize(filters.Id.lte(1))  # type: ignore[arg-type]


def test_meta_oneof_as_the_reference_prints_it() -> None:
    """``Meta.oneof(1234, 5678)`` (no field, as in the reference) is accepted; naming the field
    gives the usual filter, and sending it unnamed is a clear error, not a TypeError at the call."""
    flt = filters.Meta.oneof(1234, 5678)
    assert isinstance(flt, filters.Filter)
    assert flt.on("camera") == filters.Meta("camera").oneof(1234, 5678)
    with pytest.raises(ValueError, match=r"Meta\.oneof\(1234, 5678\) names no meta field"):
        filters.serialize([flt], gallery="g")
    assert filters.Meta.gte(45).on("age").to_json() == {"field": "meta.age", "op": "gte", "value": 45}
