"""Tracker and best-face selection on synthetic detections (no video, no detector)."""
from __future__ import annotations

import numpy as np
import pytest

from video_worker.config import CameraSettings
from video_worker.selector import BestFaceSelector, Observation
from video_worker.tracker import IouTracker, iou_matrix

FRAME = np.zeros((8, 8, 3), np.uint8)


def box(x: float, y: float = 0.0, side: float = 100.0) -> list[float]:
    return [x, y, x + side, y + side]


def obs(t: float, quality: float, frame_no: int = 0, b: list[float] | None = None) -> Observation:
    return Observation(frame_no, t, 1_700_000_000 + t, np.asarray(b or box(0), np.float64),
                       np.zeros((5, 2)), 0.99, quality, 1.0, 0.0, 0.0, FRAME)


def test_iou_matrix() -> None:
    m = iou_matrix(np.array([box(0)]), np.array([box(0), box(50), box(200)]))
    assert m.shape == (1, 3)
    assert m[0, 0] == pytest.approx(1.0) and m[0, 1] == pytest.approx(50 / 150) and m[0, 2] == 0.0


@pytest.mark.parametrize("step, keeps", [(20, True), (60, True), (90, False)])
def test_moving_face_keeps_its_track(step: float, keeps: bool) -> None:
    """With the velocity prediction, a face moving steadily keeps its track while each step
    overlaps its predicted box; a jump to a far place starts a new track."""
    tr = IouTracker(0.25, 1.0)
    ids = [int(tr.update(i * 0.2, i, np.array([box(i * step)]))[0][0]) for i in range(6)]
    assert (len(set(ids)) == 1) == keeps


@pytest.mark.parametrize("gap, same", [(0.8, True), (1.2, False)])
def test_miss_interval(gap: float, same: bool) -> None:
    tr = IouTracker(0.25, miss_interval=1.0)
    (a,), _ = tr.update(0.0, 0, np.array([box(0)]))
    _, ended = tr.update(gap / 2, 1, np.zeros((0, 4)))
    assert ended == []
    (b,), ended = tr.update(gap, 2, np.array([box(0)]))
    assert (a == b) == same
    assert [t.id for t in ended] == ([] if same else [a])


def test_two_faces_two_tracks_and_max_duration() -> None:
    tr = IouTracker(0.25, 1.0, max_frames=3)
    seen = []
    for i in range(7):
        ids, ended = tr.update(i * 0.2, i, np.array([box(0), box(300)]))
        seen.append(tuple(ids))
        if i == 2:
            assert sorted(t.frames for t in ended) == [3, 3]
    assert seen[0] == seen[1] == seen[2] and seen[3] != seen[2] and len(set(seen[0])) == 2
    assert len(tr.finish()) == 2


def _track(tracker: IouTracker, t: float, frame: int) -> object:
    ids, _ = tracker.update(t, frame, np.array([box(0)]))
    return tracker.live[int(ids[0])]


def run_selector(settings: CameraSettings, qualities: list[float], dt: float = 0.2) -> list[tuple[str, int, float]]:
    tr = IouTracker()
    sel = BestFaceSelector(settings)
    picks = []
    for i, q in enumerate(qualities):
        track = _track(tr, i * dt, i)
        picks += sel.observe(track, obs(i * dt, q, i))
    for track in tr.finish():
        picks += sel.end(track)
    return [(p.bs_type, p.obs.frame_no, p.obs.quality) for p in picks]


QUALITIES = [0.3, 0.5, 0.4, 0.2, 0.45, 0.44, 0.43, 0.6, 0.1, 0.2]  # 10 frames at 5 fps = 2 s


@pytest.mark.parametrize("settings, expected", [
    ({}, [("overall", 7, 0.6)]),
    ({"overall_only": False},  # intervals [0, 1) s = frames 0-4 and [1, 2) s = frames 5-9
     [("realtime", 1, 0.5), ("realtime", 7, 0.6), ("overall", 7, 0.6)]),
    ({"overall_only": False, "realtime_post_first_immediately": True},
     [("realtime", 0, 0.3), ("realtime", 1, 0.5), ("realtime", 7, 0.6), ("overall", 7, 0.6)]),
    ({"overall_only": False, "realtime_post_interval": 0.4},
     [("realtime", 1, 0.5), ("realtime", 7, 0.6), ("overall", 7, 0.6)]),
    ({"overall_only": False, "realtime_post_interval": 0.4, "realtime_post_every_interval": True},
     [("realtime", 1, 0.5), ("realtime", 2, 0.4), ("realtime", 4, 0.45), ("realtime", 7, 0.6),
      ("realtime", 9, 0.2), ("overall", 7, 0.6)]),
    ({"filter_min_quality": 0.7}, []),
])
def test_best_face_selection(settings: dict, expected: list) -> None:
    assert run_selector(CameraSettings(filter_min_size=12, **settings), QUALITIES) == expected
