"""Parsing of the service's JSON into the client objects (table-driven), facen decoding included."""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from sfapi.client.objects import (
    BBox,
    DetectFace,
    DetectResponse,
    Face,
    FaceId,
    GalleryListItem,
    ListResponse,
    decode_facen,
    encode_facen,
)

VECTOR = np.array([0.5, -1.25, 3.0, 1e-3], dtype=np.float32)
FACEN = base64.b64encode(VECTOR.astype("<f4").tobytes()).decode()

FULL_FACE = {
    "id": "det-1",
    "bbox": {"left": 10, "top": 20, "right": 110, "bottom": 140},
    "detection_score": 0.98,
    "quality": -0.4,
    "landmarks": [[30, 50], [80, 50], [55, 80], [35, 110], [75, 110]],
    "rotation": 90,
    "features": {"gender": {"gender": "female", "score": 0.91}, "age": 33,
                 "emotions": [{"emotion": "happy", "score": 0.7}]},
    "facen": FACEN,
    "facen_model": "dlib_resnet_v1",
}
MINIMAL_FACE = {"bbox": {"left": 0, "top": 0, "right": 5.5, "bottom": 6}}


def test_bbox_aliases_and_round_trip() -> None:
    box = BBox.from_json({"left": 1, "top": 2, "right": 11, "bottom": 22})
    assert (box.x1, box.y1, box.x2, box.y2) == (1, 2, 11, 22)
    assert (box.width, box.height) == (10, 20)
    assert box.as_list() == [1, 2, 11, 22]
    assert BBox.from_json(box.to_json()) == box


def test_detect_face_full() -> None:
    face = DetectFace.from_json(FULL_FACE)
    assert face.id == "det-1"
    assert face.bbox == BBox(10, 20, 110, 140)
    assert face.features["gender"] == {"gender": "female", "score": 0.91}
    assert face.features["age"] == 33
    assert face.detection_score == 0.98 and face.quality == -0.4
    assert face.rotation == 90
    assert face.landmarks is not None and face.landmarks.shape == (5, 2)
    assert face.landmarks.dtype == np.float32
    assert face.facen is not None and face.facen.dtype == np.float32
    np.testing.assert_array_equal(face.facen, VECTOR)
    assert face.facen_model == "dlib_resnet_v1"
    assert "det-1" in repr(face)


def test_detect_face_minimal() -> None:
    face = DetectFace.from_json(MINIMAL_FACE)
    assert face.id is None and face.features == {} and face.facen is None
    assert face.landmarks is None and face.rotation == 0 and face.detection_score is None


def test_detect_response() -> None:
    resp = DetectResponse.from_json({"orientation": 6, "faces": [FULL_FACE, MINIMAL_FACE]})
    assert isinstance(resp, list) and len(resp) == 2
    assert resp.orientation == 6
    assert [f.id for f in resp] == ["det-1", None]
    assert DetectResponse.from_json({"faces": []}).orientation == 1
    assert "orientation=6" in repr(resp)


FACEN_CASES: list[tuple[str, np.ndarray]] = [
    ("empty", np.zeros(0, dtype=np.float32)),
    ("one", np.array([1.0], dtype=np.float32)),
    ("128", np.linspace(-1, 1, 128, dtype=np.float32)),
    ("512", np.arange(512, dtype=np.float32) / 7),
]


@pytest.mark.parametrize("vector", [v for _, v in FACEN_CASES], ids=[n for n, _ in FACEN_CASES])
def test_facen_round_trip(vector: np.ndarray) -> None:
    decoded = decode_facen(encode_facen(vector))
    np.testing.assert_array_equal(decoded, vector)
    assert decoded.dtype == np.float32 and decoded.flags.writeable


def test_facen_is_little_endian() -> None:
    text = base64.b64encode(bytes([0, 0, 128, 63])).decode()  # 1.0 as little-endian float32
    np.testing.assert_array_equal(decode_facen(text), [1.0])


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"abc").decode(), 12])
def test_facen_invalid(bad: Any) -> None:
    with pytest.raises(ValueError):
        decode_facen(bad)


def test_face_and_face_id() -> None:
    data = {"id": {"gallery": "staff", "face": 42}, "features": {"age": 30},
            "meta": {"name": "Ann", "tags": ["a", "b"]}, "confidence": 0.83}
    face = Face.from_json(data)
    assert face.id == FaceId("staff", 42) and face.id.gallery == "staff" and face.id.face == 42
    assert face.features == {"age": 30}
    assert face.meta == {"name": "Ann", "tags": ["a", "b"]}
    assert face.confidence == 0.83
    no_conf = Face.from_json({"id": {"gallery": "g", "face": 1}, "confidence": None})
    assert no_conf.confidence is None and no_conf.meta == {} and no_conf.features == {}
    assert FaceId.from_json(face.id.to_json()) == face.id
    assert isinstance(face.id, tuple) and face.id == ("staff", 42)


@pytest.mark.parametrize(("text", "expected"), [
    ("gal/12", FaceId("gal", 12)),
    ("a/b/3", FaceId("a/b", 3)),
])
def test_face_id_parse(text: str, expected: FaceId) -> None:
    assert FaceId.parse(text) == expected


@pytest.mark.parametrize("text", ["gal", "/3", "gal/", "gal/x", "gal/-1"])
def test_face_id_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        FaceId.parse(text)


def test_list_response_and_gallery_item() -> None:
    resp = ListResponse.from_json({
        "results": [{"id": {"gallery": "g", "face": 1}, "meta": {}, "features": {},
                     "confidence": None}],
        "next_page": "cursor-2",
    })
    assert isinstance(resp, list) and len(resp) == 1 and resp.next_page == "cursor-2"
    assert resp[0].id == FaceId("g", 1)
    assert ListResponse.from_json({"results": [], "next_page": None}).next_page is None
    item = GalleryListItem.from_json({"name": "staff", "number": 3})
    assert item == ("staff", 3) and item.name == "staff" and item.number == 3


MALFORMED: list[tuple[str, Any, Any]] = [
    ("bbox missing key", BBox.from_json, {"left": 1, "top": 2, "right": 3}),
    ("bbox string coord", BBox.from_json, {"left": "1", "top": 2, "right": 3, "bottom": 4}),
    ("bbox bool coord", BBox.from_json, {"left": True, "top": 2, "right": 3, "bottom": 4}),
    ("bbox not object", BBox.from_json, [1, 2, 3, 4]),
    ("face without bbox", DetectFace.from_json, {"id": "x"}),
    ("face id int", DetectFace.from_json, {**MINIMAL_FACE, "id": 5}),
    ("face bad landmarks", DetectFace.from_json, {**MINIMAL_FACE, "landmarks": [[1, 2, 3]]}),
    ("face ragged landmarks", DetectFace.from_json, {**MINIMAL_FACE, "landmarks": [[1], [2, 3]]}),
    ("face features list", DetectFace.from_json, {**MINIMAL_FACE, "features": []}),
    ("face bad facen", DetectFace.from_json, {**MINIMAL_FACE, "facen": "@@"}),
    ("detect faces missing", DetectResponse.from_json, {"orientation": 1}),
    ("detect orientation str", DetectResponse.from_json, {"orientation": "1", "faces": []}),
    ("stored face no id", Face.from_json, {"meta": {}}),
    ("stored face id str", Face.from_json, {"id": "g/1"}),
    ("stored face face str", Face.from_json, {"id": {"gallery": "g", "face": "1"}}),
    ("stored face meta list", Face.from_json, {"id": {"gallery": "g", "face": 1}, "meta": [1]}),
    ("list results missing", ListResponse.from_json, {"next_page": None}),
    ("list next_page int", ListResponse.from_json, {"results": [], "next_page": 3}),
    ("gallery no name", GalleryListItem.from_json, {"number": 3}),
]


@pytest.mark.parametrize(("builder", "data"), [(b, d) for _, b, d in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_json_raises_value_error(builder: Any, data: Any) -> None:
    with pytest.raises(ValueError):
        builder(data)
