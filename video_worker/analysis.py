"""Per-camera analysis of sampled frames: detect, score, track, select, build posts.

:meth:`CameraAnalyzer.process` is CPU work and runs on the shared detector's thread pool, one frame
of a camera at a time (the camera's pipeline awaits each frame before sending the next), so the
tracker and the selector need no lock.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from sfapi.engines.align import extract_chips
from sfapi.engines.faces import Faces
from sfapi.engines.quality import pose_angles, quality_score, sharpness
from video_worker.config import CameraSettings
from video_worker.detector import SharedDetector
from video_worker.posts import Post, PostBuilder
from video_worker.selector import BestFaceSelector, Observation, Pick
from video_worker.tracker import IouTracker

__all__ = ["AnalysisFrame", "AnalysisResult", "CameraAnalyzer"]

log = logging.getLogger(__name__)

#: chip geometry used for the sharpness factor of quality: sfapi's facen chip, so the worker's
#: quality and sfapi's ``quality`` agree
_SHARP_CHIP = (150, 0.25)


@dataclass(frozen=True, eq=False)
class AnalysisFrame:
    """A sampled frame, rotated, ready for analysis."""

    frame_no: int
    t: float  # stream seconds since the job started reading (monotonic across reconnects)
    timestamp: float  # what posts say (epoch seconds)
    rgb: np.ndarray


@dataclass(frozen=True)
class AnalysisResult:
    """What one frame produced."""

    faces: Faces  # with track ids, in frame coordinates
    posts: list[Post]
    tracks_started: int
    tracks_ended: int
    detect_s: float


class CameraAnalyzer:
    """Detection, quality, tracking and best-face selection for one camera."""

    def __init__(self, detector: SharedDetector, settings: CameraSettings, builder: PostBuilder) -> None:
        self.detector = detector
        self.s = settings
        self.builder = builder
        self.tracker = IouTracker(settings.track_overlap_threshold, settings.track_miss_interval,
                                  settings.track_max_duration_frames)
        self.selector = BestFaceSelector(settings)
        self._tracks_seen = 0

    def process(self, item: AnalysisFrame) -> AnalysisResult:
        """Analyse one frame; returns the faces and the posts due (in order)."""
        started = time.perf_counter()
        faces = self._detect(item.rgb)
        detect_s = time.perf_counter() - started
        before = self.tracker.created
        ids, ended = self.tracker.update(item.t, item.frame_no, faces.boxes)
        faces = faces.with_track_ids(ids)
        # tracks that missed too long end first; tracks that reached their maximum length this frame
        # end after their last face is observed
        full = [tr for tr in ended if tr.last_frame == item.frame_no]
        picks: list[Pick] = []
        for track in ended:
            if track.last_frame != item.frame_no:
                picks += self.selector.end(track)
        if len(faces):
            by_id = {**self.tracker.live, **{tr.id: tr for tr in full}}
            for i, o in enumerate(self._observations(item, faces)):
                picks += self.selector.observe(by_id[int(ids[i])], o)
        for track in full:
            picks += self.selector.end(track)
        posts = [self.builder.build(p) for p in picks]
        return AnalysisResult(faces, posts, self.tracker.created - before, len(ended), detect_s)

    def finish(self) -> list[Post]:
        """End every track (end of stream, reconnect, stop): the posts still due."""
        picks: list[Pick] = []
        for track in self.tracker.finish():
            picks += self.selector.end(track)
        return [self.builder.build(p) for p in picks]

    # --- steps ---------------------------------------------------------------------------------
    def _detect(self, rgb: np.ndarray) -> Faces:
        h, w = rgb.shape[:2]
        x0 = y0 = 0
        image = rgb
        if self.s.roi is not None:
            x0, y0, x1, y1 = self.s.roi
            x1, y1 = min(x1, w), min(y1, h)
            if x1 - x0 < 12 or y1 - y0 < 12:
                return Faces.empty()
            image = rgb[y0:y1, x0:x1]
        det = self.detector.detector_for(self.s.filter_min_size, *image.shape[:2])
        faces = det.detect(image)
        if (x0 or y0) and len(faces):
            shift = np.array([x0, y0], np.float32)
            faces = Faces(faces.boxes + np.tile(shift, 2), faces.scores, faces.landmarks + shift,
                          faces.rotation)
        return faces

    def _observations(self, item: AnalysisFrame, faces: Faces) -> list[Observation]:
        chips = extract_chips(item.rgb, faces.landmarks, *_SHARP_CHIP)
        gray = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in chips])
        sharp = sharpness(gray)
        quality = quality_score(faces.scores, faces.boxes, faces.landmarks, sharp)
        yaw, roll = pose_angles(faces.landmarks)
        return [Observation(item.frame_no, item.t, item.timestamp, faces.boxes[i].astype(np.float64),
                            faces.landmarks[i].astype(np.float64), float(faces.scores[i]),
                            float(quality[i]), float(sharp[i]), float(yaw[i]), float(roll[i]), item.rgb)
                for i in range(len(faces))]

