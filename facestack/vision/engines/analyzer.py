"""The face analysis pipeline: detection, alignment, and the feature networks behind batchers.

CPU-bound steps (``detect``, ``prepare``) are plain functions run by the server in a bounded
executor; the feature networks run on :class:`DynamicBatcher` threads so that concurrent requests
share forward passes. Nothing here touches the event loop except ``extract``, which only awaits.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from facestack.vision.settings import AnalyzerSettings
from facestack.vision.engines import align
from facestack.vision.engines.batching import BatchObserver, DynamicBatcher
from facestack.vision.engines.faces import Faces
from facestack.vision.engines.mtcnn import MtcnnDetector, MtcnnSettings
from facestack.vision.engines.pose import PoseEstimator
from facestack.vision.engines.quality import quality_score, sharpness
from facestack.vision.engines.runtime import Runtime, Session
from facestack.vision.models.pack import read_manifest
from facestack.vision.models.sources import AGE_BINS, GENDER_LABELS
from facestack.vision.models.keras_emotion import EMOTION_LABELS

log = logging.getLogger(__name__)

FEATURES = ("facen", "gender", "age", "emotions")
_MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32).reshape(1, 3, 1, 1)


@dataclass(frozen=True)
class ChipSpec:
    size: int
    padding: float


FACEN_CHIP = ChipSpec(150, 0.25)
AGE_GENDER_CHIP = ChipSpec(64, 0.2)
EMOTION_CHIP = ChipSpec(64, 0.1)


@dataclass
class Prepared:
    """Network inputs for the faces of one image, plus per-face quality."""

    faces: Faces
    quality: np.ndarray
    inputs: dict[str, np.ndarray]


class FaceAnalyzer:
    """Owns the networks of the model pack; thread-safe."""

    def __init__(self, models_dir: Path, cfg: AnalyzerSettings, runtime: Runtime,
                 observer: BatchObserver | None = None) -> None:
        self._cfg = cfg
        manifest = read_manifest(models_dir)
        self.versions = {name: entry["version"] for name, entry in manifest["networks"].items()}
        self.facen_model = self.versions["facen"]

        def load(name: str) -> Session:
            return runtime.load(models_dir / manifest["networks"][name]["file"], name)

        d = cfg.detector
        self.detector = MtcnnDetector(load("detector_pnet"), load("detector_rnet"), load("detector_onet"),
                                      MtcnnSettings(min_face_size=d.min_face_size, thresholds=d.thresholds,
                                                    max_image_side=d.max_image_side))
        self.pose = PoseEstimator(load("pose"))  # head pose for quality
        b = cfg.batching
        self._batchers: dict[str, DynamicBatcher] = {}
        for name in FEATURES:
            sess = load(name)
            self._batchers[name] = DynamicBatcher(name, _forward(sess), b.max_batch, b.max_wait_ms / 1000.0, observer)

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()

    @property
    def pending_rows(self) -> int:
        return sum(b.pending_rows for b in self._batchers.values())

    # --- CPU steps (run in an executor) ---------------------------------------------------------
    def detect(self, rgb: np.ndarray, autorotate: bool = False) -> Faces:
        if not autorotate:
            return self.detector.detect(rgb)
        parts = []
        for k in range(4):
            rotated = np.ascontiguousarray(np.rot90(rgb, -k)) if k else rgb
            found = self.detector.detect(rotated)
            if len(found):  # the upright pass (k == 0) needs no mapping back
                parts.append(_unrotate(found, k, rgb.shape[1], rgb.shape[0]) if k else found)
        return _merge_overlaps(Faces.concat(parts), 0.5)

    def normalized_face(self, rgb: np.ndarray) -> Faces:
        """The one face of a normalized crop (detection skipped): landmarks from the template."""
        n = self._cfg.normalized
        h, w = rgb.shape[:2]
        scale = np.array([(w - 1) / (n.size - 1), (h - 1) / (n.size - 1)], np.float32)
        lm = align.template_landmarks(n.size, n.padding) * scale
        core = n.padding / (1 + 2 * n.padding), (1 + n.padding) / (1 + 2 * n.padding)
        box = np.array([[core[0] * w, core[0] * h, core[1] * w, core[1] * h]], np.float32)
        return Faces(box, np.ones(1, np.float32), lm.reshape(1, 5, 2).astype(np.float32))

    def prepare(self, rgb: np.ndarray, faces: Faces, features: Iterable[str]) -> Prepared:
        wanted = set(features)
        inputs: dict[str, np.ndarray] = {}
        if not len(faces):  # no face: nothing to stack, no network to run
            return Prepared(faces, np.zeros(0, np.float32), inputs)
        facen_chips = align.extract_chips(rgb, faces.landmarks, FACEN_CHIP.size, FACEN_CHIP.padding)
        gray = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in facen_chips]) if len(faces) else \
            np.zeros((0, FACEN_CHIP.size, FACEN_CHIP.size), np.uint8)
        pose = self.pose.estimate(rgb, faces.boxes) if len(faces) else None
        quality = quality_score(faces.scores, faces.boxes, faces.landmarks, sharpness(gray), pose=pose)
        if "facen" in wanted:
            inputs["facen"] = facen_chips.transpose(0, 3, 1, 2).astype(np.float32)
        if wanted & {"age", "gender"}:
            ag = align.extract_chips(rgb, faces.landmarks, AGE_GENDER_CHIP.size, AGE_GENDER_CHIP.padding)
            if "age" in wanted:
                inputs["age"] = (ag.transpose(0, 3, 1, 2).astype(np.float32) - _MEAN_RGB) / 256.0
            if "gender" in wanted:
                small = np.stack([cv2.resize(c, (32, 32), interpolation=cv2.INTER_AREA) for c in ag])
                inputs["gender"] = (small.transpose(0, 3, 1, 2).astype(np.float32) - _MEAN_RGB) / 256.0
        if "emotions" in wanted:
            em = align.extract_chips(rgb, faces.landmarks, EMOTION_CHIP.size, EMOTION_CHIP.padding)
            g = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in em])
            inputs["emotions"] = g[:, None].astype(np.float32)
        return Prepared(faces, quality, inputs)

    # --- batched networks --------------------------------------------------------------------
    async def extract(self, prepared: Prepared) -> dict[str, np.ndarray]:
        """Run every requested network on the prepared inputs; returns raw outputs by name."""
        names = [n for n in FEATURES if n in prepared.inputs and len(prepared.inputs[n])]
        futures = [asyncio.wrap_future(self._batchers[n].submit(prepared.inputs[n])) for n in names]
        results = await asyncio.gather(*futures)
        return {n: r[0] for n, r in zip(names, results)}

    def extract_sync(self, prepared: Prepared) -> dict[str, np.ndarray]:
        """``extract`` for callers on a plain thread (benchmarks, the video worker's own threads)."""
        names = [n for n in FEATURES if n in prepared.inputs and len(prepared.inputs[n])]
        futures = [self._batchers[n].submit(prepared.inputs[n]) for n in names]
        return {n: f.result()[0] for n, f in zip(names, futures)}

    def analyze(self, rgb: np.ndarray, features: Iterable[str] = FEATURES) -> tuple[Prepared, dict[str, np.ndarray]]:
        """Detect, align and extract in one call on the calling thread."""
        prepared = self.prepare(rgb, self.detect(rgb), features)
        return prepared, self.extract_sync(prepared)


def postprocess(raw: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """Turn row ``i`` of the raw network outputs into the wire features of one face."""
    out: dict[str, Any] = {}
    if "gender" in raw:
        p = raw["gender"][i]
        k = int(np.argmax(p))
        out["gender"] = {"gender": GENDER_LABELS[k], "score": round(float(p[k]), 4)}
    if "age" in raw:
        out["age"] = int(round(float(np.dot(raw["age"][i], np.asarray(AGE_BINS, np.float32)))))
    if "emotions" in raw:
        p = raw["emotions"][i]
        order = np.argsort(-p)
        out["emotions"] = [{"emotion": EMOTION_LABELS[k], "score": round(float(p[k]), 4)} for k in order]
    return out


def normalize_facen(raw: np.ndarray) -> np.ndarray:
    v = np.asarray(raw, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _forward(sess: Session) -> Callable[[np.ndarray], list[np.ndarray]]:
    def run(batch: np.ndarray) -> list[np.ndarray]:
        return sess.run(batch)
    return run


def _unrotate(faces: Faces, k: int, w: int, h: int) -> Faces:
    """Map faces found in the image turned ``k`` quarter turns clockwise back to the original."""
    lm = faces.landmarks.copy()
    bx = faces.boxes.copy()
    pts = np.concatenate([bx[:, :2], bx[:, 2:]], axis=0)

    def back(p: np.ndarray) -> np.ndarray:
        x, y = p[..., 0], p[..., 1]
        if k == 1:   # rotated clockwise: (x, y) in rotated = (h - 1 - y0, x0)
            return np.stack([y, h - 1 - x], axis=-1)
        if k == 2:
            return np.stack([w - 1 - x, h - 1 - y], axis=-1)
        return np.stack([w - 1 - y, x], axis=-1)  # k == 3

    lm = back(lm)
    p = back(pts)
    n = len(bx)
    a, b = p[:n], p[n:]
    boxes = np.concatenate([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.float32)
    rot = np.full(n, 90 * k, np.int32)
    return Faces(boxes, faces.scores, lm.astype(np.float32), rot)


def _merge_overlaps(faces: Faces, iou_threshold: float) -> Faces:
    if len(faces) < 2:
        return faces
    order = np.argsort(-faces.scores)
    keep: list[int] = []
    b = faces.boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    for i in order:
        ok = True
        for j in keep:
            xx1, yy1 = max(b[i, 0], b[j, 0]), max(b[i, 1], b[j, 1])
            xx2, yy2 = min(b[i, 2], b[j, 2]), min(b[i, 3], b[j, 3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            if inter / max(area[i] + area[j] - inter, 1e-6) > iou_threshold:
                ok = False
                break
        if ok:
            keep.append(int(i))
    return faces[np.array(sorted(keep))]
