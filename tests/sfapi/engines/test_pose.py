"""Head pose from the pack's pose network, and the quality built on it (sfapi and the worker)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facestack.vision.engines.analyzer import FaceAnalyzer
from facestack.vision.engines.mtcnn import MtcnnDetector
from facestack.vision.engines.pose import PoseEstimator
from facestack.vision.engines.quality import POSE_FLOOR, pose_factor, quality_parts
from facestack.vision.engines.runtime import create_runtime
from facestack.stack.clips import turn_face


@pytest.fixture(scope="module")
def pose(models_dir: Path) -> PoseEstimator:
    return PoseEstimator.from_pack(create_runtime("onnxruntime", 1), models_dir)


@pytest.fixture(scope="module")
def mtcnn(models_dir: Path) -> MtcnnDetector:
    return MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), models_dir)


def photo(data_dir: Path, name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(data_dir / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def one_face(mtcnn: MtcnnDetector, rgb: np.ndarray) -> np.ndarray:
    faces = mtcnn.detect(rgb)
    assert len(faces) >= 1
    return faces.boxes[0]


def test_frontal_face_is_near_zero(pose: PoseEstimator, mtcnn: MtcnnDetector, data_dir: Path) -> None:
    rgb = photo(data_dir, "faces/obama/img1.jpg")
    yaw, pitch, roll = pose.estimate(rgb, one_face(mtcnn, rgb)[None])[0]
    assert abs(yaw) < 10 and abs(roll) < 10 and abs(pitch) < 25


def test_mirrored_photo_mirrors_yaw(pose: PoseEstimator, mtcnn: MtcnnDetector, data_dir: Path) -> None:
    rgb = photo(data_dir, "faces/obama/img2.jpg")  # turned ~18 degrees
    box = one_face(mtcnn, rgb)
    w = rgb.shape[1]
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    mbox = np.array([w - box[2], box[1], w - box[0], box[3]], np.float32)
    yaw, myaw = pose.estimate(rgb, box[None])[0, 0], pose.estimate(mirrored, mbox[None])[0, 0]
    assert abs(yaw) > 10
    assert myaw == pytest.approx(-yaw, abs=5)


@pytest.mark.parametrize("name", ["faces/obama/img1.jpg", "faces/biden/img1.jpg", "faces/nicolas_cage/img1.jpg"])
def test_yaw_follows_a_turn_both_ways(pose: PoseEstimator, mtcnn: MtcnnDetector, data_dir: Path, name: str) -> None:
    """Real photos turned by -50 .. +50 degrees: yaw falls steadily (turning the nose to larger x
    gives negative yaw), and the two directions have opposite signs."""
    rgb = photo(data_dir, name)
    box = one_face(mtcnn, rgb)
    yaws = []
    for degrees in (-50, -30, 0, 30, 50):
        turned = turn_face(rgb, box, degrees)
        yaws.append(float(pose.estimate(turned, one_face(mtcnn, turned)[None])[0, 0]))
    assert yaws == sorted(yaws, reverse=True), yaws
    assert yaws[0] > 10 and yaws[-1] < -10, yaws


def test_yaw_goes_past_45_degrees(pose: PoseEstimator, mtcnn: MtcnnDetector, data_dir: Path) -> None:
    """A three-quarter view (a real photo turned 65 degrees): the network says so, where the
    five-landmark yaw the worker used before stays near 20 degrees."""
    from facestack.vision.engines.quality import pose_angles

    rgb = photo(data_dir, "faces/obama/img1.jpg")
    turned = turn_face(rgb, one_face(mtcnn, rgb), 65)
    faces = mtcnn.detect(turned)
    yaw = pose.estimate(turned, faces.boxes[:1])[0, 0]
    assert yaw < -45
    assert abs(pose_angles(faces.landmarks[:1])[0][0]) < 35


def test_pose_factor_ranks_and_never_drops_a_face() -> None:
    f = pose_factor(np.array([0, 30, 45, 60, 90, 120]), np.zeros(6), np.zeros(6))
    assert f[0] == pytest.approx(1.0)
    assert list(f) == sorted(f, reverse=True)
    assert f[3] == pytest.approx(0.6, abs=0.01)
    assert f[4] == pytest.approx(POSE_FLOOR) and f[5] == pytest.approx(POSE_FLOOR)
    parts = quality_parts(np.array([0.99]), np.array([[0, 0, 120, 120]]), np.zeros((1, 5, 2)),
                          np.array([1.0]), pose=np.array([[70.0, -10.0, 5.0]]))
    assert 0 < parts["quality"][0] == pytest.approx(
        parts["score"][0] * parts["size"][0] * parts["pose"][0] * parts["sharpness"][0])


def test_sfapi_quality_uses_the_pose_network(analyzer: FaceAnalyzer, mtcnn: MtcnnDetector, data_dir: Path) -> None:
    """sfapi's ``quality`` agrees with the worker's: the frontal photo beats the same photo turned
    65 degrees, which still has a quality well above zero."""
    assert analyzer.pose is not None
    rgb = photo(data_dir, "faces/obama/img1.jpg")
    turned = turn_face(rgb, one_face(mtcnn, rgb), 65)
    q = []
    for image in (rgb, turned):
        faces = analyzer.detect(image)
        q.append(float(analyzer.prepare(image, faces, ["facen"]).quality[0]))
    assert q[0] > q[1] > 0.3
