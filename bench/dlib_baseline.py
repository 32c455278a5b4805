"""The widely used ``face_recognition`` pipeline, called through dlib the way that package does.

face_recognition 1.3.0's defaults: HOG detector with one upsample (``face_locations``), the 5-point
shape predictor (``face_encodings(model="small")``), dlib's ResNet descriptor with one jitter, and a
match when the Euclidean distance is <= 0.6. The model files are the originals kept in the pack.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class DlibPipeline:
    def __init__(self, sources: Path) -> None:
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(sources / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(sources / "dlib_face_recognition_resnet_model_v1.dat"))

    def encode(self, path: Path) -> list[np.ndarray]:
        img = self._dlib.load_rgb_image(str(path))
        out = []
        for rect in self.detector(img, 1):
            shape = self.predictor(img, rect)
            out.append(np.asarray(self.encoder.compute_face_descriptor(img, shape, 1), np.float32))
        return out
