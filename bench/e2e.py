"""End to end: from a frame leaving the decoder to its entry stored, on the real stack.

Run: ``.venv/bin/python bench/e2e.py [--loops N] [--baseline N] [--cpus C]``. Starts the three
services under the stack supervisor (``facestack.stack``: the demo's configs, free loopback ports,
a temporary folder, the persons plugin enabled and the demo people enrolled), with the video
worker's ``delivery.trace_path`` set, so every acknowledged post leaves one trace record: the
wall-clock times the frame left the decoder (``decoded_at``), its detection/tracking/selection was
done (``analysed_at``), the POST started (``sent_at``) and was answered (``acked_at``), and the
router's own ``timings`` (preprocess, the sfapi detect, every plugin's process -- for the persons
plugin, until the entry is stored -- and its total).

Passes, each a single-pass camera job played as fast as possible (``play_speed: -1``):

* warm-up: the demo video through ``populate`` (as ``facestack demo`` does; not reported);
* ``demo``: the demo video (each person crosses the frame once);
* ``long``: the demo scene looped ``--loops`` times, so the sustained rate is meaningful.

The camera runs the defaults (one post per track, made when the track ends, so "decode ->
analysed" includes the rest of the track) unless ``--camera-settings`` says otherwise; faces/s is
then bounded by how many people the video shows per second of stream times how fast the worker
plays it -- realtime posts (``overall_only: false``) load the router and sfapi harder.

Then the baseline: sfapi's detect alone (the router's flags: ``detector=normalized`` with facen,
gender, age, emotions) on the face0 images the entries stored, one request at a time and 4 at a
time. Prints the per-stage p50/p99, the total decoder -> entry stored, faces/s and the ratios to
the baseline, with the command line that made them. ``--cpus C`` pins the whole stack to the first
C CPUs (children inherit the affinity); the default uses what the process may use.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, table  # noqa: E402

FLAGS = {"detector": "normalized", "facen": "true", "gender": "true", "age": "true", "emotions": "true"}

#: (label, start, end): each a function of a trace record giving wall-clock seconds
STAGES: list[tuple[str, Any, Any]] = [
    ("decode -> analysed   [worker detect+track+select; overall: until the track ends]",
     lambda r: r["decoded_at"], lambda r: r["analysed_at"]),
    ("analysed -> sent     [JPEG encode + outbox queue]", lambda r: r["analysed_at"], lambda r: r["sent_at"]),
    ("sent -> router start [network, upload, multipart parse]",
     lambda r: r["sent_at"], lambda r: r["router"]["started_at"]),
    ("router preprocess    [plugins' preprocess]", lambda r: 0.0, lambda r: r["router"]["preprocess_s"]),
    ("sfapi detect         [router -> sfapi -> router]", lambda r: 0.0, lambda r: r["router"]["detect_s"]),
    ("plugins process      [persons: identify, entry stored]", lambda r: 0.0, lambda r: r["router"]["process_s"]),
    ("router other         [frame parsing, answer]", lambda r: 0.0,
     lambda r: r["router"]["total_s"] - r["router"]["preprocess_s"] - r["router"]["detect_s"]
     - r["router"]["process_s"]),
    ("router -> ack        [answer back to the worker]",
     lambda r: r["router"]["started_at"] + r["router"]["total_s"], lambda r: r["acked_at"]),
]
TOTALS: list[tuple[str, Any, Any]] = [
    ("TOTAL decoder -> entry stored", lambda r: r["decoded_at"],
     lambda r: r["router"]["started_at"] + r["router"]["total_s"]),
    ("TOTAL decoder -> acknowledged", lambda r: r["decoded_at"], lambda r: r["acked_at"]),
    ("  of which after selection (analysed -> entry stored)", lambda r: r["analysed_at"],
     lambda r: r["router"]["started_at"] + r["router"]["total_s"]),
]


def pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def long_video(people: Any, path: Path, models_dir: Path, loops: int) -> Path:
    """The demo scene (as :func:`facestack.stack.demo.make_video` draws it) played ``loops`` times."""
    from facestack.vision.engines.mtcnn import MtcnnDetector
    from facestack.vision.engines.runtime import create_runtime
    from facestack.stack import clips

    detector = MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), models_dir)
    w, h, fps, side = 640, 360, 25, 150
    patches = clips.face_patches(detector, dict(people.video), side)
    per = int(2.4 * fps)
    apps = []
    for i, name in enumerate(people.video):
        start = i * per
        top = 20 if i % 2 == 0 else h - side - 20
        apps.append(clips.Appearance(name, start, start + int(1.6 * per), (10, top), (w - side - 10, top)))
    scene = clips.Scene((w, h), fps, max(a.end for a in apps) + fps, side, tuple(apps))
    return clips.encode(scene, patches, path, loops=loops)


async def run_job(http: Any, plan: Any, job_id: str, video: Path, timeout: float,
                  settings: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """Start a single-pass job on ``video``; wait until it finished and delivered everything.
    Returns (started, finished) wall-clock times and the job's final view."""
    job = {"stream_url": str(video), "labels": {"source": plan.camera}, "single_pass": True,
           "settings": {**settings, "play_speed": -1}}
    url = f"{plan.url('video-worker')}/job/{job_id}"
    started = time.time()
    async with http.post(url, json=job) as resp:
        if resp.status not in (200, 201):
            raise SystemExit(f"cannot start job {job_id}: {await resp.text()}")
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(url) as resp:
            view = await resp.json()
        if view["status"] == "finished" and view["statistic"]["posts_pending"] == 0:
            return started, time.time(), view
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not finish in {timeout:.0f} s: {view}")
        await asyncio.sleep(0.2)


async def entries_of(http: Any, plan: Any, cam_id: str) -> list[dict[str, Any]]:
    url = plan.url("facerouter") + "/v2/entries"
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        async with http.get(url, params=params) as resp:
            body = await resp.json()
        out += [e for e in body["results"] if e["cam_id"] == cam_id]
        if not body.get("next_page") or not body["results"]:
            return out
        params = {"limit": 100, "id__lt": body["next_page"]}


def read_trace(path: Path, cam: str) -> list[dict[str, Any]]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in recs if r["cam"] == cam and r["router"] is not None and r["decoded_at"] is not None]


def stage_rows(recs: list[dict[str, Any]]) -> list[list[object]]:
    total = [TOTALS[0][2](r) - TOTALS[0][1](r) for r in recs]
    mean_total = sum(total) / len(total)
    rows: list[list[object]] = []
    for label, start, end in STAGES + TOTALS:
        ms = [(end(r) - start(r)) * 1000 for r in recs]
        rows.append([label, f"{pct(ms, 50):.1f}", f"{pct(ms, 99):.1f}",
                     f"{100 * sum(ms) / len(ms) / 1000 / mean_total:.0f}%"])
    return rows


async def baseline(http: Any, sfapi: str, images: list[bytes], concurrency: int) -> tuple[float, float, float]:
    """sfapi detect alone: (faces/s, p50 ms, p99 ms)."""
    import aiohttp

    lat: list[float] = []
    queue = list(images)

    async def sender() -> None:
        while queue:
            img = queue.pop()
            t0 = time.perf_counter()
            async with http.post(sfapi + "/v2/detect", params=FLAGS, data=img,
                                 headers={"Content-Type": "image/jpeg"},
                                 timeout=aiohttp.ClientTimeout(total=60)) as resp:
                body = await resp.json()
                if resp.status != 200 or not body.get("faces"):
                    raise SystemExit(f"baseline detect failed: HTTP {resp.status} {body}")
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return len(images) / wall, pct(lat, 50), pct(lat, 99)


async def main(args: argparse.Namespace) -> None:
    import aiohttp

    from facestack.stack.demo import (DemoPlan, demo_people, free_ports, make_video, populate, wait_job_finished,
                                       write_configs)
    from facestack.stack.supervisor import Supervisor
    from sfapi.config import default_models_dir

    models_dir = Path(os.environ.get("SFAPI_MODELS_DIR") or default_models_dir())
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    trace = tmp / "trace.jsonl"
    plan = DemoPlan(tmp / "demo", ports=free_ports(), play_speed=-1, single_pass=True, models_dir=models_dir,
                    worker_extra={"delivery": {"trace_path": str(trace)},
                                  # the job API reads local files only under allowed roots: the looped clip's too
                                  "source": {"allowed_file_roots": [str(tmp)]}})
    people = demo_people()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, make_video, people, plan.video, models_dir)
    looped = await loop.run_in_executor(None, long_video, people, tmp / f"demo-x{args.loops}.mp4", models_dir,
                                        args.loops)
    sup = Supervisor(write_configs(plan), plan.dir)
    runner = sup.start()
    results: dict[str, Any] = {}
    try:
        await sup.wait_up(300)
        await populate(plan, people)  # enrolls, then starts the warm-up job (demo-cam) on the demo video
        await wait_job_finished(plan, plan.camera, 240)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            for name, video in (("demo", plan.video), (f"long x{args.loops}", looped)):
                job_id = "bench-" + name.split()[0]
                started, _, view = await run_job(http, plan, job_id, video, args.timeout, args.camera_settings)
                recs = read_trace(trace, job_id)
                entries = await entries_of(http, plan, job_id)
                results[name] = (started, view, recs, entries)
            _, _, _, long_entries = results[f"long x{args.loops}"]
            images: list[bytes] = []
            for e in long_entries[:args.baseline]:
                if e["images"]["face"]:
                    async with http.get(plan.url("facerouter") + e["images"]["face"]) as resp:
                        images.append(await resp.read())
            await baseline(http, plan.url("sfapi"), images[:4], 1)  # warm
            base = {c: await baseline(http, plan.url("sfapi"), images, c) for c in (1, 4)}
    finally:
        sup.stop()
        await asyncio.wait_for(runner, 60)
    report(args, results, base, len(images))


def report(args: argparse.Namespace, results: dict[str, Any], base: dict[int, tuple[float, float, float]],
           n_images: int) -> None:
    out = sys.stdout
    cmd = shlex.join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO))
                      else sys.executable, *sys.argv])
    out.write(f"$ {cmd}\n")
    out.write(f"machine: {len(os.sched_getaffinity(0))} CPUs usable ({os.cpu_count()} online); "
              "sfapi, facerouter (persons, archive, webhook) and the video worker on loopback; camera "
              f"settings {json.dumps({**args.camera_settings, 'play_speed': -1})} (the rest: defaults)\n\n")
    summary = []
    for name, (started, view, recs, entries) in results.items():
        st = view["statistic"]
        last = max(r["acked_at"] for r in recs)
        wall = last - started
        summary.append([name, f"{st['processed_duration']:.1f}", st["frames_analysed"], len(recs), len(entries),
                        f"{wall:.2f}", f"{len(entries) / wall:.2f}", f"{st['processed_duration'] / wall:.1f}",
                        f"{st['frames_analysed'] / wall:.1f}"])
    out.write(table(["pass", "video s", "frames analysed", "posts acked", "entries", "wall s",
                     "faces/s", "x real time", "analysed fps"], summary) + "\n\n")
    for name, (_, _, recs, _) in results.items():
        out.write(f"pass {name}: {len(recs)} faces, per stage (ms; share of the mean total)\n")
        out.write(table(["stage", "p50", "p99", "share"], stage_rows(recs)) + "\n\n")
    long_name = list(results)[-1]
    recs = results[long_name][2]
    router_detect = pct([r["router"]["detect_s"] * 1000 for r in recs], 50)
    total = pct([(TOTALS[0][2](r) - TOTALS[0][1](r)) * 1000 for r in recs], 50)
    after_sel = pct([(TOTALS[2][2](r) - TOTALS[2][1](r)) * 1000 for r in recs], 50)
    started, _, _, entries = results[long_name]
    e2e_rate = len(entries) / (max(r["acked_at"] for r in recs) - started)
    rows = []
    for c, (rate, p50, p99) in base.items():  # latency ratios only against one request at a time
        rows.append([f"sfapi detect alone, {c} at a time", f"{rate:.1f}", f"{p50:.1f}", f"{p99:.1f}",
                     f"{total / p50:.1f}x" if c == 1 else "-", f"{after_sel / p50:.1f}x" if c == 1 else "-",
                     f"{rate / e2e_rate:.1f}x"])
    out.write(f"baseline: sfapi POST /v2/detect ({', '.join(f'{k}={v}' for k, v in FLAGS.items())}) on the "
              f"{n_images} face0 images stored by the {long_name} pass\n")
    out.write(table(["baseline", "faces/s", "p50 ms", "p99 ms", "e2e p50 / p50", "after-selection p50 / p50",
                     "faces/s / e2e faces/s"], rows) + "\n")
    out.write(f"\nrouter's sfapi detect p50 (in the stack): {router_detect:.1f} ms; "
              f"e2e decoder -> entry stored p50: {total:.1f} ms; "
              f"analysed -> entry stored p50: {after_sel:.1f} ms; sustained {e2e_rate:.2f} faces/s\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=40, help="plays of the demo scene in the long pass")
    parser.add_argument("--baseline", type=int, default=100, help="face0 images for the sfapi baseline")
    parser.add_argument("--cpus", type=int, default=0, help="pin the stack to the first C CPUs (0: leave)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds a pass may take")
    parser.add_argument("--camera-settings", type=json.loads, default={},
                        help='JSON camera settings of the measured jobs, e.g. \'{"overall_only": false, '
                             '"realtime_post_interval": 0.2, "realtime_post_every_interval": true}\'')
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:arguments.cpus])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(arguments))
