"""Parsing of gallery list/search requests: query string, JSON body, cursor."""
from __future__ import annotations

import pytest
from multidict import MultiDict

from sfapi.errors import BadParam
from sfapi.gallery.query import (build_request, decode_cursor, encode_cursor, face_id, parse_source,
                                 specs_from_body, specs_from_query)
from sfapi.gallery.types import Cursor, IdFilter, MetaFilter

SCHEMA = {"age": "int", "camera": "string", "tags": "strings"}


def qs(*pairs: tuple[str, str]):
    specs, opts = specs_from_query(MultiDict(pairs))
    return build_request(specs, opts, SCHEMA)


def test_query_string_expresses_every_filter() -> None:
    req = qs(("id.gte", "5"), ("id.lte", "90"), ("id.oneof", "7,8"), ("id.oneof", "9"),
             ("meta.age.gte", "30"), ("meta.camera.oneof", "a,b"), ("meta.camera.oneof", "c"),
             ("meta.tags.subset", "x"), ("meta.tags.subset", "y"),
             ("looks_like", "detection:abc"), ("threshold", "0.8"), ("limit", "5"), ("ignore_errors", "true"))
    assert set(req.ids) == {IdFilter("gte", 5), IdFilter("lte", 90), IdFilter("oneof", (7, 8, 9))}
    assert set(req.meta) == {MetaFilter("age", "gte", 30), MetaFilter("camera", "oneof", ("a,b", "c")),
                             MetaFilter("tags", "subset", ("x", "y"))}
    assert req.like is not None and req.like.detection == "abc" and req.like.threshold == 0.8
    assert req.sort == "-confidence" and req.limit == 5 and req.ignore_errors


def test_body_form_equals_query_form() -> None:
    body = {"filters": [{"field": "id", "op": "gte", "value": 5},
                        {"field": "meta.tags", "op": "subset", "value": ["x"]},
                        {"field": "face", "op": "looks_like", "value": {"gallery": "g", "face": 3}, "threshold": 0.7}],
            "sort": "id", "limit": 10}
    specs, opts = specs_from_body(body)
    req = build_request(specs, opts, SCHEMA)
    assert req.ids == (IdFilter("gte", 5),) and req.meta == (MetaFilter("tags", "subset", ("x",)),)
    assert req.like is not None and (req.like.gallery, req.like.face, req.like.threshold) == ("g", 3, 0.7)
    assert req.sort == "id"


@pytest.mark.parametrize("pairs, param", [
    ((("id.gte", "x"),), "id.gte"),
    ((("id.gte", "-1"),), "id.gte"),
    ((("id.gte", str(2**64)),), "id.gte"),
    ((("meta.nope.gte", "1"),), "meta.nope"),
    ((("meta.age.gte", "old"),), "meta.age"),
    ((("meta.tags.gte", "x"),), "meta.tags"),
    ((("meta.age.subset", "1"),), "meta.age"),
    ((("colour", "red"),), "colour"),
    ((("sort", "name"),), "sort"),
    ((("sort", "-confidence"),), "sort"),
    ((("limit", "0"),), "limit"),
    ((("limit", "many"),), "limit"),
    ((("looks_like", "somewhere"),), "looks_like"),
    ((("looks_like", "detection:a"), ("threshold", "2")), "threshold"),
    ((("threshold", "0.5"),), "threshold"),
    ((("page", "garbage!"),), "page"),
    ((("ignore_errors", "perhaps"),), "ignore_errors"),
])
def test_bad_requests_name_the_parameter(pairs, param: str) -> None:
    with pytest.raises(BadParam) as err:
        qs(*pairs)
    assert err.value.param == param


def test_cursor_round_trip_and_sort_mismatch() -> None:
    c = Cursor("-confidence", 2**64 - 1, 0.8125)
    assert decode_cursor(encode_cursor(c), "-confidence") == c
    with pytest.raises(BadParam, match="made for sort"):
        decode_cursor(encode_cursor(c), "id")
    assert encode_cursor(None) is None


@pytest.mark.parametrize("raw, ok", [("0", True), ("18446744073709551615", True), ("18446744073709551616", False),
                                      ("-3", False), ("1.5", False), ("abc", False), (True, False)])
def test_face_ids(raw, ok: bool) -> None:
    if ok:
        assert face_id(raw) == int(raw)
    else:
        with pytest.raises(BadParam):
            face_id(raw)


def test_sources() -> None:
    assert parse_source("detection:abc").detection == "abc"
    s = parse_source("face:my.gallery/42")
    assert (s.gallery, s.face) == ("my.gallery", 42)
    for bad in ("detection:", "face:/1", "face:g/x", "other", None):
        with pytest.raises(BadParam):
            parse_source(bad)
