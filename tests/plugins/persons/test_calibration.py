"""The thresholds' meaning on our similarity scale, on the sample photos (see docs/persons.rst).

Every same-person pair must be exact or ha, every different-person pair junk or nm: the defaults
79.3 / 75.5 / 68.84 on ``confidence * 100`` keep the reference's meaning for our facen."""
from __future__ import annotations

import itertools

import numpy as np

from facestack.vision.engines.analyzer import normalize_facen
from facestack.vision.engines.images import decode_image
from facestack.vision.engines.similarity import similarity


def band(score: float) -> str:
    if score >= 79.3:
        return "exact"
    if score >= 75.5:
        return "ha"
    if score >= 68.84:
        return "junk"
    return "nm"


def test_default_thresholds_on_sample_photos(analyzer, data_dir) -> None:
    facens = {}
    for folder in sorted((data_dir / "faces").iterdir()):
        for photo in sorted(folder.iterdir()):
            prepared, raw = analyzer.analyze(decode_image(photo.read_bytes(), 10**9).rgb,
                                             ["facen"])
            boxes = prepared.faces.boxes
            largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
            facens[(folder.name, photo.name)] = normalize_facen(raw["facen"])[largest]
    counts = {("same", b): 0 for b in ("exact", "ha", "junk", "nm")}
    counts.update({("different", b): 0 for b in ("exact", "ha", "junk", "nm")})
    for (a, fa), (b, fb) in itertools.combinations(facens.items(), 2):
        score = float(similarity(float(np.dot(fa, fb)))) * 100
        counts[("same" if a[0] == b[0] else "different", band(score))] += 1
    assert counts[("same", "junk")] == counts[("same", "nm")] == 0, counts
    assert counts[("different", "exact")] == counts[("different", "ha")] == 0, counts
    assert counts[("same", "exact")] > 0.8 * (counts[("same", "exact")] + counts[("same", "ha")])
