"""The similarity scale shared by verify and gallery search: 0..1, higher = more alike.

Facens are L2-normalized, so the cosine is their dot product. dlib's ResNet was trained for a
Euclidean threshold of 0.6 on its raw vectors; on normalized vectors the matching boundary sits near
cosine 0.75 (measured on shared/data, see bench/accuracy.py). The scale maps cosine c to
``clip((c + 1) / 2, 0, 1)`` squared-free and monotone, so thresholds in 0..1 compare directly.
"""
from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.875


def similarity(cos: np.ndarray | float) -> np.ndarray:
    """Map cosine similarity to the 0..1 confidence scale."""
    return np.clip((np.asarray(cos, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def cosine_to(query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return matrix @ query
