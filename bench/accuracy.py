"""Accuracy on the sample photos (`make data`): verification, detection recall, attribute sanity.

Run: ``make bench`` or ``.venv/bin/python bench/accuracy.py``. Our pipeline (MTCNN + dlib-style
alignment + the ONNX networks) beside the face_recognition pipeline (dlib HOG + dlib ResNet).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, expected_faces, identity_photos, pairs, photos, table  # noqa: E402
from sfapi.config import SfapiConfig  # noqa: E402
from facestack.vision.engines.analyzer import FaceAnalyzer, normalize_facen, postprocess  # noqa: E402
from facestack.vision.engines.images import decode_image  # noqa: E402
from facestack.vision.engines.runtime import create_runtime  # noqa: E402
from facestack.vision.engines.similarity import DEFAULT_THRESHOLD, similarity  # noqa: E402

FEMALE: set[str] = set()  # every identity of the sample photos is a man


def largest(boxes: np.ndarray) -> int:
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    cfg = SfapiConfig()
    analyzer = FaceAnalyzer(cfg.models.resolved_dir(), cfg, create_runtime("onnxruntime", 1))
    try:
        from bench.dlib_baseline import DlibPipeline
        baseline: DlibPipeline | None = DlibPipeline(cfg.models.resolved_dir() / "sources")
    except ImportError:
        baseline = None
    out = sys.stdout

    # --- verification -------------------------------------------------------------------------
    ids = identity_photos()
    ours: dict[Path, np.ndarray] = {}
    base: dict[Path, np.ndarray] = {}
    attrs: list[list[object]] = []
    for name, ps in ids.items():
        for p in ps:
            rgb = decode_image(p.read_bytes(), 10**9).rgb
            prep, raw = analyzer.analyze(rgb)
            i = largest(prep.faces.boxes)
            ours[p] = normalize_facen(raw["facen"][i])
            f = postprocess(raw, i)
            expected = "female" if name in FEMALE else "male"
            attrs.append([f"{name}/{p.name}", expected, f["gender"]["gender"], f["gender"]["score"], f["age"],
                          f["emotions"][0]["emotion"]])
            if baseline is not None:
                found = baseline.encode(p)
                if found:
                    base[p] = found[0]  # single-face photos
    same, diff = pairs(ids)
    rows = []
    s_sim = np.array([float(similarity(ours[a] @ ours[b])) for a, b in same])
    d_sim = np.array([float(similarity(ours[a] @ ours[b])) for a, b in diff])
    errors = int((s_sim < DEFAULT_THRESHOLD).sum() + (d_sim >= DEFAULT_THRESHOLD).sum())
    rows.append(["ours (similarity 0..1, match >= %.3f)" % DEFAULT_THRESHOLD, len(same), len(diff),
                 float(s_sim.min()), float(d_sim.max()), "yes" if s_sim.min() > d_sim.max() else "no", errors])
    if baseline is not None:
        bs = [float(np.linalg.norm(base[a] - base[b])) for a, b in same if a in base and b in base]
        bd = [float(np.linalg.norm(base[a] - base[b])) for a, b in diff if a in base and b in base]
        berr = sum(d > 0.6 for d in bs) + sum(d <= 0.6 for d in bd)
        rows.append(["face_recognition (distance, match <= 0.6)", len(bs), len(bd), max(bs), min(bd),
                     "yes" if max(bs) < min(bd) else "no", berr])
    out.write(f"Verification on the sample photos: {len(ids)} identities (every same- and different-identity pair)\n")
    out.write(table(["pipeline", "same pairs", "diff pairs", "worst same", "worst diff", "separable",
                     "errors at default"], rows) + "\n\n")

    # --- detection recall ---------------------------------------------------------------------
    rows = []
    exp_total = found_total = base_total = 0
    for p in photos():
        expected = expected_faces(p)
        rgb = decode_image(p.read_bytes(), 10**9).rgb
        n = len(analyzer.detect(rgb))
        b = len(baseline.detector(rgb, 1)) if baseline is not None else -1
        exp_total += expected
        found_total += min(n, expected)
        base_total += min(b, expected) if b >= 0 else 0
        if n != expected or (b >= 0 and b != expected):
            rows.append([str(p.relative_to(DATA)), expected, n, b])
    out.write(f"Detection recall: ours {found_total}/{exp_total}"
              + (f", dlib HOG {base_total}/{exp_total}" if baseline is not None else "") + "\n")
    if rows:
        out.write(table(["photo with a different count", "expected", "ours", "dlib HOG"], rows) + "\n")
    out.write("\n")

    # --- attributes ---------------------------------------------------------------------------
    right = sum(1 for r in attrs if r[1] == r[2])
    out.write(f"Gender of the known identities: {right}/{len(attrs)} right\n")
    out.write(table(["photo", "expected", "gender", "score", "age", "emotion"], attrs) + "\n")
    analyzer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
