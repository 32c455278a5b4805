"""Face quality without a quality model: detector score, size, sharpness and head pose.

No face-quality network ships in a registry package, so quality is a product of simple, explainable
factors in 0..1 (:func:`quality_parts`). The video worker uses the same score to rank the faces of
a track (the best one is posted), and sfapi reports it as ``quality``.

The pose factor uses the pose network's angles (:mod:`facestack.vision.engines.pose`) when given: it falls
with the cosine of yaw and of pitch but never below :data:`POSE_FLOOR`, so a face turned 60 or 90
degrees still has a quality (a three-quarter view is ranked below a frontal one, never discarded).
Without the network's angles, yaw comes from the five landmarks (:func:`pose_angles`), which
saturates past ~45 degrees.
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


#: the pose factor of a face turned 90 degrees or more (yaw or pitch)
POSE_FLOOR = 0.2


def pose_factor(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """0.2..1 per face: 1 frontal, ~0.77 at 45 degrees of yaw, 0.6 at 60, 0.2 in profile; roll
    (undone by alignment) costs little (cos of half the angle)."""
    def one(a: np.ndarray) -> np.ndarray:
        return POSE_FLOOR + (1 - POSE_FLOOR) * np.clip(np.cos(np.radians(a)), 0, 1)

    yaw, pitch, roll = (np.asarray(a, np.float32) for a in (yaw, pitch, roll))
    return (one(yaw) * one(pitch) * np.clip(np.cos(np.radians(roll) / 2), 0, 1)).astype(np.float32)


def quality_parts(scores: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                  sharp: np.ndarray | None = None, pose: np.ndarray | None = None,
                  full_size_px: float = 100.0) -> dict[str, np.ndarray]:
    """The factors of quality, each (n,) float32 in 0..1, and their product ``quality``:
    ``score`` (detector), ``size`` (side / ``full_size_px``), ``pose`` (:func:`pose_factor` of
    ``pose`` (n, 3) yaw, pitch, roll, or of the landmark yaw and roll when it is None),
    ``sharpness`` (0.5 + 0.5 x ``sharp``; 1 when ``sharp`` is None)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    side = np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0))
    size_f = np.clip(side / full_size_px, 0.0, 1.0).astype(np.float32)
    if pose is None:
        yaw, roll = pose_angles(landmarks)
        pose_f = pose_factor(yaw, np.zeros_like(yaw), roll)
    else:
        pose = np.asarray(pose, np.float32).reshape(-1, 3)
        pose_f = pose_factor(pose[:, 0], pose[:, 1], pose[:, 2])
    score_f = np.clip(np.asarray(scores, np.float32), 0.0, 1.0)
    sharp_f = (0.5 + 0.5 * np.asarray(sharp, np.float32) if sharp is not None
               else np.ones_like(score_f)).astype(np.float32)
    quality = (score_f * size_f * pose_f * sharp_f).astype(np.float32)
    return {"score": score_f, "size": size_f, "pose": pose_f, "sharpness": sharp_f, "quality": quality}


def quality_score(scores: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                  sharp: np.ndarray | None = None, full_size_px: float = 100.0,
                  pose: np.ndarray | None = None) -> np.ndarray:
    """Quality in 0..1 of each face: score x size x pose x sharpness factors (:func:`quality_parts`)."""
    return quality_parts(scores, boxes, landmarks, sharp, pose, full_size_px)["quality"]
