"""Synthetic H.264 clips made from the sample photos: faces moving across a plain background.

A :class:`Scene` lists people (a face patch cut from a photo of the sample data) with their paths:
the frames in which each is visible and where, so tests know how many tracks to expect. Clips
are encoded with FFmpeg's libx264 through PyAV (the same library the worker decodes with).
Used by the tests, ``bench/worker.py`` and the demo camera of ``facestack demo``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import cv2
import numpy as np

from facestack.vision.engines.mtcnn import MtcnnDetector


@dataclass(frozen=True)
class Appearance:
    """``person`` visible from frame ``start`` (inclusive) to ``end`` (exclusive), moving from
    ``xy0`` to ``xy1`` (top-left corner of its patch, linear)."""

    person: str
    start: int
    end: int
    xy0: tuple[int, int]
    xy1: tuple[int, int]
    #: side of this appearance's patch (None: the scene's ``patch``)
    patch: int | None = None

    def where(self, frame: int) -> tuple[int, int] | None:
        if not self.start <= frame < self.end:
            return None
        a = (frame - self.start) / max(self.end - self.start - 1, 1)
        return (round(self.xy0[0] + a * (self.xy1[0] - self.xy0[0])),
                round(self.xy0[1] + a * (self.xy1[1] - self.xy0[1])))


@dataclass(frozen=True)
class Occluder:
    """A grey pole ``width`` pixels wide, the frame's full height, in front of everyone from frame
    ``start`` to ``end`` (exclusive), its left edge moving from ``x0`` to ``x1``."""

    start: int
    end: int
    x0: int
    x1: int
    width: int

    def where(self, frame: int) -> int | None:
        if not self.start <= frame < self.end:
            return None
        a = (frame - self.start) / max(self.end - self.start - 1, 1)
        return round(self.x0 + a * (self.x1 - self.x0))


@dataclass(frozen=True)
class Scene:
    """A clip: ``size`` (w, h), ``fps``, ``frames``, who appears when and where; ``occluders``
    pass in front; ``textured``: a still, textured background instead of a plain one."""

    size: tuple[int, int]
    fps: int
    frames: int
    patch: int
    appearances: tuple[Appearance, ...]
    occluders: tuple[Occluder, ...] = ()
    textured: bool = False


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


_BACKGROUNDS: dict[tuple[int, int], np.ndarray] = {}


def _background(w: int, h: int) -> np.ndarray:
    """A still, smooth random texture (seeded): walls and floors, not a flat colour."""
    bg = _BACKGROUNDS.get((w, h))
    if bg is None:
        rng = np.random.default_rng(7)
        coarse = rng.uniform(50, 190, (9, 16, 3)).astype(np.float32)
        coarse = 0.3 * coarse + 0.7 * coarse.mean(axis=2, keepdims=True)  # muted colours
        bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        fine = rng.uniform(-6, 6, (h // 6 + 1, w // 6 + 1)).astype(np.float32)
        fine = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        bg = _BACKGROUNDS[(w, h)] = np.clip(bg + fine, 0, 255).astype(np.uint8)
    return bg


def _patch(patches: dict[str, np.ndarray], person: str, side: int | None) -> np.ndarray:
    patch = patches[person]
    if side is None or side == patch.shape[0]:
        return patch
    key = f"{person}@{side}"
    if key not in patches:
        interp = cv2.INTER_AREA if side < patch.shape[0] else cv2.INTER_CUBIC
        patches[key] = cv2.resize(patch, (side, side), interpolation=interp)
    return patches[key]


def turn_face(rgb: np.ndarray, box: Sequence[float], degrees: float) -> np.ndarray:
    """``rgb`` with the head in ``box`` turned about a vertical axis: the columns around the face are
    mapped onto a cylinder (radius 0.75 x the box width) rotated by ``degrees`` (positive: the nose
    moves to larger x, the face turns towards the image's right); what turns out of view, and the
    columns beside the head, show a plain grey. A three-quarter view made from a real frontal photo."""
    h, w = rgb.shape[:2]
    cx, radius = (box[0] + box[2]) / 2, (box[2] - box[0]) * 0.75
    xs = np.arange(w, dtype=np.float32) - cx
    ang = np.arcsin(np.clip(xs / radius, -1, 1)) - np.radians(degrees)
    inside = (np.abs(xs) < radius) & (np.abs(ang) < np.pi / 2)
    src = np.where(inside, cx + radius * np.sin(ang), -1.0)
    mapx = np.tile(src.astype(np.float32), (h, 1))
    mapy = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    return cv2.remap(rgb, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90))


def render(scene: Scene, patches: dict[str, np.ndarray], index: int) -> np.ndarray:
    """Frame ``index`` of ``scene`` as RGB."""
    w, h = scene.size
    if scene.textured:
        frame = _background(w, h).copy()
    else:
        frame = np.full((h, w, 3), 96, np.uint8)
        frame[:, :, 2] = 110
    for app in scene.appearances:
        pos = app.where(index)
        if pos is None:
            continue
        x, y = pos
        patch = _patch(patches, app.person, app.patch)
        ph, pw = patch.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    for occ in scene.occluders:
        x = occ.where(index)
        if x is not None and x + occ.width > 0 and x < w:
            frame[:, max(x, 0):min(x + occ.width, w)] = (70, 72, 76)
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


#: a face patch holds the face box (MTCNN's) at its centre, this share of the patch side
FACE_SHARE = 1 / 1.8


def busy_scene(size: Sequence[int] = (1920, 1080), fps: int = 25, seconds: float = 20.0) -> Scene:
    """The cost and recall bench's busy stream, on a textured still background: five people at
    three face sizes (about 22%, 13% and 10% of the frame height: 238, 140 and 108 px at 1080p),
    walking in from the edges at different speeds, two of them twice; a grey pole crossing in
    front of two of them (an occlusion shorter than the track miss interval); nobody in the last
    8% of the clip. Faces stay over 70 px wide at 720p."""
    w, h = size
    n = int(fps * seconds)
    big, mid, small = (round(h * f / FACE_SHARE) for f in (0.22, 0.13, 0.10))

    def f(x: float) -> int:
        return int(n * x)

    return Scene((w, h), fps, n, mid, (
        Appearance("obama", f(0.0), f(0.40), (-big // 2, h // 20), (w - big, h // 20), big),
        Appearance("biden", f(0.05), f(0.45), (w - mid // 2, h - mid - h // 20), (w // 3, h - mid - h // 20), mid),
        Appearance("kit", f(0.10), f(0.60), (w // 5, h // 2 - small // 2), (w // 2, h // 2), small),
        Appearance("rose", f(0.50), f(0.92), (w - mid // 2, h // 12), (w // 6, h // 10), mid),
        Appearance("alex", f(0.55), f(0.90), (-small // 2, h - small - h // 10), (w // 2, h - small - h // 8), small),
        Appearance("obama", f(0.62), f(0.92), (w // 2, h // 2 - big // 2), (w - big, h // 2 - big // 2), big),
    ), occluders=(Occluder(f(0.12), f(0.30), w // 3, w + 10, max(h // 10, 8)),), textured=True)


def quiet_scene(size: Sequence[int] = (1920, 1080), fps: int = 25, seconds: float = 20.0) -> Scene:
    """The bench's sparse stream, on the busy scene's background: people there a quarter of the
    time. ``obama`` (big) walks in from the left over [0.15, 0.275) of the clip; ``biden`` (middle
    size, from the right) and ``kit`` (small, from the left) over [0.6, 0.725); nobody otherwise.
    Each walks a quarter of the frame's width in, at most ~60 px per 0.2 s at 1080p."""
    w, h = size
    n = int(fps * seconds)
    big, mid, small = (round(h * f / FACE_SHARE) for f in (0.22, 0.13, 0.10))
    a0, a1, b0, b1 = (int(n * f) for f in (0.15, 0.275, 0.6, 0.725))
    return Scene((w, h), fps, n, mid, (
        Appearance("obama", a0, a1, (-big // 2, h // 20), (w // 4, h // 20), big),
        Appearance("biden", b0, b1, (w - mid // 2, h - mid - h // 20), (3 * w // 4 - mid, h - mid - h // 20), mid),
        Appearance("kit", b0, b1, (-small // 2, h // 3), (w // 4 - small, h // 3), small),
    ), textured=True)


def face_box(scene: Scene, app: Appearance, frame: int) -> tuple[float, float, float, float] | None:
    """Where the face of ``app`` is in ``frame`` (x1, y1, x2, y2), or None when it is not there."""
    pos = app.where(frame)
    if pos is None:
        return None
    side = app.patch or scene.patch
    half = side * FACE_SHARE / 2
    cx, cy = pos[0] + side / 2, pos[1] + side / 2
    return cx - half, cy - half, cx + half, cy + half


def visible_faces(scene: Scene, frame: int, min_side: float = 0.0,
                  inside: float = 0.9, occluded: float = 0.3) -> list[tuple[int, tuple[float, float, float, float]]]:
    """Ground truth of ``frame``: (index of the appearance, face box) of each face at least
    ``min_side`` wide with at least ``inside`` of its box in the frame and at most ``occluded`` of
    it behind an occluder."""
    w, h = scene.size
    out = []
    for k, app in enumerate(scene.appearances):
        box = face_box(scene, app, frame)
        if box is None or box[2] - box[0] < min_side:
            continue
        x1, y1, x2, y2 = box
        area = (x2 - x1) * (y2 - y1)
        iw, ih = max(min(x2, w) - max(x1, 0), 0), max(min(y2, h) - max(y1, 0), 0)
        if iw * ih < inside * area:
            continue
        hidden = 0.0
        for occ in scene.occluders:
            ox = occ.where(frame)
            if ox is not None:
                hidden += max(min(x2, ox + occ.width) - max(x1, ox), 0) * (y2 - y1)
        if hidden > occluded * area:
            continue
        out.append((k, box))
    return out


def match_faces(truth: list[tuple[int, tuple[float, float, float, float]]],
                boxes: Sequence[Sequence[float]]) -> set[int]:
    """Appearance indices of ``truth`` with a detected box whose centre lies in their face box."""
    found = set()
    for k, (x1, y1, x2, y2) in truth:
        for b in boxes:
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            if x1 <= cx <= x2 and y1 <= cy <= y2:
                found.add(k)
                break
    return found


#: the photo (in the sample data) behind each person of the scenes ("kit", "rose", "alex" are role names)
PHOTOS = {"obama": "faces/obama/img1.jpg", "biden": "faces/biden/img1.jpg",
          "kit": "faces/nicolas_cage/img1.jpg"}
#: the busy bench scene's people
BENCH_PHOTOS = {**PHOTOS, "rose": "faces/justin_bieber/img1.jpg", "alex": "faces/nicolas_cage/img2.jpg"}


def person_at(scene: Scene, frame: int, box: Sequence[float]) -> str | None:
    """Who of ``scene`` is at ``box`` (frame pixels) in ``frame`` (the patch holding its centre)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for app in scene.appearances:
        pos = app.where(frame)
        side = app.patch or scene.patch
        if pos and pos[0] <= cx < pos[0] + side and pos[1] <= cy < pos[1] + side:
            return app.person
    return None
