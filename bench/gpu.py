"""Detection and extraction speed with TensorRT on the GPU, beside the CPU path (ONNX Runtime).

Run on a machine with an NVIDIA GPU, TensorRT 10 and pycuda: ``.venv/bin/python bench/gpu.py``.
Without them it prints "no GPU: nothing measured" and exits 0; ``--cpu`` then measures the CPU
path alone (ONNX Runtime), so the figures a GPU run prints beside TensorRT can be checked here.

* detection: the MTCNN cascade on every sample photo (`make data`); "batch 1" is one photo at a time
  on one thread, "batch 64" is 64 photos in flight on a thread pool (MTCNN batches the candidates
  of one photo, not photos: the GPU is shared by the threads). faces/s = faces found / seconds.
* extraction: facen + gender + age + emotions on the aligned faces of the photos, in forward passes
  of 1 and of 64 faces; facen alone beside it. faces/s = faces through all networks / seconds.
TensorRT engines come from the engine cache (built on the first run; build time is not timed).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, photos, table  # noqa: E402
from sfapi.config import RuntimeConfig, SfapiConfig  # noqa: E402
from facestack.vision.engines.analyzer import FEATURES, FaceAnalyzer  # noqa: E402
from facestack.vision.engines.mtcnn import MtcnnDetector, MtcnnSettings  # noqa: E402
from facestack.vision.engines.runtime import Runtime, Session, create_runtime  # noqa: E402
from facestack.vision.engines.tensorrt import probe_gpu_stack  # noqa: E402
from facestack.vision.models.pack import read_manifest  # noqa: E402

BATCHES = (1, 64)


def timed(fn: Callable[[], int], min_seconds: float) -> tuple[int, float]:
    """Repeat ``fn`` (returns faces done) until ``min_seconds`` have passed; (faces, seconds)."""
    fn()  # warm-up: first-run allocations, kernel selection
    faces, started = 0, time.perf_counter()
    while True:
        faces += fn()
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return faces, elapsed


def detection(runtime: Runtime, cfg: SfapiConfig, images: list[np.ndarray], min_s: float) -> dict[int, tuple[int, float]]:
    d = cfg.detector
    det = MtcnnDetector.from_pack(runtime, cfg.models.resolved_dir(),
                                  MtcnnSettings(min_face_size=d.min_face_size, thresholds=d.thresholds,
                                                max_image_side=d.max_image_side))
    out = {1: timed(lambda: sum(len(det.detect(im)) for im in images), min_s)}
    work = images * -(-64 // len(images))  # every photo equally often, >= 64 of them in flight
    with ThreadPoolExecutor(64) as pool:
        out[64] = timed(lambda: sum(len(f) for f in pool.map(det.detect, work)), min_s)
    return out


def extraction(sessions: dict[str, Session], inputs: dict[str, np.ndarray], names: tuple[str, ...],
               min_s: float) -> dict[int, tuple[int, float]]:
    out = {}
    for batch in BATCHES:
        rows = len(inputs["facen"])
        reps = -(-batch // rows)
        tiled = {n: np.concatenate([inputs[n]] * reps)[:max(batch, rows)] for n in names}
        blocks = [{n: tiled[n][i:i + batch] for n in names} for i in range(0, len(tiled["facen"]), batch)]

        def one_pass() -> int:
            for block in blocks:
                for n in names:
                    sessions[n].run(block[n])
            return sum(len(b["facen"]) for b in blocks)

        out[batch] = timed(one_pass, min_s)
    return out


def face_inputs(cfg: SfapiConfig, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The network inputs of every face of the photos, prepared once by the CPU pipeline."""
    an = FaceAnalyzer(cfg.models.resolved_dir(), cfg, create_runtime("onnxruntime", 1))
    try:
        parts = [an.prepare(im, an.detect(im), FEATURES).inputs for im in images]
    finally:
        an.close()
    return {n: np.concatenate([p[n] for p in parts if n in p and len(p[n])]) for n in FEATURES}


def measure(label: str, runtime: Runtime, cfg: SfapiConfig, images: list[np.ndarray],
            inputs: dict[str, np.ndarray], min_s: float) -> list[list[object]]:
    models = cfg.models.resolved_dir()
    manifest = read_manifest(models)
    sessions = {n: runtime.load(models / manifest["networks"][n]["file"], n) for n in FEATURES}
    rows: list[list[object]] = []
    for batch, (faces, secs) in detection(runtime, cfg, images, min_s).items():
        rows.append(["detection (MTCNN)", batch, label, faces, secs, faces / secs])
    for task, names in (("extraction (facen+gender+age+emotions)", FEATURES), ("extraction (facen only)", ("facen",))):
        for batch, (faces, secs) in extraction(sessions, inputs, names, min_s).items():
            rows.append([task, batch, label, faces, secs, faces / secs])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per figure")
    parser.add_argument("--cpu", action="store_true", help="without a GPU, measure the CPU path alone")
    parser.add_argument("--engine-cache", type=Path, help="TensorRT engine cache (default: from config)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = sys.stdout
    stack = probe_gpu_stack()
    if not stack.ok:
        out.write("no GPU: nothing measured with TensorRT (" + "; ".join(stack.problems) + ")\n")
        if not args.cpu:
            return 0
    cfg = SfapiConfig()
    paths = photos()
    images = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]
    inputs = face_inputs(cfg, images)
    out.write(f"{len(paths)} photos from {DATA}, {len(inputs['facen'])} faces, {os.cpu_count()} cores\n")
    rows = []
    if stack.ok:
        out.write(f"GPU {stack.device_name} (sm_{stack.compute_capability[0]}{stack.compute_capability[1]}), "  # type: ignore[index]
                  f"TensorRT {stack.tensorrt_version}\n")
        rt_cfg = RuntimeConfig(kind="tensorrt", engine_cache_dir=args.engine_cache)
        trt = create_runtime("tensorrt", 0, rt_cfg)
        try:
            rows += measure("tensorrt", trt, cfg, images, inputs, args.seconds)
            for r in trt.loads:  # type: ignore[attr-defined]
                out.write(f"  {r.name}: {r.precision}, {'cached' if r.cache_hit else 'built'} engine {r.engine_path}\n")
        finally:
            trt.close()  # type: ignore[attr-defined]
    rows += measure("onnxruntime CPU (all cores)", create_runtime("onnxruntime", 0), cfg, images, inputs, args.seconds)
    rows.sort(key=lambda r: (str(r[0]), int(r[1]), str(r[2])))  # type: ignore[call-overload]
    out.write("\n" + table(["task", "batch", "runtime", "faces", "seconds", "faces/s"], rows) + "\n")
    if not stack.ok:
        out.write("\nCPU figures only; TensorRT not measured (no GPU)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
