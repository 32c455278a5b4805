"""The ``regions`` detection pipeline: full-frame MTCNN now and then, cheap re-detection in between.

Today's MTCNN over a whole 1080p frame costs ~40 ms of CPU, most of it P-Net on a 384 x 216
pyramid, and nearly all of it is spent on background where nothing changed. Between two full scans
(every ``full_scan_interval_s`` of stream time, and on the first frame of a connection) this pipeline
runs the same cascade only on crops of the full-resolution frame:

* **track zones**: around each live track (its last box joined with the box its velocity predicts,
  grown by :data:`TRACK_MARGIN` of the face side on every edge), with the P-Net pyramid limited to
  faces of :data:`TRACK_SCALES` x the track's face side, so a zone costs a few small P-Net levels;
* **motion zones**: where the frame changed since the last analysed frame. Changes are measured on
  a grey thumbnail (longer side :data:`THUMB_SIDE`, ~12 px cells at 1080p; a cell changed when it
  differs by more than :data:`CELL_DELTA` grey levels); cells inside track zones are left out (the
  tracked face moving is not news), the rest is grouped into connected zones, each grown by the
  smallest face searched for and half its own size. They get the camera's full pyramid (the same
  P-Net scales, relative to full-resolution pixels, as a full scan), so a face walking in, appearing
  from behind something or turning towards the camera is found in the frame it appears.

When motion covers more than :data:`MAX_MOTION_SHARE` of the frame (a camera moved, lights changed)
the frame gets a full scan. A face that appears without any motion (it cannot, in practice; or one
standing inside another face's zone) is found by the next full scan. Detections of overlapping zones
are merged (NMS). The ``mtcnn`` pipeline (``detector.pipeline``) keeps today's full scan of every
sampled frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sfapi.engines.faces import Faces
from sfapi.engines.mtcnn import MtcnnDetector, MtcnnSettings
from sfapi.engines.runtime import Session

__all__ = ["RangeMtcnn", "RegionDetector", "RegionStats", "THUMB_SIDE", "CELL_DELTA", "TRACK_MARGIN",
           "TRACK_SCALES", "MAX_MOTION_SHARE", "zones_from_motion"]

_PNET_CELL = 12
#: longer side of the grey thumbnail motion zones are found on
THUMB_SIDE = 160
#: grey levels (0..255) by which a thumbnail cell must change to count as motion
CELL_DELTA = 12
#: a track zone reaches this many face sides past the face box on every edge
TRACK_MARGIN = 0.6
#: faces searched for in a track zone: this range x the track's face side
TRACK_SCALES = (0.6, 1.7)
#: past this share of the frame in motion zones, the frame gets a full scan instead
MAX_MOTION_SHARE = 0.5


class RangeMtcnn(MtcnnDetector):
    """MTCNN whose P-Net pyramid stops at faces of ``max_face_size`` pixels (None: no limit)."""

    def __init__(self, pnet: Session, rnet: Session, onet: Session, settings: MtcnnSettings,
                 max_face_size: float | None = None) -> None:
        super().__init__(pnet, rnet, onet, settings)
        self.max_face_size = max_face_size

    def pnet_scales(self, h: int, w: int) -> list[float]:
        scales = super().pnet_scales(h, w)
        if self.max_face_size is None:
            return scales
        # a level of scale s finds faces of about 12 / s image pixels
        kept = [s for s in scales if _PNET_CELL / s <= self.max_face_size]
        return kept or scales[-1:]


@dataclass
class RegionStats:
    """Counters of one camera's region pipeline."""

    full_scans: int = 0
    region_frames: int = 0
    zones: int = 0
    zone_pixels: int = 0


def _thumb(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def zones_from_motion(changed: np.ndarray, cell: tuple[float, float], grow_px: float,
                      size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Zones ``(x1, y1, x2, y2)`` in frame pixels around the connected groups of ``changed`` cells
    (a bool thumbnail mask; ``cell`` = frame pixels per cell (x, y)), each grown by ``grow_px`` and
    half its own size, clipped to ``size`` (w, h); overlapping zones are joined."""
    w, h = size
    if not changed.any():
        return []
    mask = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for x, y, bw, bh, _area in stats[1:n]:
        x1, y1, x2, y2 = x * cell[0], y * cell[1], (x + bw) * cell[0], (y + bh) * cell[1]
        g = grow_px + 0.5 * max(x2 - x1, y2 - y1)
        boxes.append([max(x1 - g, 0), max(y1 - g, 0), min(x2 + g, w), min(y2 + g, h)])
    merged = True
    while merged and len(boxes) > 1:  # join overlapping zones until none overlap
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(int(b[0]), int(b[1]), int(np.ceil(b[2])), int(np.ceil(b[3]))) for b in boxes]


class RegionDetector:
    """The ``regions`` pipeline of one camera (stateful: the last thumbnail and full-scan time).
    Not thread-safe: one camera analyses one frame at a time."""

    def __init__(self, full: MtcnnDetector, views: "ViewSource", min_face_px: int,
                 full_scan_interval_s: float) -> None:
        self.full = full
        self.views = views
        self.min_face_px = min_face_px
        self.interval = full_scan_interval_s
        self.stats = RegionStats()
        self._ref: np.ndarray | None = None
        self._last_full: float | None = None

    def reset(self) -> None:
        """A new connection: the next frame gets a full scan."""
        self._ref = None
        self._last_full = None

    def detect(self, image: np.ndarray, t: float, tracks: list[tuple[np.ndarray, np.ndarray]]) -> Faces:
        """Faces of ``image`` (RGB) at stream time ``t``; ``tracks``: (last box, predicted box) of
        each live track, in ``image`` pixels."""
        h, w = image.shape[:2]
        thumb = _thumb(image)
        ref, self._ref = self._ref, thumb
        if (ref is None or ref.shape != thumb.shape or self._last_full is None
                or t - self._last_full >= self.interval - 1e-6):
            return self._full_scan(image, t)
        cell = (w / thumb.shape[1], h / thumb.shape[0])
        zones: list[tuple[tuple[int, int, int, int], MtcnnDetector]] = []
        covered = np.zeros(thumb.shape, bool)
        for last, pred in tracks:
            side = float(np.sqrt(max(last[2] - last[0], 1.0) * max(last[3] - last[1], 1.0)))
            m = TRACK_MARGIN * side
            x1, y1 = max(min(last[0], pred[0]) - m, 0), max(min(last[1], pred[1]) - m, 0)
            x2, y2 = min(max(last[2], pred[2]) + m, w), min(max(last[3], pred[3]) + m, h)
            if x2 - x1 < _PNET_CELL or y2 - y1 < _PNET_CELL:
                continue
            zone = (int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)))
            view = self.views.zone_view(max(float(_PNET_CELL), TRACK_SCALES[0] * side), TRACK_SCALES[1] * side)
            zones.append((zone, view))
            covered[int(y1 / cell[1]):int(np.ceil(y2 / cell[1])), int(x1 / cell[0]):int(np.ceil(x2 / cell[0]))] = True
        changed = (np.abs(thumb.astype(np.int16) - ref.astype(np.int16)) > CELL_DELTA) & ~covered
        moving = zones_from_motion(changed, cell, float(self.min_face_px), (w, h))
        if sum((z[2] - z[0]) * (z[3] - z[1]) for z in moving) > MAX_MOTION_SHARE * w * h:
            return self._full_scan(image, t)
        motion_view = self.views.zone_view(float(self.min_face_px), None)
        zones += [(z, motion_view) for z in moving]
        self.stats.region_frames += 1
        parts = []
        for (x1, y1, x2, y2), view in zones:
            self.stats.zones += 1
            self.stats.zone_pixels += (x2 - x1) * (y2 - y1)
            found = view.detect(image[y1:y2, x1:x2])
            if len(found):
                shift = np.array([x1, y1], np.float32)
                parts.append(Faces(found.boxes + np.tile(shift, 2), found.scores, found.landmarks + shift))
        return _merge(parts)

    def _full_scan(self, image: np.ndarray, t: float) -> Faces:
        self._last_full = t
        self.stats.full_scans += 1
        return self.full.detect(image)


class ViewSource:
    """What :class:`RegionDetector` needs from the shared detector: cascade views for zones."""

    def zone_view(self, min_face_px: float, max_face_px: float | None) -> MtcnnDetector:  # pragma: no cover
        raise NotImplementedError


def _merge(parts: list[Faces], iou: float = 0.4) -> Faces:
    """The faces of every zone, duplicates (overlapping zones) dropped, best score first."""
    if not parts:
        return Faces.empty()
    faces = Faces.concat(parts) if len(parts) > 1 else parts[0]
    if len(parts) == 1 or len(faces) < 2:
        order = np.argsort(-faces.scores, kind="stable")
        return Faces(faces.boxes[order], faces.scores[order], faces.landmarks[order])
    b = faces.boxes.astype(np.float64)
    area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    keep: list[int] = []
    for i in np.argsort(-faces.scores, kind="stable"):
        dup = False
        for k in keep:
            iw = min(b[i, 2], b[k, 2]) - max(b[i, 0], b[k, 0])
            ih = min(b[i, 3], b[k, 3]) - max(b[i, 1], b[k, 1])
            inter = max(iw, 0) * max(ih, 0)
            if inter > iou * (area[i] + area[k] - inter):
                dup = True
                break
        if not dup:
            keep.append(int(i))
    idx = np.asarray(keep, np.intp)
    return Faces(faces.boxes[idx], faces.scores[idx], faces.landmarks[idx])
