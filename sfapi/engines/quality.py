"""Face quality without a quality model: detector score, size, sharpness and pose from landmarks.

No face-quality network ships in a registry package, so quality is a product of simple, explainable
factors in 0..1. The video worker uses the same score to pick the best face of a track.
"""
from __future__ import annotations

import cv2
import numpy as np


def pose_angles(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate (yaw, roll) in degrees for landmarks (n, 5, 2).

    Roll is the angle of the line between the eyes. Yaw comes from how far the nose sits from the
    middle of the eyes, relative to the eye distance (0 for a frontal face, about +-90 in profile).
    """
    lm = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    left, right, nose = lm[:, 0], lm[:, 1], lm[:, 2]
    d = right - left
    roll = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    eye_dist = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    mid = (left + right) / 2
    # project the nose offset on the eye axis
    offset = ((nose - mid) * d).sum(axis=1) / eye_dist
    yaw = np.degrees(np.arcsin(np.clip(offset / (eye_dist * 0.55), -1, 1)))
    return yaw, roll


def sharpness(gray_chips: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each (n, h, w) uint8 chip, mapped to 0..1 (~1 at 300 and up)."""
    out = np.empty(len(gray_chips), np.float32)
    for i, chip in enumerate(gray_chips):
        out[i] = cv2.Laplacian(chip, cv2.CV_32F).var()
    return np.clip(out / 300.0, 0.0, 1.0)


def quality_score(scores: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                  sharp: np.ndarray | None = None, full_size_px: float = 100.0) -> np.ndarray:
    """Quality in 0..1 of each face: score x size x pose x sharpness factors."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    side = np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0))
    size_f = np.clip(side / full_size_px, 0.0, 1.0)
    yaw, roll = pose_angles(landmarks)
    pose_f = np.clip(np.cos(np.radians(yaw)), 0, 1) * np.clip(np.cos(np.radians(roll) / 2), 0, 1)
    q = np.asarray(scores, np.float32) * size_f * pose_f
    if sharp is not None:
        q = q * (0.5 + 0.5 * sharp)
    return q.astype(np.float32)
