"""The similarity scale shared by verify and gallery search: 0..1, higher = more alike.

Facens are L2-normalized 128-d dlib descriptors, so two faces are compared by the Euclidean
distance ``d = sqrt(2 - 2 cos)`` between unit vectors. dlib's published rule is "same person when the
raw distance is <= 0.6"; raw descriptors have norms of about 1.43 (1.31-1.54 on real photos), so on
unit vectors that boundary sits at ``d_t = 0.6 / 1.43 = 0.42``. The confidence is linear in the
distance and puts that boundary at 0.75::

    confidence = clip(1 - d / (4 * d_t), 0, 1)

so 1.0 is an identical vector, 0.75 the model's match threshold (``DEFAULT_THRESHOLD``), 0.79 a
distance 17% inside it and 0.69 one 25% outside it. Measured by bench/accuracy.py on the sample
photos (nine people, 38 same-person and 368 different-person pairs): the least similar same-person
pair scores 0.83 and the most similar different-person pair 0.75 (0.78 and 0.72 on the 17-face
development set the scale was first set on).
"""
from __future__ import annotations

import numpy as np

#: unit-vector distance equivalent to dlib's raw-distance threshold 0.6
MATCH_DISTANCE = 0.42
DEFAULT_THRESHOLD = 0.75
_SPAN = 4.0 * MATCH_DISTANCE


def similarity(cos: np.ndarray | float) -> np.ndarray:
    """Map the cosine of two unit facens to the 0..1 confidence scale."""
    d = np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(cos, np.float32), 0.0))
    return np.clip(1.0 - d / _SPAN, 0.0, 1.0).astype(np.float32)


def cosine_threshold(confidence: float) -> float:
    """The cosine at which ``similarity`` equals ``confidence`` (for filtering before mapping)."""
    d = (1.0 - min(max(confidence, 0.0), 1.0)) * _SPAN
    return float(1.0 - d * d / 2.0)
