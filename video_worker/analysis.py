"""Per-camera analysis of sampled frames: detect, score, track, select, build posts.

Detection follows ``detector.pipeline`` (:mod:`video_worker.regions`). Quality
(:mod:`facestack.vision.engines.quality`) uses the pose network's angles. The network (~5 ms a face) is spared
twice: a face whose quality without the pose factor (an upper bound: the factor is at most 1)
cannot beat its track's best so far is not scored at all, and a track's pose is measured at most
every :data:`POSE_EVERY_S` of stream time (a head turns little in that time; in between, its last
measurement is used). The sharpness chip is spared the same way: a face that could not beat its
track's best even perfectly sharp (with the pose its quality would use: the track's last one while
fresh, else frontal) gets none.

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

from facestack.vision.engines.align import extract_chips
from facestack.vision.engines.faces import Faces
from facestack.vision.engines.quality import quality_parts, sharpness
from video_worker.config import CameraSettings
from video_worker.detector import SharedDetector
from video_worker.posts import Post, PostBuilder
from video_worker.regions import RegionDetector, TrackHint
from video_worker.selector import BestFaceSelector, Observation, Pick
from video_worker.tracker import IouTracker

__all__ = ["AnalysisFrame", "AnalysisResult", "CameraAnalyzer"]

log = logging.getLogger(__name__)

#: chip geometry used for the sharpness factor of quality: sfapi's facen chip, so the worker's
#: quality and sfapi's ``quality`` agree
_SHARP_CHIP = (150, 0.25)
#: a track's head pose is measured at most this often (stream seconds)
POSE_EVERY_S = 1.0


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
        self.regions: RegionDetector | None = None
        #: pose network runs (faces whose quality could beat their track's best)
        self.pose_runs = 0
        self._poses: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (t, yaw pitch roll)
        self._prev_frame: int | None = None  # the previous analysed frame's number

    def process(self, item: AnalysisFrame) -> AnalysisResult:
        """Analyse one frame; returns the faces and the posts due (in order)."""
        started = time.perf_counter()
        faces = self._detect(item.rgb, item.t)
        detect_s = time.perf_counter() - started
        before = self.tracker.created
        ids, ended = self.tracker.update(item.t, item.frame_no, faces.boxes)
        self._prev_frame = item.frame_no
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
            for i, o in self._observations(item, faces, ids):
                picks += self.selector.observe(by_id[int(ids[i])], o)
        for track in full:
            picks += self.selector.end(track)
        for track in ended:
            self._poses.pop(track.id, None)
        posts = [self.builder.build(p) for p in picks]
        return AnalysisResult(faces, posts, self.tracker.created - before, len(ended), detect_s)

    def finish(self) -> list[Post]:
        """End every track (end of stream, reconnect, stop): the posts still due."""
        if self.regions is not None:
            self.regions.reset()
        picks: list[Pick] = []
        self._poses.clear()
        for track in self.tracker.finish():
            picks += self.selector.end(track)
        return [self.builder.build(p) for p in picks]

    # --- steps ---------------------------------------------------------------------------------
    def _detect(self, rgb: np.ndarray, t: float) -> Faces:
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
        if self.detector.cfg.pipeline == "regions":
            if self.regions is None:
                self.regions = RegionDetector(det, self.detector, self.s.filter_min_size,
                                              self.detector.cfg.full_scan_interval_s)
            self.regions.full = det  # follows the frame size
            shift = np.array([x0, y0, x0, y0], np.float64)
            tracks = [TrackHint(tr.box - shift, tr.predict(t) - shift, tr.last_frame != self._prev_frame)
                      for tr in self.tracker.live.values()]
            faces = self.regions.detect(image, t, tracks)
        else:
            faces = det.detect(image)
        if (x0 or y0) and len(faces):
            shift = np.array([x0, y0], np.float32)
            faces = Faces(faces.boxes + np.tile(shift, 2), faces.scores, faces.landmarks + shift,
                          faces.rotation)
        return faces

    def _observations(self, item: AnalysisFrame, faces: Faces,
                      ids: np.ndarray) -> list[tuple[int, Observation]]:
        """(index, observation) of the faces that may change their track's pick."""
        bars = np.array([self.selector.bar(int(i)) for i in ids], np.float32)
        # the pose each face's quality will use: its track's last measurement while it is fresh
        # (below), else not known yet: frontal, a pose factor of 1, for the bounds
        pose_bound = np.zeros((len(faces), 3), np.float32)
        for i, tid in enumerate(ids):
            last = self._poses.get(int(tid))
            if last is not None and item.t - last[0] < POSE_EVERY_S - 1e-6:
                pose_bound[i] = last[1]
        # quality with a sharpness factor of 1, then with the real sharpness: what each face could
        # reach at best; the chips and the pose network are spent only on those that may win
        upper = quality_parts(faces.scores, faces.boxes, faces.landmarks, None, pose=pose_bound)["quality"]
        wanted = [i for i in range(len(faces)) if upper[i] > bars[i]]
        if not wanted:
            return []
        chips = extract_chips(item.rgb, faces.landmarks[wanted], *_SHARP_CHIP)
        sharp = np.zeros(len(faces), np.float32)
        sharp[wanted] = sharpness(np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in chips]))
        upper = quality_parts(faces.scores, faces.boxes, faces.landmarks, sharp, pose=pose_bound)["quality"]
        wanted = [i for i in wanted if upper[i] > bars[i]]
        if not wanted:
            return []
        sub = faces[np.asarray(wanted, np.intp)]
        pose = np.zeros((len(wanted), 3), np.float32)
        stale = []
        for k, i in enumerate(wanted):
            last = self._poses.get(int(ids[i]))
            if last is not None and item.t - last[0] < POSE_EVERY_S - 1e-6:
                pose[k] = last[1]
            else:
                stale.append(k)
        if stale:
            pose[stale] = self.detector.pose.estimate(item.rgb, sub.boxes[stale])
            self.pose_runs += len(stale)
            for k in stale:
                self._poses[int(ids[wanted[k]])] = (item.t, pose[k].copy())
        parts = quality_parts(sub.scores, sub.boxes, sub.landmarks, sharp[wanted], pose=pose)
        out = []
        for k, i in enumerate(wanted):
            factors = {name: float(parts[name][k]) for name in ("score", "size", "pose", "sharpness")}
            out.append((i, Observation(item.frame_no, item.t, item.timestamp, faces.boxes[i].astype(np.float64),
                                       faces.landmarks[i].astype(np.float64), float(faces.scores[i]),
                                       float(parts["quality"][k]), float(sharp[i]), float(pose[k, 0]),
                                       float(pose[k, 2]), item.rgb, pitch=float(pose[k, 1]), parts=factors)))
        return out

