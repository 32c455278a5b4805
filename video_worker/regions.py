"""The ``regions`` detection pipeline: full-frame MTCNN now and then, cheap re-detection in between.

Today's MTCNN over a whole 1080p frame costs ~40 ms of CPU, most of it P-Net on a 384 x 216
pyramid, and nearly all of it is spent on background where nothing changed. Between two full scans
(every ``full_scan_interval_s`` of stream time, and on the first frame of a connection) this pipeline
runs the same cascade only on crops of the full-resolution frame:

* **tracks**: each live track's face is first looked for where its velocity predicts it: O-Net
  alone (the cascade's last stage, which scores a candidate box and regresses it onto the face, as
  it does for R-Net's boxes in a full scan) on that box, once more from the corrected box when the
  first pass moved the box's centre by more than a tenth of its side (the landmarks, which face0's
  alignment uses, settle on a centred crop), and on the track's last box when the prediction found
  nothing (a face that stopped; only for a track found in the previous analysed frame: a lost
  track's last box is where the face no longer is). That is ~1 ms a face instead of a cascade.
  The zone of a confirmed track (its last box joined with the new one, grown by
  :data:`TRACK_MARGIN` of the face side on every edge) is left out of the motion below: the
  tracked face moving is not news. A track O-Net does not confirm is left to the motion zones (a
  face that changed course or walked out from behind something moves) and to the next full scan.
  A track that did not move (its predicted box is its last) is not tried twice on the same crop;
* **motion zones**: where the frame changed since the last analysed frame. Changes are measured on
  a grey thumbnail (longer side :data:`THUMB_SIDE`, ~12 px cells at 1080p; a cell changed when it
  differs by more than :data:`CELL_DELTA` grey levels); cells inside confirmed tracks' zones are
  left out, the rest is grouped into connected zones, each grown by the smallest face searched for
  and half its shorter side. They get the camera's full pyramid (the same P-Net scales, relative to
  full-resolution pixels, as a full scan), so a face walking in, appearing from behind something or
  turning towards the camera is found in the frame it appears. P-Net runs on each level only where
  its windows meet the changed cells (the zone's cores; a face that appeared or moved changed the
  pixels under it), with the same scores as on the whole level (:func:`cascade`): the zone's
  margin is what a face only partly over a change needs to be whole, not a place to look for faces.

The faces O-Net confirmed on tracks are known: a zone's or a full scan's cascade drops the P-Net and
R-Net candidates that are one of them (:data:`KNOWN_IOU`) instead of sending them to R-Net and O-Net
again. A full scan that falls due runs after the tracks were refined, for the same reason.

A full scan that falls due when nothing in the frame changed since the last one (no face-sized
change against that scan's thumbnail) is put off: it would see what the last one saw.

When motion covers more than :data:`MAX_MOTION_SHARE` of the frame (a camera moved, lights changed)
the frame gets a full scan. A face that appears without any motion (or right beside a tracked face,
or in a zone's margin clear of its changed cells) is found by the next full scan. Detections of
overlapping zones are merged (NMS). The ``mtcnn`` pipeline (``detector.pipeline``) keeps today's
full scan of every sampled frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from facestack.vision.engines.faces import Faces
from facestack.vision.engines.mtcnn import (PNET_CELL, MtcnnDetector, MtcnnSettings, _as_rgb_u8, _HalvingPyramid,
                                            _square)
from facestack.vision.engines.runtime import Session
from video_worker.tracker import iou_matrix

__all__ = ["RangeMtcnn", "RegionDetector", "RegionStats", "TrackHint", "THUMB_SIDE", "CELL_DELTA",
           "TRACK_MARGIN", "MAX_MOTION_SHARE", "KNOWN_IOU", "cascade", "motion_zones", "zones_from_motion"]

log = logging.getLogger(__name__)

#: a box (x1, y1, x2, y2) in whole pixels
Box = tuple[int, int, int, int]
#: longer side of the grey thumbnail motion zones are found on
THUMB_SIDE = 160
#: grey levels (0..255) by which a thumbnail cell must change to count as motion
CELL_DELTA = 12
#: a track zone reaches this many face sides past the face box on every edge
TRACK_MARGIN = 0.8
#: past this share of the frame in motion zones, the frame gets a full scan instead
MAX_MOTION_SHARE = 0.5
#: a cascade candidate overlapping the square of a face O-Net already confirmed (a tracked face) by
#: this IoU or more is that face: it goes no further than the stage that proposed it
KNOWN_IOU = 0.5


class TrackHint(NamedTuple):
    """A live track as :meth:`RegionDetector.detect` sees it, in ``image`` pixels."""

    last: np.ndarray  # its box when it was last found
    predicted: np.ndarray  # where its velocity puts it now
    lost: bool = False  # not found in the previous analysed frame


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
        kept = [s for s in scales if PNET_CELL / s <= self.max_face_size]
        return kept or scales[-1:]

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> Faces:
        """O-Net alone on candidate ``boxes`` (n, 4) of ``image`` (squared first): the faces it
        confirms (score above the O-Net threshold), regressed, with landmarks, best first."""
        boxes = np.round(_square(np.asarray(boxes, np.float64).reshape(-1, 4)))
        if not len(boxes):
            return Faces.empty()
        found, scores, landmarks = self._stage_onet(_HalvingPyramid(image), boxes)
        order = np.argsort(-scores, kind="stable")
        return Faces(found[order].astype(np.float32), scores[order].astype(np.float32),
                     landmarks[order].astype(np.float32))


def cascade(det: MtcnnDetector, image: np.ndarray, known: np.ndarray | None = None,
            cores: list[Box] | None = None) -> Faces:
    """``det``'s cascade on ``image`` (RGB), as :meth:`MtcnnDetector.detect`, except that

    * the P-Net and R-Net candidates overlapping a ``known`` face (n, 4; :data:`KNOWN_IOU` with its
      square) are dropped: that face was found already, R-Net and O-Net would only find it again;
    * with ``cores`` (boxes in ``image`` pixels: where it changed), P-Net runs only on the part of
      each pyramid level whose windows meet a core, and keeps only those windows (each exactly as
      P-Net on the whole level scores it): a face that appeared or moved changed pixels under it;
      the rest of the zone is there only so that a face only partly over a change is whole.
    """
    image = _as_rgb_u8(image)
    if min(image.shape[:2]) < PNET_CELL:
        return Faces.empty()
    squares = None if known is None or not len(known) else _square(np.asarray(known, np.float64).reshape(-1, 4))

    def unknown(boxes: np.ndarray) -> np.ndarray:
        if squares is None or not len(boxes):
            return boxes
        return boxes[iou_matrix(boxes, squares).max(axis=1) < KNOWN_IOU]

    pyr = _HalvingPyramid(image)
    return det.cascade(pyr, det._stage_pnet(pyr, None if cores is None else np.asarray(cores, np.float64)),
                       unknown)


@dataclass
class RegionStats:
    """Counters of one camera's region pipeline."""

    full_scans: int = 0
    full_scans_put_off: int = 0  # due, but nothing changed since the last one
    region_frames: int = 0
    tracks_refined: int = 0  # track faces confirmed by O-Net alone
    zones: int = 0
    zone_pixels: int = 0


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """Grey thumbnail, longer side :data:`THUMB_SIDE`: each cell averages 2 x 2 samples of the frame
    (nearest-neighbour sampling first: an area filter over a whole 1080p frame costs ~3 ms)."""
    h, w = rgb.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    grid = cv2.resize(rgb, (2 * tw, 2 * th), interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(grid, (tw, th), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def zones_from_motion(changed: np.ndarray, cell: tuple[float, float], grow_px: float,
                      size: tuple[int, int]) -> list[Box]:
    """Zones ``(x1, y1, x2, y2)`` in frame pixels around the connected groups of ``changed`` cells
    (a bool thumbnail mask; ``cell`` = frame pixels per cell (x, y)), each grown by ``grow_px`` and
    half its shorter side, clipped to ``size`` (w, h); overlapping zones are joined. A group
    narrower than half of ``grow_px`` (the smallest face) in either direction is left out: a face
    that small or that thin is not there yet (a face walking in is found a frame later), and the
    slivers a moving edge leaves around a tracked face cost nothing."""
    return [zone for zone, _ in motion_zones(changed, cell, grow_px, size)]


def motion_zones(changed: np.ndarray, cell: tuple[float, float], grow_px: float,
                 size: tuple[int, int]) -> list[tuple[Box, list[Box]]]:
    """:func:`zones_from_motion`, each zone with its cores: the boxes (frame pixels) of the groups
    of changed cells it was grown from, a cell wider on every side."""
    w, h = size
    if not changed.any():
        return []
    mask = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes: list[list[float]] = []
    cores: list[list[Box]] = []
    for x, y, bw, bh, _area in stats[1:n]:
        # the dilation added a cell on each side
        if min((bw - 2) * cell[0], (bh - 2) * cell[1]) < grow_px / 2:
            continue
        x1, y1, x2, y2 = x * cell[0], y * cell[1], (x + bw) * cell[0], (y + bh) * cell[1]
        g = grow_px + 0.5 * min(x2 - x1, y2 - y1)
        boxes.append([max(x1 - g, 0), max(y1 - g, 0), min(x2 + g, w), min(y2 + g, h)])
        cores.append([(int(x1), int(y1), min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h))])
    merged = True
    while merged and len(boxes) > 1:  # join overlapping zones until none overlap
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    cores[i] += cores[j]
                    del boxes[j], cores[j]
                    merged = True
                    break
            if merged:
                break
    return [((int(b[0]), int(b[1]), int(np.ceil(b[2])), int(np.ceil(b[3]))), c) for b, c in zip(boxes, cores)]


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
        self._full_ref: np.ndarray | None = None  # the thumbnail of the last full scan
        self._last_full: float | None = None

    def reset(self) -> None:
        """A new connection: the next frame gets a full scan."""
        self._ref = None
        self._full_ref = None
        self._last_full = None

    def detect(self, image: np.ndarray, t: float,
               tracks: list[TrackHint] | list[tuple[np.ndarray, np.ndarray]]) -> Faces:
        """Faces of ``image`` (RGB) at stream time ``t``; ``tracks``: each live track's
        :class:`TrackHint` (or its ``(last, predicted)`` boxes), in ``image`` pixels."""
        hints = [TrackHint(*tr) for tr in tracks]
        h, w = image.shape[:2]
        thumb = _thumb(image)
        ref, self._ref = self._ref, thumb
        cell = (w / thumb.shape[1], h / thumb.shape[0])
        if ref is None or ref.shape != thumb.shape or self._last_full is None or self._full_ref is None:
            return self._full_scan(image, t, thumb, [])
        parts, confirmed = self._refine_tracks(image, hints)
        if t - self._last_full >= self.interval - 1e-6:
            since = np.abs(thumb.astype(np.int16) - self._full_ref.astype(np.int16)) > CELL_DELTA
            if zones_from_motion(since, cell, float(self.min_face_px), (w, h)):
                return self._full_scan(image, t, thumb, parts)
            self._last_full = t
            self.stats.full_scans_put_off += 1
        covered = np.zeros(thumb.shape, bool)
        for hint, face in zip(confirmed, parts):
            last = hint.last
            now = face.boxes[0].astype(np.float64)
            side = float(np.sqrt(max(last[2] - last[0], 1.0) * max(last[3] - last[1], 1.0)))
            m = TRACK_MARGIN * side
            x1, y1 = max(min(last[0], now[0]) - m, 0), max(min(last[1], now[1]) - m, 0)
            x2, y2 = min(max(last[2], now[2]) + m, w), min(max(last[3], now[3]) + m, h)
            covered[int(y1 / cell[1]):int(np.ceil(y2 / cell[1])), int(x1 / cell[0]):int(np.ceil(x2 / cell[0]))] = True
        changed = (np.abs(thumb.astype(np.int16) - ref.astype(np.int16)) > CELL_DELTA) & ~covered
        moving = motion_zones(changed, cell, float(self.min_face_px), (w, h))
        if sum((z[2] - z[0]) * (z[3] - z[1]) for z, _ in moving) > MAX_MOTION_SHARE * w * h:
            return self._full_scan(image, t, thumb, parts)
        self.stats.region_frames += 1
        log.debug("t=%.2f tracks %d (O-Net confirmed %d), motion zones %s", t, len(hints), len(confirmed),
                  [z for z, _ in moving])
        return _merge(parts + self._scan_zones(image, moving, _boxes(parts)))

    def _scan_zones(self, image: np.ndarray, moving: list[tuple[Box, list[Box]]],
                    known: np.ndarray) -> list[Faces]:
        """The cascade in each motion zone (near its cores), ``known`` faces left out: the faces
        found, in frame pixels."""
        view = self.views.zone_view(float(self.min_face_px), None)
        out = []
        for (x1, y1, x2, y2), cores in moving:
            self.stats.zones += 1
            self.stats.zone_pixels += (x2 - x1) * (y2 - y1)
            found = cascade(view, image[y1:y2, x1:x2], known - np.array([x1, y1, x1, y1], np.float32),
                            [(a - x1, b - y1, c - x1, d - y1) for a, b, c, d in cores])
            if len(found):
                shift = np.array([x1, y1], np.float32)
                out.append(Faces(found.boxes + np.tile(shift, 2), found.scores, found.landmarks + shift))
        return out

    def _refine_tracks(self, image: np.ndarray, tracks: list[TrackHint]
                       ) -> tuple[list[Faces], list[TrackHint]]:
        """O-Net on each track's predicted box, then on the last box of those it did not confirm
        and that were found in the previous analysed frame: (the face of each confirmed track,
        those tracks), in the same order."""
        if not tracks:
            return [], []
        refiner = self.views.refiner()
        faces: dict[int, Faces] = {}
        for use_last in (False, True):
            todo = [k for k in range(len(tracks)) if k not in faces]
            if not todo:
                break
            if use_last:  # a lost track's last box is stale; a still one's is the crop just refused
                todo = [k for k in todo if not tracks[k].lost
                        and not np.array_equal(_crop_box(tracks[k].last), _crop_box(tracks[k].predicted))]
                if not todo:
                    break
            cands = np.stack([np.asarray(tracks[k].last if use_last else tracks[k].predicted, np.float64)
                              for k in todo])
            found = refiner.refine(image, cands)
            used = np.zeros(len(found), bool)
            for k, cand in zip(todo, cands):
                j = _best_overlap(cand, found.boxes, used)
                if j is None:
                    continue
                used[j] = True
                face = found[np.array([j])]
                side = float(np.sqrt(max(cand[2] - cand[0], 1.0) * max(cand[3] - cand[1], 1.0)))
                b = face.boxes[0].astype(np.float64)
                moved = max(abs(b[0] + b[2] - cand[0] - cand[2]), abs(b[1] + b[3] - cand[1] - cand[3])) / 2
                if moved > 0.1 * side:  # off-centre crop: landmarks settle with a second, centred pass
                    again = refiner.refine(image, face.boxes)
                    if len(again):
                        face = again[np.array([0])]
                faces[k] = face
        order = sorted(faces)
        self.stats.tracks_refined += len(order)
        return [faces[k] for k in order], [tracks[k] for k in order]

    def _full_scan(self, image: np.ndarray, t: float, thumb: np.ndarray, parts: list[Faces]) -> Faces:
        """The cascade over the whole frame; ``parts``: the tracked faces O-Net confirmed already
        (kept, not looked for again)."""
        self._last_full = t
        self._full_ref = thumb
        self.stats.full_scans += 1
        return _merge(parts + [cascade(self.full, image, _boxes(parts))])


class ViewSource:
    """What :class:`RegionDetector` needs from the shared detector: cascade views for zones."""

    def zone_view(self, min_face_px: float, max_face_px: float | None) -> MtcnnDetector:  # pragma: no cover
        raise NotImplementedError

    def refiner(self) -> RangeMtcnn:  # pragma: no cover
        raise NotImplementedError


def _crop_box(box: np.ndarray) -> np.ndarray:
    """The square, whole-pixel box :meth:`RangeMtcnn.refine` crops for candidate ``box``."""
    return np.round(_square(np.asarray(box, np.float64).reshape(1, 4)))[0]


def _boxes(parts: list[Faces]) -> np.ndarray:
    """The boxes (n, 4) of every face of ``parts``."""
    return np.concatenate([p.boxes for p in parts]) if parts else np.zeros((0, 4), np.float32)


def _best_overlap(box: np.ndarray, boxes: np.ndarray, used: np.ndarray, least: float = 0.3) -> int | None:
    """Index of the unused box of ``boxes`` overlapping ``box`` most (IoU >= ``least``)."""
    best, best_iou = None, least
    for j, b in enumerate(np.asarray(boxes, np.float64)):
        if used[j]:
            continue
        iw = min(box[2], b[2]) - max(box[0], b[0])
        ih = min(box[3], b[3]) - max(box[1], b[1])
        inter = max(iw, 0.0) * max(ih, 0.0)
        union = (box[2] - box[0]) * (box[3] - box[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        iou = inter / max(union, 1e-9)
        if iou >= best_iou:
            best, best_iou = j, iou
    return best


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
