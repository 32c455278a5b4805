"""The motion gate (FindFace's ``imotion_threshold``): idle cameras skip detection.

The measure: every sampled frame is shrunk (FFmpeg's swscale, area filter, straight from the
decoded YUV frame, before any RGB conversion) to a grey thumbnail whose longer side is
:data:`THUMB_SIDE` (64 x 36 for 16:9), turned like the frame (``rot``) and cut to the ``roi``. Its
*motion* is the fraction (0..1) of thumbnail cells whose grey level (0..255) differs from the same
cell of the **last analysed** frame by more than :data:`CELL_DELTA`. Each cell averages ~30 x 30
pixels of a 1080p frame, so sensor and encoder noise stay far below the delta; a slow change adds up
against the last analysed frame until it counts. Cost: ~0.2 ms of CPU per 1080p frame (about a third
of the RGB conversion it spares, and ~0.5% of the ~38 ms MTCNN takes on it).

The rule (:meth:`MotionGate.analyse`), when ``imotion_threshold`` > 0, for each sampled frame:
analyse it if

a. it is the first of a connection (nothing to compare with), or
b. a track is live (so tracks update every sampled frame and end exactly as without the gate:
   skipping never happens while a track could miss), or
c. its motion is above ``imotion_threshold``, or
d. ``motion_gate_max_skip_s`` > 0 and at least that much stream time passed since the last analysed
   frame (a face standing still in view is found even though it brings no motion);

otherwise it is skipped (counted in ``frames_skipped_motion``) and never converted to RGB.
"""
from __future__ import annotations

import av
import numpy as np

__all__ = ["CELL_DELTA", "THUMB_SIDE", "MotionGate", "motion", "thumbnail"]

#: longer side of the grey thumbnail motion is measured on
THUMB_SIDE = 64
#: a thumbnail cell (grey 0..255) changed when it differs from the reference by more than this
CELL_DELTA = 12


def thumbnail(frame: av.VideoFrame, rot: int = 0, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Grey ``uint8`` thumbnail of ``frame`` turned ``rot`` degrees clockwise and cut to ``roi``
    (in turned-frame pixels, as the camera's ``roi``)."""
    w, h = frame.width, frame.height
    scale = THUMB_SIDE / max(w, h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    small = frame.reformat(tw, th, "gray", interpolation="AREA").to_ndarray()
    if rot:
        small = np.rot90(small, -(rot // 90))
        if rot in (90, 270):
            w, h = h, w
    if roi is not None:
        sx, sy = small.shape[1] / w, small.shape[0] / h
        x1, y1, x2, y2 = roi
        c1, r1 = min(int(x1 * sx), small.shape[1] - 1), min(int(y1 * sy), small.shape[0] - 1)
        c2, r2 = max(int(np.ceil(x2 * sx)), c1 + 1), max(int(np.ceil(y2 * sy)), r1 + 1)
        small = small[r1:r2, c1:c2]
    return np.ascontiguousarray(small)


def motion(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction (0..1) of cells of thumbnail ``a`` that differ from ``b`` by more than
    :data:`CELL_DELTA`; 1.0 when their shapes differ (the stream changed size)."""
    if a.shape != b.shape:
        return 1.0
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(np.count_nonzero(diff > CELL_DELTA)) / diff.size


class MotionGate:
    """Decides which sampled frames of one camera are analysed (the module's rule)."""

    def __init__(self, threshold: float, max_skip_s: float) -> None:
        self.threshold = threshold
        self.max_skip_s = max_skip_s
        self._ref: np.ndarray | None = None
        self._ref_t = 0.0

    def analyse(self, thumb: np.ndarray, t: float, tracks_live: bool) -> bool:
        """Whether the frame at stream time ``t`` with thumbnail ``thumb`` is analysed; a frame
        analysed becomes the reference of the next ones."""
        take = (self._ref is None or tracks_live or motion(thumb, self._ref) > self.threshold
                or (self.max_skip_s > 0 and t - self._ref_t >= self.max_skip_s - 1e-6))
        if take:
            self._ref, self._ref_t = thumb, t
        return take

    def reset(self) -> None:
        """A new connection: its first frame is analysed."""
        self._ref = None
