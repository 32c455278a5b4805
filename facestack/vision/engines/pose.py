"""Head pose (yaw, pitch, roll in degrees) from a pose network of the model pack.

The network (``pose`` in the pack: a HopeNet-style net shipped in an npm package) looks at a 224 x 224
RGB crop of the face box grown by a quarter of its side on every edge, and answers each angle as a
distribution over 66 bins of 3 degrees (-99 .. +99); the angle is the expectation. Unlike a yaw
guessed from five landmarks, it keeps growing past 45 degrees, so a three-quarter view and a profile
stay apart.

Conventions (checked on the sample photos, see the tests): a frontal face is near 0; mirroring the
image negates yaw; positive yaw is a face turned towards the image's left (its nose points to
smaller x). Pitch reads about -10 on frontal photos taken at eye level, and pitch and roll are less
steady than yaw (a mirrored photo may differ by a few degrees).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facestack.vision.engines.runtime import Runtime, Session

__all__ = ["PoseEstimator", "pose_crop", "POSE_SIZE"]

POSE_SIZE = 224
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0
_BINS = np.arange(66, dtype=np.float64)


def pose_crop(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The network's 224 x 224 RGB crop for ``box`` (x1, y1, x2, y2): the box grown by a quarter of
    its width / height on each side, clipped to the image, resized (not padded)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    cx1, cy1 = int(max(round(x1 - bw / 4), 0)), int(max(round(y1 - bh / 4), 0))
    cx2, cy2 = int(min(round(x2 + bw / 4), w)), int(min(round(y2 + bh / 4), h))
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return np.zeros((POSE_SIZE, POSE_SIZE, 3), np.uint8)
    crop = rgb[cy1:cy2, cx1:cx2]
    interp = cv2.INTER_AREA if max(crop.shape[:2]) > POSE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(crop, (POSE_SIZE, POSE_SIZE), interpolation=interp)


def _expectation(logits: np.ndarray) -> float:
    z = logits.astype(np.float64).ravel()
    p = np.exp(z - z.max())
    return float((p * _BINS).sum() / p.sum() * 3.0 - 99.0)


class PoseEstimator:
    """Runs the pose network (one face per call: its batch size is fixed at 1)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @classmethod
    def from_pack(cls, runtime: Runtime, models_dir: str | Path) -> "PoseEstimator":
        from facestack.vision.models.pack import network_path

        return cls(runtime.load(network_path(Path(models_dir), "pose"), "pose"))

    def estimate(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 3) float32 yaw, pitch, roll in degrees of the faces at ``boxes`` (n, 4) of ``rgb``."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), 3), np.float32)
        for i, box in enumerate(boxes):
            crop = pose_crop(rgb, box).astype(np.float32)
            x = ((crop - _MEAN) / _STD).transpose(2, 0, 1)[None]
            yaw, pitch, roll = self.session.run(np.ascontiguousarray(x, np.float32))[:3]
            out[i] = (_expectation(yaw), _expectation(pitch), _expectation(roll))
        return out
