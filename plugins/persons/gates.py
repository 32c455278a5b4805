"""The auto-create gates: blur, exposure and face angle (CPU work: call from an executor).

* blur: variance of the Laplacian of the grey face image (higher is sharper);
* exposure: mean brightness of the face and the share of clipped (near-black or near-white)
  pixels;
* face angle: yaw and roll in degrees from 5-point landmarks (sfapi's ``pose_angles``), taken from
  the video worker's ``detectorParams["landmarks"]`` (``[[x, y], ...]`` in photo pixels: left eye,
  right eye, nose, mouth corners), or from sfapi's detection when it ran on the full photo. A face
  whose landmarks are unknown fails the angle gate (the safe choice for auto-enrolment).

Liveness: no liveness model ships, so every face is ``undetermined``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facestack.vision.engines.quality import pose_angles

from .config import GatesConfig

__all__ = ["FaceChecks", "measure", "landmarks_of", "LIVENESS_UNDETERMINED"]

LIVENESS_UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class FaceChecks:
    """What the gates measured on one face."""

    sharpness: float | None
    brightness: float | None
    clipped: float | None
    yaw: float | None
    roll: float | None

    def blur_ok(self, g: GatesConfig) -> bool:
        """Sharp enough."""
        return self.sharpness is not None and self.sharpness >= g.min_sharpness

    def exposure_ok(self, g: GatesConfig) -> bool:
        """Neither too dark, too bright nor clipped."""
        return (self.brightness is not None and self.clipped is not None
                and g.min_brightness <= self.brightness <= g.max_brightness
                and self.clipped <= g.max_clipped)

    def angle_ok(self, g: GatesConfig) -> bool:
        """Frontal enough."""
        return (self.yaw is not None and self.roll is not None and abs(self.yaw) <= g.max_yaw
                and abs(self.roll) <= g.max_roll)

    def to_json(self) -> dict[str, Any]:
        """Rounded values for logs and webhooks."""
        return {k: None if v is None else round(v, 2) for k, v in self.__dict__.items()}


def landmarks_of(detector_params: dict[str, Any], detection_landmarks: Any) -> np.ndarray | None:
    """Five (x, y) landmarks of the face, or ``None`` when nobody measured them."""
    for candidate in (detector_params.get("landmarks"), detection_landmarks):
        if candidate is None:
            continue
        try:
            pts = np.asarray(candidate, np.float32).reshape(5, 2)
        except (ValueError, TypeError):
            continue
        if np.isfinite(pts).all():
            return pts
    return None


def measure(image: bytes, bbox: list[float] | None, landmarks: np.ndarray | None) -> FaceChecks:
    """Measure one face: ``image`` is face0 (``bbox`` None) or the photo with the face's bbox."""
    yaw = roll = None
    if landmarks is not None:
        y, r = pose_angles(landmarks.reshape(1, 5, 2))
        yaw, roll = float(y[0]), float(r[0])
    gray = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.size == 0:
        return FaceChecks(None, None, None, yaw, roll)
    if bbox is not None:
        h, w = gray.shape
        x1, y1, x2, y2 = (int(round(v)) for v in bbox)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 - x1 < 4 or y2 - y1 < 4:
            return FaceChecks(None, None, None, yaw, roll)
        gray = gray[y1:y2, x1:x2]
    side = 160
    face = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)
    sharp = float(cv2.Laplacian(face, cv2.CV_32F).var())
    clipped = float(((face <= 5) | (face >= 250)).mean())
    return FaceChecks(sharp, float(face.mean()), clipped, yaw, roll)
