"""MTCNN detector on the real networks and the sample photos (skips without the model files)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facestack.vision.engines.faces import Faces
from facestack.stack.sample_data import EXPECTED_FACES
from tests.conftest import DATA, PACK_DIR
from facestack.vision.engines.mtcnn import MtcnnDetector, MtcnnSettings


# Faces in each group photo (a few people in them are turned away or cut by the frame)
SCENE_FACES = EXPECTED_FACES


def _photos(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (DATA / f).rglob("*") if p.suffix.lower() in (".jpg", ".png"))


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    if not (DATA / "faces").is_dir():
        pytest.skip(f"sample data {DATA} not found")
    from facestack.vision.engines.runtime import OnnxRuntime

    return MtcnnDetector.from_pack(OnnxRuntime(), PACK_DIR)


def _check_consistent(faces: Faces, image: np.ndarray, upright: bool = True) -> None:
    assert faces.boxes.dtype == np.float32 and faces.landmarks.dtype == np.float32
    assert np.all(faces.scores >= 0.95) and np.all(np.diff(faces.scores) <= 0)
    x, y = faces.landmarks[..., 0], faces.landmarks[..., 1]
    b = faces.boxes
    assert np.all((x >= b[:, 0:1]) & (x <= b[:, 2:3]) & (y >= b[:, 1:2]) & (y <= b[:, 3:4])), "landmark outside box"
    # image-left eye and mouth corner first
    assert np.all(x[:, 0] < x[:, 1]) and np.all(x[:, 3] < x[:, 4])
    if not upright:  # people in group photos tilt their heads
        return
    # eyes above the nose, nose above the mouth
    assert np.all(np.maximum(y[:, 0], y[:, 1]) < y[:, 2]) and np.all(y[:, 2] < np.minimum(y[:, 3], y[:, 4]))


@pytest.mark.parametrize("path", _photos("faces", "partial", "small", "resolutions"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_finds_the_face_in_every_portrait(detector: MtcnnDetector, path: Path) -> None:
    # the partial faces are cut by the frame but keep both eyes and the mouth
    image = _read_rgb(path)
    faces = detector.detect(image)
    assert len(faces) == 1, faces.scores
    _check_consistent(faces, image)


@pytest.mark.parametrize("name", sorted(SCENE_FACES))
def test_finds_every_face_in_scenes(detector: MtcnnDetector, name: str) -> None:
    image = _read_rgb(DATA / "scenes" / name)
    faces = detector.detect(image)
    assert len(faces) == SCENE_FACES[name], faces.boxes
    _check_consistent(faces, image, upright=False)


def test_same_face_at_every_resolution(detector: MtcnnDetector) -> None:
    """The obama-*p files are one photo at several sizes: boxes and landmarks scale along."""
    found = {}
    for path in sorted((DATA / "resolutions").glob("obama-*p.jpg")):
        image = _read_rgb(path)
        faces = detector.detect(image)
        assert len(faces) == 1, path.name
        found[path.name] = faces.landmarks[0] / image.shape[1]
    ref = found["obama-720p.jpg"]
    for name, lm in found.items():
        assert np.abs(lm - ref).max() < 0.01, name


def test_max_image_side_maps_boxes_back(detector: MtcnnDetector) -> None:
    image = _read_rgb(DATA / "resolutions" / "obama-1080p.jpg")
    small = MtcnnDetector(detector.pnet, detector.rnet, detector.onet, MtcnnSettings(max_image_side=640))
    full = MtcnnDetector(detector.pnet, detector.rnet, detector.onet, MtcnnSettings(max_image_side=None))
    assert max(small.pnet_scales(1080, 1920)) < max(full.pnet_scales(1080, 1920))
    a, b = small.detect(image), full.detect(image)
    assert len(a) == len(b) == 1
    side = b.boxes[0, 2] - b.boxes[0, 0]
    assert np.abs(a.boxes - b.boxes).max() < 0.15 * side  # a mapping error would be off by 1080/640
    assert np.abs(a.landmarks - b.landmarks).max() < 0.1 * side


@pytest.mark.parametrize("shape", [(480, 640, 3), (5, 5, 3), (11, 300, 3), (1, 1, 3)])
def test_blank_and_tiny_images_have_no_faces(detector: MtcnnDetector, shape: tuple[int, int, int]) -> None:
    for value in (0, 128, 255):
        faces = detector.detect(np.full(shape, value, np.uint8))
        assert len(faces) == 0
        assert faces.boxes.shape == (0, 4) and faces.landmarks.shape == (0, 5, 2)


def test_face_at_the_border_keeps_an_unclipped_box(detector: MtcnnDetector) -> None:
    image = _read_rgb(DATA / "resolutions" / "obama-720p.jpg")
    faces = detector.detect(image)
    x1 = int(faces.boxes[0, 0])
    cut = np.ascontiguousarray(image[:, x1 + 20:])  # shift the face against the left border
    shifted = detector.detect(cut)
    assert len(shifted) == 1 and shifted.boxes[0, 0] < 0


@pytest.mark.parametrize("bad", [np.zeros((10, 10)), np.zeros((10, 10, 4), np.uint8), [[1, 2, 3]]])
def test_rejects_non_rgb_input(detector: MtcnnDetector, bad: object) -> None:
    with pytest.raises(ValueError):
        detector.detect(bad)  # type: ignore[arg-type]


def test_float_images_are_accepted(detector: MtcnnDetector) -> None:
    image = _read_rgb(DATA / "small" / "obama_small.jpg")
    a = detector.detect(image)
    b = detector.detect(image.astype(np.float32))
    np.testing.assert_allclose(a.boxes, b.boxes)


@pytest.mark.parametrize("kwargs", [
    {"min_face_size": 5},
    {"scale_factor": 1.0},
    {"thresholds": (0.6, 0.7, 1.5)},
    {"nms_thresholds": (0.5, 0.7, 0.0, 0.7)},
    {"max_image_side": 3},
])
def test_settings_are_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MtcnnSettings(**kwargs)
