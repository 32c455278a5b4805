"""Face tracker: IoU matching with a miss interval (FindFace's ``simple_iou``) plus a constant
velocity prediction, so that a face moving steadily keeps its track at low detection rates.

Time is stream time in seconds (``t``), so a file analysed faster than real time tracks exactly as
it would live. A track that has not been matched for longer than ``miss_interval`` ends; a track
that reached ``max_frames`` observations ends at once (its face starts a new track next frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Track", "IouTracker", "iou_matrix"]


@dataclass
class Track:
    """One face followed across frames. Times are stream seconds, frames analysed frame numbers."""

    id: int
    box: np.ndarray
    start_t: float
    start_frame: int
    last_t: float
    last_frame: int
    frames: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64))

    def predict(self, t: float) -> np.ndarray:
        """Where the box should be at ``t``."""
        return self.box + self.velocity * (t - self.last_t)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4): (n, m)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


class IouTracker:
    """Greedy IoU association of detections with live tracks.

    ``update`` returns the track id of every detection and the tracks that ended; ``finish`` ends
    every live track (end of stream, reconnect). Not thread-safe: one camera, one caller at a time.
    """

    def __init__(self, overlap_threshold: float = 0.25, miss_interval: float = 1.0,
                 max_frames: int = 0, first_id: int = 1) -> None:
        self.overlap_threshold = overlap_threshold
        self.miss_interval = miss_interval
        self.max_frames = max_frames
        self._next_id = first_id
        #: tracks started so far
        self.created = 0
        self.live: dict[int, Track] = {}

    def update(self, t: float, frame_no: int, boxes: np.ndarray) -> tuple[np.ndarray, list[Track]]:
        """Associate ``boxes`` (n, 4) seen at stream time ``t``; returns (track ids (n,), ended)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ended = [tr for tr in self.live.values() if t - tr.last_t > self.miss_interval]
        for tr in ended:
            del self.live[tr.id]
        ids = np.full(len(boxes), -1, np.int64)
        tracks = list(self.live.values())
        if tracks and len(boxes):
            predicted = np.stack([tr.predict(t) for tr in tracks])
            # a detection may match its track's last box or its predicted box, whichever is better
            overlap = np.maximum(iou_matrix(predicted, boxes),
                                 iou_matrix(np.stack([tr.box for tr in tracks]), boxes))
            for flat in np.argsort(-overlap, axis=None, kind="stable"):
                ti, di = divmod(int(flat), len(boxes))
                if overlap[ti, di] < self.overlap_threshold:
                    break
                if ids[di] >= 0 or tracks[ti].last_frame == frame_no:
                    continue
                self._extend(tracks[ti], t, frame_no, boxes[di])
                ids[di] = tracks[ti].id
        for di in np.flatnonzero(ids < 0):
            tr = Track(self._next_id, boxes[di].copy(), t, frame_no, t, frame_no)
            self._next_id += 1
            self.created += 1
            self.live[tr.id] = tr
            ids[di] = tr.id
        if self.max_frames:
            full = [tr for tr in self.live.values() if tr.frames >= self.max_frames]
            for tr in full:
                del self.live[tr.id]
            ended += full
        return ids, ended

    def finish(self) -> list[Track]:
        """End every live track."""
        ended = list(self.live.values())
        self.live.clear()
        return ended

    @staticmethod
    def _extend(tr: Track, t: float, frame_no: int, box: np.ndarray) -> None:
        dt = t - tr.last_t
        if dt > 0:
            v = (box - tr.box) / dt
            tr.velocity = v if tr.frames == 1 else 0.5 * tr.velocity + 0.5 * v
        tr.box = box.copy()
        tr.last_t = t
        tr.last_frame = frame_no
        tr.frames += 1
