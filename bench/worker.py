"""Video worker cost and recall: decode-only vs the worker's two detection pipelines, in one run.

Run: ``.venv/bin/python bench/worker.py [--seconds S] [--sizes 1080p,720p] [--scenes busy,sparse]``.
For each size and scene an H.264 25 fps clip is built from the sample photos (``make data``; cached under var/bench/):

* ``busy`` (:func:`facestack.stack.clips.busy_scene`): five people at three face sizes walking in and
  out on a textured background, a pole passing in front of two of them, an empty stretch at the end;
* ``sparse`` (:func:`facestack.stack.clips.quiet_scene`): people there a quarter of the time.

Each clip is decoded alone (``decode``: PyAV as the worker does, no pixel conversion) and run through
the real worker (shared detector, tracker, pose and quality, best-face selection, JPEG posts to a
facerouter stand-in in a process of its own, ``play_speed: -1``) with ``detector.pipeline: mtcnn``
(every sampled frame scanned whole, the old worker) and ``regions`` (the default,
:mod:`video_worker.regions`).

Columns: CPU seconds per second of video (the whole process: decoder, detector pool, batchers, event
loop, from the end of the worker's start-up, whose CPU is shown apart as ``start CPU s``: it is
spent once per worker process, not per second of any stream), that ratio to decode-only, how many
real-time streams ``--cores`` sustain at that cost; ``faces`` = ground-truth faces found in the
analysed frames / ground-truth faces there (a face counts when at least ``filter_min_size`` wide,
90% inside the frame and at most 30% behind the pole; found when a detected box's centre lies in its
face box); ``tracks`` = ground-truth appearances posted at least once / appearances seen in an
analysed frame; ``posts``: all posts (more than the tracks when a track broke in two). Compare
ratios within one run: the machine may be shared, absolute seconds move with its load: each row is
the cheapest of ``--repeat`` runs (decode-only: of three), run interleaved, so a burst of load
elsewhere inflates no single row. The facerouter stand-in runs in a process of its own, so its
parsing of the posts is not counted.

``--stages`` instead runs the busy 1080p clip through the ``regions`` pipeline with CPU timers around
each step (:data:`STAGES`) and prints their CPU per call and per analysed frame.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REPO, table  # noqa: E402

SIZES = {"1080p": (1920, 1080), "720p": (1280, 720)}
FPS = 25
MIN_SIZE = 60


def scene_of(kind: str, name: str, seconds: float) -> Any:
    from facestack.stack import clips

    make = clips.busy_scene if kind == "busy" else clips.quiet_scene
    return make(SIZES[name], FPS, seconds)


def make_clip(kind: str, name: str, seconds: float) -> Path:
    """The cached clip of scene ``kind`` at size ``name``."""
    from sfapi.config import default_models_dir
    from facestack.vision.engines.mtcnn import MtcnnDetector
    from facestack.vision.engines.runtime import create_runtime
    from facestack.stack import clips

    out = REPO / "var" / "bench" / f"{kind}-{name}-{seconds:g}s-v3.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    scene = scene_of(kind, name, seconds)
    side = max(a.patch or scene.patch for a in scene.appearances)
    det = MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), default_models_dir())
    patches = clips.face_patches(det, {k: DATA / v for k, v in clips.BENCH_PHOTOS.items()}, side)
    return clips.encode(scene, patches, out, gop=2 * FPS)


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


def _router_process(port: int, conn: Any) -> None:
    """The facerouter stand-in in a process of its own (its parsing of the posts is not the worker's
    CPU): sends "ready", serves until told to stop, then sends the ``detectorParams`` of each post."""
    from tests.video_worker.conftest import RouterStandIn

    async def serve() -> list[dict[str, Any]]:
        router = RouterStandIn(port)
        await router.start()
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await router.stop()
        return [{"detectorParams": p["detectorParams"]} for p in router.posts]

    conn.send(asyncio.run(serve()))


class RouterProcess:
    """:func:`_router_process` started and stopped from the bench."""

    def __init__(self) -> None:
        import multiprocessing

        from tests.video_worker.conftest import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_router_process, args=(self.port, child), daemon=True)

    def start(self) -> None:
        self._proc.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            raise RuntimeError("the router stand-in did not start")

    def stop(self) -> list[dict[str, Any]]:
        """Stop it; the posts it received."""
        try:
            self._conn.send("stop")
            posts: list[dict[str, Any]] = self._conn.recv() if self._conn.poll(60) else []
            return posts
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()


async def full_worker(clip: Path, detect_fps: float, detector: object,
                      state: Path) -> tuple[float, float, int, list[dict[str, Any]], dict[int, list[Any]], float]:
    """(CPU s, wall s, frames decoded, posts, detected boxes by analysed frame number, start-up CPU s)
    of one single-pass job on ``clip``. The worker's start-up (TLS roots loaded for the router
    client, the job store opened; once per worker process, whatever its cameras) is counted apart
    unless a frame was decoded before it ended (then it counts in full)."""
    from tests.video_worker.conftest import worker_config
    from video_worker.analysis import CameraAnalyzer
    from video_worker.app import Worker

    found: dict[int, list[Any]] = {}
    process = CameraAnalyzer.process

    def recording(self: CameraAnalyzer, item: Any) -> Any:
        result = process(self, item)
        found[item.frame_no] = result.faces.boxes.tolist()
        return result

    router = RouterProcess()
    router.start()
    posts: list[dict[str, Any]] = []
    cfg = worker_config(state, router.url, [{"id": "bench", "stream_url": str(clip), "single_pass": True,
                                             "settings": {"detect_fps": detect_fps, "filter_min_size": MIN_SIZE}}])
    worker = Worker(cfg, detector=detector)  # type: ignore[arg-type]
    CameraAnalyzer.process = recording  # type: ignore[method-assign]
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await worker.start(serve=False)
        job = worker.manager.get("bench")
        start_cpu = 0.0
        if job.stats.frames_decoded == 0:
            cpu1 = time.process_time()
            start_cpu, cpu0 = cpu1 - cpu0, cpu1
        await job.finished.wait()
        await job.outbox.drained()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        frames = job.stats.frames_decoded
        await worker.shutdown()
    finally:
        CameraAnalyzer.process = process  # type: ignore[method-assign]
        posts = router.stop()
    return cpu, wall, frames, posts, found, start_cpu


#: the steps ``--stages`` times: (module, owner in it or None, function, label)
STAGES = (
    ("video_worker.job", None, "to_rgb", "RGB conversion (decode thread)"),
    ("video_worker.analysis", "CameraAnalyzer", "process", "analysis of a frame"),
    ("video_worker.analysis", "CameraAnalyzer", "_detect", "  detection"),
    ("video_worker.regions", "RegionDetector", "_refine_tracks", "    O-Net on tracked faces"),
    ("video_worker.regions", "RegionDetector", "_scan_zones", "    cascade where it moved"),
    ("video_worker.regions", "RegionDetector", "_full_scan", "    full scans"),
    ("video_worker.regions", None, "_thumb", "    motion thumbnail"),
    ("video_worker.analysis", "CameraAnalyzer", "_observations", "  observations"),
    ("facestack.vision.engines.pose", "PoseEstimator", "estimate", "    pose network"),
    ("video_worker.analysis", None, "extract_chips", "    sharpness chips"),
    ("video_worker.posts", "PostBuilder", "build", "posts (JPEG)"),
)


class StageTimer:
    """Thread CPU time (``time.thread_time``) spent in each of :data:`STAGES`, by wrapping them for
    the duration of a ``with`` block (a call inside an outer call of the same step counts once)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {label: 0.0 for *_, label in STAGES}
        self.calls: dict[str, int] = {label: 0 for *_, label in STAGES}
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, func: Any, label: str) -> Any:
        import functools
        import threading

        inside = threading.local()

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(inside, "on", False):
                return func(*args, **kwargs)
            inside.on = True
            t0 = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.cpu[label] += time.thread_time() - t0
                self.calls[label] += 1
                inside.on = False

        return timed

    def __enter__(self) -> "StageTimer":
        import importlib

        for module, owner, name, label in STAGES:
            target = importlib.import_module(module)
            if owner is not None:
                target = getattr(target, owner)
            func = getattr(target, name)
            self._saved.append((target, name, func))
            setattr(target, name, self._wrap(func, label))
        return self

    def __exit__(self, *exc: object) -> None:
        for target, name, func in reversed(self._saved):
            setattr(target, name, func)
        self._saved.clear()

    def rows(self, analysed: int) -> list[list[Any]]:
        return [[label, self.calls[label], round(self.cpu[label], 3),
                 round(1000 * self.cpu[label] / max(self.calls[label], 1), 2),
                 round(1000 * self.cpu[label] / max(analysed, 1), 2)] for *_, label in STAGES]


def stages(detect_fps: float, seconds: float, threads: int) -> int:
    """``--stages``: one ``regions`` run of the busy 1080p clip with :class:`StageTimer` on."""
    from video_worker.config import DetectorSection, ModelsSection
    from video_worker.detector import SharedDetector

    clip = make_clip("busy", "1080p", seconds)
    det = SharedDetector(ModelsSection(), DetectorSection(threads=threads, pipeline="regions"))
    try:
        with tempfile.TemporaryDirectory() as tmp:  # a first run warms the sessions and caches
            asyncio.run(full_worker(clip, detect_fps, det, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp, StageTimer() as timer:
            cpu, _, frames, _, found, _ = asyncio.run(full_worker(clip, detect_fps, det, Path(tmp)))
    finally:
        det.close()
    analysed = len(found)
    print(f"1080p busy, regions@{detect_fps:g}: {cpu:.2f} CPU s for {frames} frames, {analysed} analysed")
    print(table(["step", "calls", "CPU s", "ms a call", "ms per analysed frame"], timer.rows(analysed)))
    return 0


def recall(scene: Any, found: dict[int, list[Any]], posts: list[dict[str, Any]]) -> tuple[str, str, int]:
    """(faces found / truth, appearances posted / appearances seen, posts)."""
    from facestack.stack import clips

    hits = total = 0
    seen: set[int] = set()
    for frame_no, boxes in found.items():
        truth = clips.visible_faces(scene, frame_no % scene.frames, MIN_SIZE)
        total += len(truth)
        hits += len(clips.match_faces(truth, boxes))
        seen.update(k for k, _ in truth)
    posted: set[int] = set()
    for post in posts:
        p = post["detectorParams"]
        f = p["frame_no"] % scene.frames
        truth = [(k, clips.face_box(scene, app, f)) for k, app in enumerate(scene.appearances)]
        posted |= clips.match_faces([(k, b) for k, b in truth if b is not None], [p["frame_bbox"]])
    return f"{hits}/{total}", f"{len(posted & seen)}/{len(seen)}", len(posts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length")
    parser.add_argument("--sizes", default="1080p,720p")
    parser.add_argument("--scenes", default="busy,sparse")
    parser.add_argument("--pipelines", default="mtcnn,regions")
    parser.add_argument("--detect-fps", type=float, default=5.0)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=2, help="detector threads")
    parser.add_argument("--repeat", type=int, default=2, help="runs per worker row (the cheapest is shown)")
    parser.add_argument("--no-batching", action="store_true", help="detector.batching: false")
    parser.add_argument("--stages", action="store_true",
                        help="instead: CPU of each step of the regions pipeline on the busy 1080p clip")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    if args.stages:
        return stages(args.detect_fps, args.seconds, args.threads)
    from video_worker.config import DetectorSection, ModelsSection
    from video_worker.detector import SharedDetector

    pipelines = [p for p in args.pipelines.split(",") if p]
    detectors = {p: SharedDetector(ModelsSection(), DetectorSection(threads=args.threads, pipeline=p,
                                                                    batching=not args.no_batching))
                 for p in pipelines}
    rows = []
    try:
        for kind in (k for k in args.scenes.split(",") if k):
            for name in (n for n in args.sizes.split(",") if n):
                clip = make_clip(kind, name, args.seconds)
                scene = scene_of(kind, name, args.seconds)
                label = f"{name} {kind}"
                decode_only(clip)  # warm the page cache
                decodes = [decode_only(clip)]
                runs: dict[str, list[Any]] = {p: [] for p in pipelines}
                for _ in range(max(args.repeat, 1)):
                    for pipe in pipelines:
                        with tempfile.TemporaryDirectory() as tmp:
                            runs[pipe].append(asyncio.run(
                                full_worker(clip, args.detect_fps, detectors[pipe], Path(tmp))))
                    decodes.append(decode_only(clip))
                while len(decodes) < 3:
                    decodes.append(decode_only(clip))
                cpu, wall, frames = min(decodes)
                base = cpu / (frames / FPS)
                rows.append([label, "decode", frames, round(cpu, 2), "-", base, 1.0, args.cores / base, "-", "-", "-"])
                for pipe in pipelines:
                    cpu, wall, frames, posts, found, start_cpu = min(runs[pipe], key=lambda r: r[0])
                    per_s = cpu / (frames / FPS)
                    faces, tracks, n_posts = recall(scene, found, posts)
                    rows.append([label, f"{pipe}@{args.detect_fps:g}", frames, round(cpu, 2), round(start_cpu, 2),
                                 per_s, per_s / base, args.cores / per_s, faces, tracks, n_posts])
    finally:
        for det in detectors.values():
            det.close()
    print(table(["stream", "mode", "frames", "CPU s", "start CPU s", "CPU s / video s", "x decode",
                 f"streams on {args.cores} cores", "faces", "tracks", "posts"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
