"""One result type for faces: parallel numpy arrays, validated on construction, sliceable by mask."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Faces:
    """Faces found in one image.

    ``boxes`` (n, 4) float32 x1, y1, x2, y2 in image pixels; ``scores`` (n,) detector scores;
    ``landmarks`` (n, 5, 2) left eye, right eye, nose, mouth left, mouth right (as seen in the image);
    ``rotation`` (n,) degrees the image was turned clockwise before detection (autorotate), else 0;
    ``track_ids`` (n,) int64 track of each face across video frames (the video worker's tracker),
    -1 where the face belongs to no track (a still image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.rotation.shape == (0,) and n:
            object.__setattr__(self, "rotation", np.zeros(n, np.int32))
        if self.track_ids.shape == (0,) and n:
            object.__setattr__(self, "track_ids", np.full(n, -1, np.int64))
        _expect("boxes", self.boxes, (n, 4))
        _expect("scores", self.scores, (n,))
        _expect("landmarks", self.landmarks, (n, 5, 2))
        _expect("rotation", self.rotation, (n,))
        _expect("track_ids", self.track_ids, (n,))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> "Faces":
        return Faces(self.boxes[index], self.scores[index], self.landmarks[index], self.rotation[index],
                     self.track_ids[index])

    def with_track_ids(self, track_ids: np.ndarray) -> "Faces":
        """The same faces carrying ``track_ids`` (n,)."""
        return Faces(self.boxes, self.scores, self.landmarks, self.rotation,
                     np.asarray(track_ids, np.int64))

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32),
                   np.zeros(0, np.int32), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: list["Faces"]) -> "Faces":
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.landmarks for p in parts]), np.concatenate([p.rotation for p in parts]),
                   np.concatenate([p.track_ids for p in parts]))


def _expect(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise ValueError(f"Faces.{name}: expected {shape}, got {arr.shape}")
