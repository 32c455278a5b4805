"""Face alignment: dlib-style face chips cut from MTCNN's five landmarks, without dlib.

The embedding network (dlib's ResNet) and the age/gender networks were trained on chips cut by dlib's
``get_face_chip(img, shape, size, padding)`` after its 5-point shape predictor. :data:`TEMPLATE` gives
where MTCNN's five landmarks (left eye, right eye, nose, mouth left, mouth right, "left" = image left)
land inside such a chip, so a similarity transform from the MTCNN landmarks onto the template
reproduces dlib's chip.

Chip geometry (dlib's): a template point ``t`` in normalized coordinates (padding 0: the unit square)
sits, in a chip of ``size`` pixels and ``padding`` p, at ``(t + p) / (1 + 2p) * S`` of dlib's nominal
chip square of side ``S = size``; dlib's ``extract_image_chip`` then maps that nominal square onto
the pixel centres ``0 .. size - 1``, so the pixel coordinate (pixel centres at integers, as in
OpenCV) is ``(t + p) / (1 + 2p) * (size - 1)``. That is what :func:`template_landmarks` returns.

Downscaling is anti-aliased like dlib's (which samples from an image pyramid): the source region is
halved with exact 2x2 averages until it is less than 2x the chip's resolution, then sampled
bilinearly; pixels outside the image are black (dlib leaves them 0 too).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

#: Where MTCNN's five landmarks (left eye, right eye, nose, mouth left, mouth right; image left/right)
#: sit in a dlib face chip, in dlib's normalized chip coordinates (padding 0 -> unit square).
#: Derived by ``derive_template`` in tests/sfapi/engines/test_align.py on a development set of 25
#: faces (single photos of six people and three group photos from the example images of the
#: face_recognition project, one copy of each photo): for every face, dlib's HOG detector
#: (upsample 1) + shape_predictor_5_face_landmarks + get_face_chip_details(padding 0) gave the
#: image -> chip transform; the MTCNN landmarks of the same face were mapped through it and averaged.
#: Over 25 faces the per-point standard deviation was 0.011-0.026 for the eyes, 0.04-0.055 for the
#: nose and mouth corners.
TEMPLATE = np.array([
    [0.2209, 0.2010],  # left eye
    [0.7657, 0.2053],  # right eye
    [0.4968, 0.5289],  # nose
    [0.2371, 0.7905],  # mouth left
    [0.7606, 0.7907],  # mouth right
], dtype=np.float64)

#: Relative weight of each landmark when fitting the chip transform (eyes, nose, mouth corners).
#: The mouth corners move with expression, so they count half (on that development set this raised the mean
#: cosine of dlib descriptors, our chip vs dlib's chip, from 0.9950 to 0.9958).
LANDMARK_WEIGHTS = np.array([1.0, 1.0, 1.0, 0.5, 0.5], dtype=np.float64)


def template_landmarks(size: int, padding: float) -> np.ndarray:
    """``(5, 2)`` pixel coordinates of the template landmarks in a ``size`` chip with ``padding``."""
    _check_geometry(size, padding)
    return (TEMPLATE + padding) / (1.0 + 2.0 * padding) * (size - 1)


def similarity_transform(src: np.ndarray, dst: np.ndarray,
                         weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift; no reflection) taking
    the points ``src`` ``(k, 2)`` onto ``dst`` ``(k, 2)`` (Umeyama 1991). Returns a ``2x3`` matrix
    ``M`` with ``dst ~ src @ M[:, :2].T + M[:, 2]``. ``weights`` ``(k,)`` weight each point pair.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"expected two (k, 2) point sets with k >= 2, got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be ({len(src)},) non-negative and not all 0, got {w}")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s0, d0 = src - mu_s, dst - mu_d
    var_s = w @ (s0 ** 2).sum(axis=1)
    if var_s <= 1e-12:
        raise ValueError("source points are all the same: no transform")
    cov = (d0 * w[:, None]).T @ s0  # 2x2
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ e @ vt
    scale = float((sig * np.diag(e)).sum() / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def chip_transform(landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """``2x3`` matrix mapping image pixels to the pixels of the ``size`` chip with ``padding``
    for a face with MTCNN ``landmarks`` ``(5, 2)``."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks: expected (5, 2), got {lm.shape}")
    return similarity_transform(lm, template_landmarks(size, padding), LANDMARK_WEIGHTS)


def extract_chip(image: np.ndarray, landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """The dlib-style face chip ``(size, size, c)`` uint8 of the face with ``landmarks`` ``(5, 2)``."""
    return warp_to_chip(image, chip_transform(landmarks, size, padding), size)


def extract_chips(image: np.ndarray, landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """Chips ``(n, size, size, c)`` uint8 for the faces with ``landmarks`` ``(n, 5, 2)``."""
    lms = np.asarray(landmarks)
    if lms.ndim != 3 or lms.shape[1:] != (5, 2):
        raise ValueError(f"landmarks: expected (n, 5, 2), got {lms.shape}")
    channels = image.shape[2:] if image.ndim == 3 else ()
    out = np.empty((len(lms), size, size, *channels), np.uint8)
    for k, lm in enumerate(lms):
        out[k] = extract_chip(image, lm, size, padding)
    return out


def crop_from_normalized(norm_chip: np.ndarray, norm_size: int, norm_padding: float,
                         size: int, padding: float) -> np.ndarray:
    """Cut the ``size`` chip with ``padding`` out of a normalized chip (``norm_size``, ``norm_padding``)
    of the same face: same centre and rotation, scaled. ``padding`` should not exceed
    ``norm_padding`` (a larger one reads past the normalized chip, which comes out black)."""
    _check_geometry(norm_size, norm_padding)
    _check_geometry(size, padding)
    if norm_chip.shape[:2] != (norm_size, norm_size):
        raise ValueError(f"norm_chip: expected {norm_size}x{norm_size}, got {norm_chip.shape[:2]}")
    # chip pixel r = (t + p) / (1 + 2p) * (S - 1), with t from q = (t + pn) / (1 + 2pn) * (Sn - 1)
    a = (1.0 + 2.0 * norm_padding) / (norm_size - 1) * (size - 1) / (1.0 + 2.0 * padding)
    b = (padding - norm_padding) / (1.0 + 2.0 * padding) * (size - 1)
    return warp_to_chip(norm_chip, np.array([[a, 0.0, b], [0.0, a, b]]), size)


def warp_to_chip(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Sample the ``size`` x ``size`` chip that the ``2x3`` similarity ``matrix`` (image -> chip)
    describes: bilinear, anti-aliased by exact halvings when shrinking by 2x or more, black outside."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 image (h, w[, c]), got {img.dtype} {img.shape}")
    m = np.asarray(matrix, np.float64).copy()
    chip_px_per_image_px = math.sqrt(abs(np.linalg.det(m[:, :2])))
    halvings = 0
    ratio = 1.0 / chip_px_per_image_px
    while ratio >= 2.0:
        ratio /= 2.0
        halvings += 1
    if halvings:
        # only the chip's footprint (plus a margin) is halved
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64)
        foot = corners @ inv[:, :2].T + inv[:, 2]
        margin = 2 ** (halvings + 1)
        h, w = img.shape[:2]
        x0 = max(int(math.floor(foot[:, 0].min())) - margin, 0)
        y0 = max(int(math.floor(foot[:, 1].min())) - margin, 0)
        x1 = min(int(math.ceil(foot[:, 0].max())) + margin, w)
        y1 = min(int(math.ceil(foot[:, 1].max())) + margin, h)
        if x1 - x0 < 2 ** halvings or y1 - y0 < 2 ** halvings:
            return np.zeros((size, size, *img.shape[2:]), np.uint8)  # footprint outside the image
        img = img[y0:y1, x0:x1]
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
        for _ in range(halvings):
            h2, w2 = img.shape[0] // 2, img.shape[1] // 2
            img = cv2.resize(img[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA)
            # halved pixel j is the mean of pixels 2j, 2j + 1: x = 2 * xh + 0.5
            m[:, 2] += m[:, :2] @ np.array([0.5, 0.5])
            m[:, :2] *= 2.0
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _check_geometry(size: int, padding: float) -> None:
    if int(size) != size or size < 2:
        raise ValueError(f"chip size must be an integer >= 2, got {size}")
    if not 0.0 <= padding <= 10.0:
        raise ValueError(f"chip padding must be in [0, 10], got {padding}")
