"""Best-face selection per track, in FindFace's two modes.

* ``overall``: one pick per track, the best face seen over the whole track, made when the track
  ends (missed longer than the miss interval, reached its maximum length, or the stream ended).
* ``realtime`` (``overall_only: false``): the best face of every ``realtime_post_interval`` of the
  track; with ``realtime_post_first_immediately`` the first acceptable face is picked at once; without
  ``realtime_post_every_interval`` an interval's best is picked only if it beats the last pick.
  The overall pick is still made when the track ends.

Only faces that pass the camera's filters are candidates; the others still extend their track. The
size filter decides whether a track is posted: every track with a face of ``filter_min_size`` and
up is posted once in ``overall`` mode, whatever the pose. Quality only ranks the faces of a track
("best" is the highest; ties keep the earlier face); ``filter_min_quality`` (default 0) is an opt-in
floor below which a face is never posted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from video_worker.config import CameraSettings
from video_worker.tracker import Track

__all__ = ["Observation", "Pick", "BestFaceSelector"]

BsType = Literal["overall", "realtime"]


@dataclass(frozen=True, eq=False)
class Observation:
    """One detected face in one analysed frame (coordinates in the analysed, rotated frame)."""

    frame_no: int
    t: float  # stream seconds
    timestamp: float  # seconds since the epoch, what the post says
    box: np.ndarray  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2)
    score: float
    quality: float
    sharpness: float
    yaw: float
    roll: float
    frame: np.ndarray  # the analysed RGB frame (shared by the faces of that frame; never written)
    pitch: float = 0.0
    #: the factors of ``quality`` (score, size, pose, sharpness), for detectorParams
    parts: dict[str, float] | None = None

    @property
    def size(self) -> float:
        """Face side in pixels (geometric mean of box width and height)."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


@dataclass(frozen=True, eq=False)
class Pick:
    """A face chosen to be posted."""

    bs_type: BsType
    obs: Observation
    track_id: int
    track_start_frame: int
    track_start_t: float
    track_start_timestamp: float
    track_end_frame: int | None  # None while the track is alive (realtime picks)
    track_end_t: float | None
    track_frames: int


@dataclass
class _TrackState:
    first_timestamp: float
    best: Observation | None = None
    interval_start: float | None = None
    interval_best: Observation | None = None
    last_posted_quality: float = -1.0
    posted: int = 0


class BestFaceSelector:
    """Keeps the best faces of live tracks and decides what is posted (one camera)."""

    def __init__(self, settings: CameraSettings) -> None:
        self.s = settings
        self._states: dict[int, _TrackState] = {}

    def accepts(self, obs: Observation) -> bool:
        """Whether a face passes the camera's filters."""
        return (self.s.filter_min_size <= obs.size <= self.s.filter_max_size
                and obs.quality >= self.s.filter_min_quality)

    def bar(self, track_id: int) -> float:
        """The quality a new face of track ``track_id`` must beat to change any pick (overall mode:
        the track's best so far); -1 when any face may matter (a new track, realtime mode). The
        analyzer skips the pose network for faces that cannot reach it."""
        state = self._states.get(track_id)
        if not self.s.overall_only or state is None or state.best is None:
            return -1.0
        return state.best.quality

    def observe(self, track: Track, obs: Observation) -> list[Pick]:
        """Record a face of ``track``; returns the realtime picks it triggers."""
        state = self._states.get(track.id)
        if state is None:
            state = self._states[track.id] = _TrackState(first_timestamp=obs.timestamp)
        if not self.accepts(obs):
            return self._close_interval(track, state, obs.t) if not self.s.overall_only else []
        if state.best is None or obs.quality > state.best.quality:
            state.best = obs
        if self.s.overall_only:
            return []
        picks: list[Pick] = []
        if self.s.realtime_post_first_immediately and state.posted == 0:
            picks.append(self._pick("realtime", track, state, obs, ended=False))
            state.interval_start = obs.t
            return picks
        picks += self._close_interval(track, state, obs.t)
        if state.interval_start is None:
            state.interval_start = obs.t
        if state.interval_best is None or obs.quality > state.interval_best.quality:
            state.interval_best = obs
        return picks

    def end(self, track: Track) -> list[Pick]:
        """``track`` ended: the pending realtime pick, then the overall pick."""
        state = self._states.pop(track.id, None)
        if state is None:
            return []
        picks: list[Pick] = []
        if not self.s.overall_only and state.interval_best is not None:
            if self.s.realtime_post_every_interval or state.interval_best.quality > state.last_posted_quality:
                picks.append(self._pick("realtime", track, state, state.interval_best, ended=True))
        if state.best is not None:
            picks.append(self._pick("overall", track, state, state.best, ended=True))
        return picks

    def _close_interval(self, track: Track, state: _TrackState, t: float) -> list[Pick]:
        if state.interval_start is None or t - state.interval_start < self.s.realtime_post_interval - 1e-6:
            return []
        picks = []
        best = state.interval_best
        if best is not None and (self.s.realtime_post_every_interval
                                 or best.quality > state.last_posted_quality):
            picks.append(self._pick("realtime", track, state, best, ended=False))
        state.interval_best = None
        # intervals follow each other; a long gap starts a new one at t
        state.interval_start += self.s.realtime_post_interval * max(
            1, int((t - state.interval_start) // self.s.realtime_post_interval))
        return picks

    @staticmethod
    def _pick(bs_type: BsType, track: Track, state: _TrackState, obs: Observation,
              ended: bool) -> Pick:
        if bs_type == "realtime":
            state.posted += 1
            state.last_posted_quality = max(state.last_posted_quality, obs.quality)
        return Pick(bs_type, obs, track.id, track.start_frame, track.start_t, state.first_timestamp,
                    track.last_frame if ended else None, track.last_t if ended else None,
                    track.frames)
