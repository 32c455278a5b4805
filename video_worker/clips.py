"""Synthetic H.264 clips made from the sample photos: faces moving across a plain background.

A :class:`Scene` lists people (a face patch cut from a photo of the sample data) with their paths:
the frames in which each is visible and where, so tests know how many tracks to expect. Clips
are encoded with FFmpeg's libx264 through PyAV (the same library the worker decodes with).
Used by the tests, ``bench/worker.py`` and the demo camera of ``facerouter-stack demo``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import cv2
import numpy as np

from sfapi.engines.mtcnn import MtcnnDetector


@dataclass(frozen=True)
class Appearance:
    """``person`` visible from frame ``start`` (inclusive) to ``end`` (exclusive), moving from
    ``xy0`` to ``xy1`` (top-left corner of its patch, linear)."""

    person: str
    start: int
    end: int
    xy0: tuple[int, int]
    xy1: tuple[int, int]

    def where(self, frame: int) -> tuple[int, int] | None:
        if not self.start <= frame < self.end:
            return None
        a = (frame - self.start) / max(self.end - self.start - 1, 1)
        return (round(self.xy0[0] + a * (self.xy1[0] - self.xy0[0])),
                round(self.xy0[1] + a * (self.xy1[1] - self.xy0[1])))


@dataclass(frozen=True)
class Scene:
    """A clip: ``size`` (w, h), ``fps``, ``frames``, who appears when and where."""

    size: tuple[int, int]
    fps: int
    frames: int
    patch: int
    appearances: tuple[Appearance, ...]


def face_patches(detector: MtcnnDetector, photos: dict[str, Path], side: int) -> dict[str, np.ndarray]:
    """A ``side`` x ``side`` RGB patch around the face of each photo (face ~55% of the patch)."""
    out = {}
    for name, path in photos.items():
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        faces = detector.detect(rgb)
        if not len(faces):
            raise ValueError(f"no face in {path}")
        x1, y1, x2, y2 = faces.boxes[0]
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 0.9
        m = np.float32([[side / (2 * half), 0, -(cx - half) * side / (2 * half)],
                        [0, side / (2 * half), -(cy - half) * side / (2 * half)]])
        out[name] = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_REPLICATE)
    return out


def render(scene: Scene, patches: dict[str, np.ndarray], index: int) -> np.ndarray:
    """Frame ``index`` of ``scene`` as RGB."""
    w, h = scene.size
    frame = np.full((h, w, 3), 96, np.uint8)
    frame[:, :, 2] = 110
    for app in scene.appearances:
        pos = app.where(index)
        if pos is None:
            continue
        x, y = pos
        patch = patches[app.person]
        ph, pw = patch.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def encode(scene: Scene, patches: dict[str, np.ndarray], path: Path, *, crf: int = 23,
           preset: str = "veryfast", gop: int | None = None, loops: int = 1) -> Path:
    """Encode ``scene`` (played ``loops`` times) as H.264 (yuv420p, no B-frames) in an MP4."""
    tmp = path.with_name(path.name + ".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=scene.fps)
        stream.width, stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, scene.fps)
        stream.options = {"crf": str(crf), "preset": preset, "bf": "0", "g": str(gop or scene.fps * 2)}
        for i in range(scene.frames * loops):
            frame = av.VideoFrame.from_ndarray(render(scene, patches, i % scene.frames), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def people_scene(size: Sequence[int] = (640, 360), fps: int = 25, seconds: float = 4.0) -> Scene:
    """Three people: ``obama`` walks left to right the whole clip (top row); ``biden`` is there
    for the first 1.2 s, leaves for 1.4 s (longer than the 1 s miss interval) and comes back
    (bottom row); ``kit`` crosses the bottom right from 0.4 s to 2.4 s.
    Expected tracks: obama 1, biden 2, kit 1."""
    w, h = size
    n = int(fps * seconds)
    p = h * 140 // 360
    return Scene((w, h), fps, n, p, (
        Appearance("obama", 0, n, (10, 10), (w - p - 10, 10)),
        Appearance("biden", 0, int(1.2 * fps), (10, h - p - 10), (110 * w // 640, h - p - 10)),
        Appearance("biden", int(2.6 * fps), n, (130 * w // 640, h - p - 10), (30, h - p - 10)),
        Appearance("kit", int(0.4 * fps), int(2.4 * fps), (w - p - 10, h - p - 10), (w // 2 + 20, h - p - 10)),
    ))


def walk_in_scene(size: Sequence[int] = (640, 360), fps: int = 25) -> Scene:
    """14 s for the motion gate: nobody for 3 s; ``obama`` walks in from the left edge (3 - 5.4 s),
    stands still in the middle for 1.6 s (longer than the 1 s miss interval), walks slowly out to
    the right (7 - 11 s); nobody for the last 3 s. Expected tracks: obama 1."""
    w, h = size
    p = h * 140 // 360
    mid, y = (w - p) // 2, (h - p) // 2
    return Scene((w, h), fps, 14 * fps, p, (
        Appearance("obama", 3 * fps, int(5.4 * fps), (-p, y), (mid, y)),
        Appearance("obama", int(5.4 * fps), 7 * fps, (mid, y), (mid, y)),
        Appearance("obama", 7 * fps, 11 * fps, (mid, y), (w, y)),
    ))


def sparse_scene(size: Sequence[int] = (1920, 1080), fps: int = 25, seconds: float = 20.0) -> Scene:
    """People present a quarter of the time (the motion gate's bench): ``obama`` walks in from the
    left along the top row over [0.15, 0.275) of the clip; ``biden`` (bottom row, from the right) and
    ``kit`` (top row, from the left) walk in over [0.6, 0.725); nobody the rest of the time."""
    w, h = size
    n = int(fps * seconds)
    p = h * 140 // 360
    a0, a1, b0, b1 = (int(n * f) for f in (0.15, 0.275, 0.6, 0.725))
    return Scene((w, h), fps, n, p, (
        Appearance("obama", a0, a1, (-p // 2, 10), (w // 2, 10)),
        Appearance("biden", b0, b1, (w - p // 2, h - p - 10), (w // 2 - p, h - p - 10)),
        Appearance("kit", b0, b1, (-p // 2, 10), (w // 2 - p, 10)),
    ))


#: the photo (in the sample data) behind each person of the scenes; "kit" is a role name
PHOTOS = {"obama": "faces/obama/img1.jpg", "biden": "faces/biden/img1.jpg",
          "kit": "faces/nicolas_cage/img1.jpg"}


def person_at(scene: Scene, frame: int, box: Sequence[float]) -> str | None:
    """Who of ``scene`` is at ``box`` (frame pixels) in ``frame`` (the patch holding its centre)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for app in scene.appearances:
        pos = app.where(frame)
        if pos and pos[0] <= cx < pos[0] + scene.patch and pos[1] <= cy < pos[1] + scene.patch:
            return app.person
    return None
