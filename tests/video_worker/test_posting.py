"""The posting rule: every track of at least ``filter_min_size`` is posted once (overall mode)
whatever its pose; quality only ranks a track's faces; ``filter_min_quality`` is an opt-in floor."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.video_worker.conftest import RouterStandIn, worker_config
from facestack.stack import clips
from video_worker.config import CameraSettings
from video_worker.detector import SharedDetector


@pytest.fixture(scope="module")
def turned_patches(detector: SharedDetector, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, Any]:
    """Patches of the real obama photo frontal and turned 65 degrees (a three-quarter view)."""
    tmp = tmp_path_factory.mktemp("turned")
    src = data_dir / "faces/obama/img1.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    turned = clips.turn_face(rgb, detector.detector_for(40, *rgb.shape[:2]).detect(rgb).boxes[0], 65)
    cv2.imwrite(str(tmp / "turned.png"), cv2.cvtColor(turned, cv2.COLOR_RGB2BGR))
    return clips.face_patches(detector.detector_for(40, 480, 640), {"turned": tmp / "turned.png", "frontal": src}, 300)


@pytest.fixture(scope="module")
def turned_clip(turned_patches: dict[str, Any], clip_dir: Path) -> tuple[Path, clips.Scene]:
    """1280x720, 1.2 s: the three-quarter view (a ~100 x 160 px face) stands in view."""
    scene = clips.Scene((1280, 720), 25, 30, 300, (clips.Appearance("turned", 0, 30, (40, 200), (40, 200)),))
    return clips.encode(scene, turned_patches, clip_dir / "turned.mp4"), scene


@pytest.fixture(scope="module")
def turning_clip(turned_patches: dict[str, Any], clip_dir: Path) -> tuple[Path, clips.Scene]:
    """1280x720, 2.4 s: the three-quarter view stands for 1.2 s, then (the same track) turns to
    the camera for 1.2 s."""
    scene = clips.Scene((1280, 720), 25, 60, 300, (
        clips.Appearance("turned", 0, 30, (40, 200), (40, 200)),
        clips.Appearance("frontal", 30, 60, (40, 200), (40, 200)),
    ))
    return clips.encode(scene, turned_patches, clip_dir / "turning.mp4"), scene


async def run(start_worker: Any, tmp_path: Path, router: RouterStandIn, clip: Path, **settings: Any) -> None:
    cfg = worker_config(tmp_path, router.url, [{"id": "cam", "stream_url": str(clip), "single_pass": True,
                                                "settings": settings}])
    worker = await start_worker(cfg)
    cam = worker.manager.get("cam")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)


def test_defaults_post_every_track() -> None:
    assert CameraSettings().filter_min_quality == 0.0


async def test_three_quarter_view_is_posted(start_worker, tmp_path, router, turned_clip) -> None:
    """One track, posted once though the face never looks at the camera (the old rule dropped such
    tracks: a saturated landmark yaw made quality 0, below the default floor); detectorParams
    carries its pose and the parts of its quality."""
    clip, scene = turned_clip
    await run(start_worker, tmp_path, router, clip, detect_fps=5, filter_min_size=40)
    assert len(router.posts) == 1
    post = router.posts[0]
    params = post["detectorParams"]
    assert post["bs_type"] == "overall"
    assert clips.person_at(scene, params["frame_no"], params["frame_bbox"]) == "turned"
    parts = params["quality_parts"]
    assert set(parts) == {"score", "size", "pose", "sharpness"} and "pitch" in params and "roll" in params
    assert params["quality"] == pytest.approx(parts["score"] * parts["size"] * parts["pose"] * parts["sharpness"],
                                              abs=1e-3)
    assert 0.2 <= parts["pose"] <= 1.0 and -99 <= params["yaw"] <= 99


async def test_best_frame_of_a_track_is_the_frontal_one(start_worker, tmp_path, router, turning_clip) -> None:
    clip, scene = turning_clip
    await run(start_worker, tmp_path, router, clip, detect_fps=5, filter_min_size=40)
    assert len(router.posts) == 1, [p["detectorParams"] for p in router.posts]
    params = router.posts[0]["detectorParams"]
    assert params["track_start_frame"] < 30 <= params["frame_no"]  # one track, turned then frontal
    assert clips.person_at(scene, params["frame_no"], params["frame_bbox"]) == "frontal"
    assert abs(params["yaw"]) < 20 and params["quality_parts"]["pose"] > 0.8


async def test_quality_floor_is_opt_in(start_worker, tmp_path, router, turning_clip) -> None:
    clip, _ = turning_clip
    await run(start_worker, tmp_path, router, clip, detect_fps=5, filter_min_size=40, filter_min_quality=0.99)
    assert router.posts == []
