"""The ``regions`` detection pipeline: full scans now and then, O-Net on tracked faces, the cascade
in motion zones in between; and the recall it keeps against the full MTCNN scan of every frame."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from facestack.vision.engines.mtcnn import _HalvingPyramid

from facestack.stack import clips
from video_worker.analysis import AnalysisFrame, CameraAnalyzer
from video_worker.config import CameraSettings, DetectorSection, ModelsSection
from video_worker.detector import SharedDetector
from video_worker.posts import PostBuilder
from video_worker.regions import RegionDetector, TrackHint, cascade, motion_zones, zones_from_motion


@pytest.fixture(scope="module")
def mtcnn_detector(models_dir: Path) -> SharedDetector:
    det = SharedDetector(ModelsSection(dir=models_dir), DetectorSection(threads=1, pipeline="mtcnn"))
    yield det
    det.close()


@pytest.fixture(scope="module")
def busy(detector: SharedDetector, data_dir: Path) -> tuple[clips.Scene, dict[str, Any]]:
    """The bench's busy scene at 720p (frames rendered, not encoded)."""
    scene = clips.busy_scene((1280, 720), 25, 20.0)
    side = max(a.patch or scene.patch for a in scene.appearances)
    photos = {k: data_dir / v for k, v in clips.BENCH_PHOTOS.items()}
    return scene, clips.face_patches(detector.detector_for(40, 480, 640), photos, side)


def test_motion_zones() -> None:
    changed = np.zeros((90, 160), bool)
    changed[10:20, 10:18] = True  # a face-sized change
    changed[50:52, 100:140] = True  # two cells high: too thin for a 60 px face at 12 px cells
    changed[60:70, 150:160] = True
    changed[66:80, 140:152] = True  # touches the previous one: one zone
    zones = zones_from_motion(changed, (12.0, 12.0), 60.0, (1920, 1080))
    assert len(zones) == 2
    first = min(zones)
    assert first[0] < 10 * 12 - 60 and first[2] > 18 * 12 + 60 and first[1] < 10 * 12 - 60
    assert all(0 <= z[0] < z[2] <= 1920 and 0 <= z[1] < z[3] <= 1080 for z in zones)
    assert zones_from_motion(np.zeros((90, 160), bool), (12.0, 12.0), 60.0, (1920, 1080)) == []


def test_full_scan_then_motion_then_track(detector: SharedDetector, busy: tuple[clips.Scene, dict[str, Any]]) -> None:
    scene, patches = busy
    w, h = scene.size
    walk = clips.Scene(scene.size, 25, 40, scene.patch, (clips.Appearance("obama", 5, 40, (300, 200), (500, 200), scene.patch),),
                       textured=True)
    full = detector.detector_for(60, h, w)
    reg = RegionDetector(full, detector, 60, 3.0)
    assert len(reg.detect(clips.render(walk, patches, 0), 0.0, [])) == 0  # nobody: the first full scan
    faces = reg.detect(clips.render(walk, patches, 5), 0.2, [])  # walks in: found in a motion zone
    assert len(faces) == 1 and reg.stats.full_scans == 1 and reg.stats.zones == 1
    box = faces.boxes[0].astype(np.float64)
    truth = clips.face_box(walk, walk.appearances[0], 5)
    assert clips.match_faces([(0, truth)], [box]) == {0}
    # next frame: the track's predicted box is confirmed by O-Net alone, no zone, no full scan
    step = np.array(clips.face_box(walk, walk.appearances[0], 10)) - np.array(truth)
    faces = reg.detect(clips.render(walk, patches, 10), 0.4, [(box, box + step)])
    assert len(faces) == 1 and reg.stats.tracks_refined == 1 and reg.stats.zones == 1
    assert clips.match_faces([(0, clips.face_box(walk, walk.appearances[0], 10))], faces.boxes) == {0}
    assert len(faces.landmarks[0]) == 5 and faces.scores[0] > 0.95
    reg.detect(clips.render(walk, patches, 15), 3.0, [])  # the interval passed: a full scan
    assert reg.stats.full_scans == 2


def frames_recall(det: SharedDetector, scene: clips.Scene, patches: dict[str, Any],
                  frames: range) -> tuple[int, int, CameraAnalyzer]:
    settings = CameraSettings(filter_min_size=60)
    analyzer = CameraAnalyzer(det, settings, PostBuilder("cam", {}, settings, "w"))
    hits = total = 0
    for i in frames:
        result = analyzer.process(AnalysisFrame(i, i / scene.fps, 0.0, clips.render(scene, patches, i)))
        truth = clips.visible_faces(scene, i, 60)
        total += len(truth)
        hits += len(clips.match_faces(truth, result.faces.boxes))
    analyzer.finish()
    return hits, total, analyzer


def test_regions_keep_the_recall_of_full_scans(detector: SharedDetector, mtcnn_detector: SharedDetector,
                                              busy: tuple[clips.Scene, dict[str, Any]]) -> None:
    """12 s of the busy scene sampled at 5 fps (people walking in at three sizes, a pole passing in
    front): the regions pipeline finds every face the full scans find, mostly without full scans."""
    scene, patches = busy
    frames = range(0, 300, 5)
    old_hits, total, old = frames_recall(mtcnn_detector, scene, patches, frames)
    new_hits, _, new = frames_recall(detector, scene, patches, frames)
    assert old.regions is None and new.regions is not None
    assert total > 100 and old_hits >= total - 2
    assert new_hits >= old_hits
    stats = new.regions.stats
    assert stats.full_scans <= 5 and stats.region_frames >= 55 and stats.tracks_refined > 80


def test_full_scan_is_put_off_while_nothing_changes(detector: SharedDetector,
                                                   busy: tuple[clips.Scene, dict[str, Any]]) -> None:
    scene, patches = busy
    w, h = scene.size
    empty = clips.Scene(scene.size, 25, 10, scene.patch, (), textured=True)
    reg = RegionDetector(detector.detector_for(60, h, w), detector, 60, 1.0)
    frame = clips.render(empty, patches, 0)
    for t in (0.0, 0.6, 1.2, 1.8):  # a scan at 0; due at 1.2 but the frame is the same
        assert len(reg.detect(frame, t, [])) == 0
    assert reg.stats.full_scans == 1 and reg.stats.full_scans_put_off == 1 and reg.stats.zones == 0
    reg.detect(clips.render(empty, patches, 0) // 2, 2.4, [])  # the lights dim: a real scan
    assert reg.stats.full_scans == 2


def test_motion_zones_carry_their_cores() -> None:
    changed = np.zeros((90, 160), bool)
    changed[10:20, 10:18] = True
    changed[10:20, 30:38] = True  # grown, the two zones overlap: one zone, two cores
    [(zone, cores)] = motion_zones(changed, (12.0, 12.0), 60.0, (1920, 1080))
    assert zone == zones_from_motion(changed, (12.0, 12.0), 60.0, (1920, 1080))[0]
    assert len(cores) == 2
    for x1, y1, x2, y2 in cores:  # each a cell wider than its changed cells, inside the zone
        assert zone[0] <= x1 < x2 <= zone[2] and zone[1] <= y1 < y2 <= zone[3]
        assert y1 == 9 * 12 and y2 == 21 * 12
    assert sorted(c[0] for c in cores) == [9 * 12, 29 * 12]


@pytest.mark.parametrize("photo", ["faces/obama/img1.jpg", "faces/biden/img1.jpg"])
def test_cascade_near_cores_and_known_faces(detector: SharedDetector, data_dir: Path, photo: str) -> None:
    """P-Net limited to cores gives exactly the whole level's windows that meet them; a core over the
    face finds it as the plain cascade does, one elsewhere finds nothing; a known face is dropped."""
    rgb = cv2.cvtColor(cv2.imread(str(data_dir / photo)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    view = detector.zone_view(40.0, None)
    whole = view._stage_pnet(_HalvingPyramid(rgb))
    assert len(whole) and np.array_equal(view._stage_pnet(_HalvingPyramid(rgb), np.array([(0, 0, w, h)])), whole)
    plain = view.detect(rgb)
    assert len(plain) == 1
    face = tuple(int(v) for v in plain.boxes[0])
    near = cascade(view, rgb, None, [face])
    assert len(near) == 1 and np.allclose(near.boxes, plain.boxes) and np.allclose(near.landmarks, plain.landmarks)
    assert len(cascade(view, rgb, None, [(0, 0, 24, 24)])) == 0
    assert len(cascade(view, rgb, plain.boxes)) == 0
    assert len(cascade(view, rgb, np.zeros((0, 4), np.float32))) == 1


def test_a_still_track_is_not_refined_twice_on_one_crop(detector: SharedDetector,
                                                       busy: tuple[clips.Scene, dict[str, Any]]) -> None:
    scene, patches = busy
    w, h = scene.size
    empty = clips.Scene(scene.size, 25, 10, scene.patch, (), textured=True)
    reg = RegionDetector(detector.detector_for(60, h, w), detector, 60, 100.0)
    frame = clips.render(empty, patches, 0)
    reg.detect(frame, 0.0, [])  # the first full scan
    tried: list[int] = []
    refiner = detector.refiner()

    class Counting:
        def refiner(self) -> Any:
            return self

        def refine(self, image: np.ndarray, boxes: np.ndarray) -> Any:
            tried.append(len(boxes))
            return refiner.refine(image, boxes)

        def zone_view(self, lo: float, hi: float | None) -> Any:
            return detector.zone_view(lo, hi)

    reg.views = Counting()  # type: ignore[assignment]
    still = np.array([300.0, 200.0, 400.0, 320.0])
    moving = np.array([600.0, 200.0, 700.0, 320.0])
    assert len(reg.detect(frame, 0.2, [(still, still.copy()), (moving, moving + 30)])) == 0
    assert tried == [2, 1]  # both predicted boxes, then the moving track's last box only
    # a track not found in the previous analysed frame: its last box is stale, only the prediction
    tried.clear()
    lost = TrackHint(moving, moving + 30, lost=True)
    assert len(reg.detect(frame, 0.4, [lost, TrackHint(still, still + 30)])) == 0
    assert tried == [2, 1]  # both predicted boxes, then the fresh track's last box only


def test_no_sharpness_chip_for_a_face_that_cannot_win(detector: SharedDetector,
                                                     busy: tuple[clips.Scene, dict[str, Any]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With its track's fresh pose, a face that could not beat the track's best even perfectly sharp
    gets no chip (and no pose run); without a fresh pose it is bounded as frontal and gets one."""
    import video_worker.analysis as analysis

    scene, patches = busy
    person = clips.Appearance("obama", 0, 10, (300, 200), (300, 200))
    still = clips.Scene(scene.size, 25, 10, scene.patch, (person,), textured=True)
    frame = clips.render(still, patches, 0)
    chips: list[int] = []
    extract = analysis.extract_chips

    def counting(image: np.ndarray, landmarks: np.ndarray, *args: Any) -> Any:
        chips.append(len(landmarks))
        return extract(image, landmarks, *args)

    monkeypatch.setattr(analysis, "extract_chips", counting)
    settings = CameraSettings(filter_min_size=60)
    analyzer = CameraAnalyzer(detector, settings, PostBuilder("cam", {}, settings, "w"))
    first = analyzer.process(AnalysisFrame(0, 0.0, 0.0, frame))
    assert len(first.faces) == 1 and chips == [1] and analyzer.pose_runs == 1
    [tid] = list(analyzer._poses)
    analyzer._poses[tid] = (0.0, np.array([85.0, 0.0, 0.0], np.float32))  # measured in profile
    analyzer.process(AnalysisFrame(5, 0.2, 0.0, frame))
    assert chips == [1] and analyzer.pose_runs == 1  # the pose caps it below its best: no chip
    analyzer.process(AnalysisFrame(10, 1.2, 0.0, frame))  # that pose is stale: bounded as frontal
    assert len(chips) == 2


def test_the_analyzer_marks_tracks_lost_in_the_previous_frame(detector: SharedDetector,
                                                             busy: tuple[clips.Scene, dict[str, Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A track found in the previous analysed frame is handed over as not lost; once a frame went by
    without its face (here: the frame is blanked), it is lost until found again."""
    scene, patches = busy
    seen: list[list[bool]] = []
    detect = RegionDetector.detect

    def recording(self: RegionDetector, image: np.ndarray, t: float, tracks: list[Any]) -> Any:
        seen.append([hint.lost for hint in tracks])
        return detect(self, image, t, tracks)

    monkeypatch.setattr(RegionDetector, "detect", recording)
    settings = CameraSettings(filter_min_size=60, track_miss_interval=5.0)
    analyzer = CameraAnalyzer(detector, settings, PostBuilder("cam", {}, settings, "w"))
    first = next(i for i in range(0, 300, 5) if clips.visible_faces(scene, i, 60))
    frames = [clips.render(scene, patches, first), clips.render(scene, patches, first + 5)]
    blank = np.zeros_like(frames[0])
    for k, rgb in enumerate([frames[0], frames[1], blank, blank]):
        analyzer.process(AnalysisFrame(first + 5 * k, (first + 5 * k) / scene.fps, 0.0, rgb))
    analyzer.finish()
    assert seen[0] == [] and seen[1] and not any(seen[1])  # found in frame 0: not lost in frame 1
    assert seen[2] and not any(seen[2])  # found in frame 1
    assert seen[3] and all(seen[3])  # the blank frame 2 found nobody: lost in frame 3


def test_the_detector_sets_opencv_threads(models_dir: Path) -> None:
    """``detector.opencv_threads`` (default 1) applies to the worker process; 0 leaves OpenCV's own."""
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        det = SharedDetector(ModelsSection(dir=models_dir), DetectorSection(threads=1))
        det.close()
        assert cv2.getNumThreads() == 1
        cv2.setNumThreads(2)
        det = SharedDetector(ModelsSection(dir=models_dir), DetectorSection(threads=1, opencv_threads=0))
        det.close()
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
