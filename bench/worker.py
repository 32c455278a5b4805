"""Video worker cost: decode-only vs the full worker, CPU seconds per second of video.

Run: ``.venv/bin/python bench/worker.py [--seconds S] [--sizes 1080p,720p] [--sparse 1080p]``. For
each size an H.264 25 fps clip of moving faces (made from the sample photos, cached under
var/bench/) is:

* ``decode``: demuxed and decoded with PyAV as the worker does (no pixel conversion);
* ``worker@5`` / ``worker@25``: run through the real worker (shared detector, tracker, quality,
  best-face selection, JPEG posts to an in-process facerouter stand-in) at detect_fps 5 and 25,
  ``play_speed: -1`` (as fast as possible).

The ``sparse`` streams (``--sparse`` sizes) show people a quarter of the time
(:func:`video_worker.clips.sparse_scene`): besides ``decode`` and ``worker@N`` they run with the
motion gate on, ``worker@N+gate`` (``imotion_threshold`` ``--gate``, ``motion_gate_max_skip_s``
``--max-skip``); ``skipped`` is the job's ``frames_skipped_motion``.

CPU is the whole process's (all threads: decoder, detector pool, batchers, event loop). Reports CPU
seconds per second of video, the ratio to decode-only, and how many real-time streams that many
cores sustain (``--cores``, default 2) at that cost.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REPO, table  # noqa: E402

SIZES = {"1080p": (1920, 1080), "720p": (1280, 720)}
FPS = 25


def make_clip(name: str, seconds: float, sparse: bool = False) -> Path:
    """The cached clip of ``name`` size: people walking across, as in the tests (4 s played
    ``seconds`` / 4 times), or (``sparse``) people there a quarter of the time."""
    from sfapi.config import default_models_dir
    from sfapi.engines.mtcnn import MtcnnDetector
    from sfapi.engines.runtime import create_runtime
    from video_worker import clips

    out = REPO / "var" / "bench" / f"{'sparse' if sparse else 'people'}-{name}-{seconds:g}s.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if sparse:
        scene, loops = clips.sparse_scene(SIZES[name], FPS, seconds), 1
    else:
        scene, loops = clips.people_scene(SIZES[name], FPS, 4.0), max(1, round(seconds / 4.0))
    det = MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), default_models_dir())
    patches = clips.face_patches(det, {k: DATA / v for k, v in clips.PHOTOS.items()}, scene.patch)
    return clips.encode(scene, patches, out, loops=loops, gop=2 * FPS)


def decode_only(clip: Path) -> tuple[float, float, int]:
    """(CPU s, wall s, frames) to decode ``clip`` as the worker does."""
    import av

    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        for packet in container.demux(stream):
            frames += len(packet.decode())
    return time.process_time() - cpu0, time.perf_counter() - wall0, frames


async def full_worker(clip: Path, detect_fps: float, detector: object, state: Path,
                      gate: dict[str, float] | None = None) -> tuple[float, float, int, int, int]:
    """(CPU s, wall s, frames, posts, frames skipped by the motion gate) of one single-pass job on
    ``clip``; ``gate``: the motion gate's settings (none: off)."""
    from tests.video_worker.conftest import RouterStandIn, free_port, worker_config
    from video_worker.app import Worker

    router = RouterStandIn(free_port())
    await router.start()
    cfg = worker_config(state, router.url, [{"id": "bench", "stream_url": str(clip), "single_pass": True,
                                             "settings": {"detect_fps": detect_fps, "filter_min_size": 60,
                                                          **(gate or {})}}])
    worker = Worker(cfg, detector=detector)  # type: ignore[arg-type]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await worker.start(serve=False)
    job = worker.manager.get("bench")
    await job.finished.wait()
    await job.outbox.drained()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    frames, skipped = job.stats.frames_decoded, job.stats.frames_skipped_motion
    await worker.shutdown()
    await router.stop()
    return cpu, wall, frames, len(router.posts), skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length")
    parser.add_argument("--sizes", default="1080p,720p")
    parser.add_argument("--detect-fps", default="5,25")
    parser.add_argument("--sparse", default="1080p", help="sizes of the sparse stream ('' for none)")
    parser.add_argument("--gate", type=float, default=0.005, help="imotion_threshold of the +gate rows")
    parser.add_argument("--max-skip", type=float, default=2.0, help="motion_gate_max_skip_s of the +gate rows")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=2, help="detector threads")
    parser.add_argument("--no-batching", action="store_true", help="detector.batching: false")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from video_worker.config import DetectorSection, ModelsSection
    from video_worker.detector import SharedDetector

    detector = SharedDetector(ModelsSection(), DetectorSection(threads=args.threads,
                                                              batching=not args.no_batching))
    gate = {"imotion_threshold": args.gate, "motion_gate_max_skip_s": args.max_skip}
    streams = [(name, False) for name in args.sizes.split(",") if name]
    streams += [(name, True) for name in args.sparse.split(",") if name]
    rows = []
    try:
        for name, sparse in streams:
            clip = make_clip(name, args.seconds, sparse)
            label = f"{name} sparse" if sparse else name
            decode_only(clip)  # warm the page cache
            cpu, wall, frames = decode_only(clip)
            video_s = frames / FPS
            base = cpu / video_s
            rows.append([label, "decode", frames, wall, cpu, base, 1.0, frames / wall, args.cores / base, "-", "-"])
            for fps in (float(f) for f in args.detect_fps.split(",")):
                for gated in ((False, True) if sparse else (False,)):
                    with tempfile.TemporaryDirectory() as tmp:
                        cpu, wall, frames, posts, skipped = asyncio.run(
                            full_worker(clip, fps, detector, Path(tmp), gate if gated else None))
                    per_s = cpu / (frames / FPS)
                    rows.append([label, f"worker@{fps:g}{'+gate' if gated else ''}", frames, wall, cpu, per_s,
                                 per_s / base, frames / wall, args.cores / per_s, posts,
                                 skipped if gated else "-"])
    finally:
        detector.close()
    print(table(["stream", "mode", "frames", "wall s", "CPU s", "CPU s / video s", "x decode",
                 "fps", f"streams on {args.cores} cores", "posts", "skipped"], rows))
    if any(sparse for _, sparse in streams):
        print(f"+gate: imotion_threshold {args.gate:g}, motion_gate_max_skip_s {args.max_skip:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
