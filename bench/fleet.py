"""Failover of camera jobs: time from a video worker's ``kill -9`` to its cameras posting again on
the other workers.

Run: ``.venv/bin/python bench/fleet.py [--workers 3] [--cameras 30] [--lease 10]`` with PostgreSQL
(``scripts/test-services start``; ``--store`` or ``FACESTACK_TEST_POSTGRES_URL`` names the server, a
fresh database is made and dropped). N worker processes (``video-worker``, capacity ``--capacity``
each) share the job store; ``--cameras`` jobs read a small looping clip (320x240, 3 s, one face
walking across, real time, detect_fps 2, a post per second while the face is in view) and post to a
facerouter stand-in on loopback. Once every camera posts, the worker with the most cameras is
killed with SIGKILL. For each of its cameras: ``claimed`` (seconds from the kill until another
worker holds the job, as ``GET /jobs`` shows, polled every 0.1 s) and ``posting`` (until the
router gets that camera's first post from another worker). The lease (``fleet.lease_s``) bounds
the first; the second adds opening the stream and the first face. Also counted: posts lost (a
sequence number missing inside a run) and posts made twice (a key sent by two workers): both 0.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REPO, table  # noqa: E402


def make_clip(out: Path) -> Path:
    from sfapi.config import default_models_dir
    from facestack.vision.engines.mtcnn import MtcnnDetector
    from facestack.vision.engines.runtime import create_runtime
    from tests.video_worker.fleet.harness import make_clip as encode
    from facestack.stack import clips

    det = MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), default_models_dir())
    patches = clips.face_patches(det, {k: DATA / v for k, v in clips.PHOTOS.items()}, 140)
    return encode(patches, out)


async def run(args: argparse.Namespace) -> None:
    from sfapi.config import default_models_dir
    from tests.video_worker.fleet.harness import Router, WorkerProc, fresh_database, gaps_and_strays, until

    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    (root / "clips").mkdir()
    clip = make_clip(root / "clips" / "walk.mp4")
    router = Router()
    await router.start()
    workers: list[WorkerProc] = []
    try:
        async with fresh_database(args.store) as db:
            workers = [WorkerProc(f"w{i + 1}", root, db, router.url, default_models_dir(), clip.parent,
                                  args.capacity, args.lease) for i in range(args.workers)]
            for w in workers:
                await w.start(wait=False)
            for w in workers:
                await w.ready(timeout=300)
            cams = [f"cam{i:02d}" for i in range(args.cameras)]
            for cam in cams:
                status, body = await workers[0].api("POST", f"/job/{cam}", json={"stream_url": str(clip)})
                assert status == 201, body
            await until(lambda: {d.cam for d in router.taken} >= set(cams), 300, "every camera posting")
            status, jobs = await workers[0].api("GET", "/jobs")
            owners = {j["id"]: j["worker_id"] for j in jobs}
            load = {w.name: sum(1 for o in owners.values() if o == w.name) for w in workers}
            victim = next(w for w in workers if w.name == max(load, key=lambda n: load[n]))
            moved = sorted(c for c, o in owners.items() if o == victim.name)
            survivor = next(w for w in workers if w is not victim)
            t_kill = time.time()
            victim.kill9()
            claimed: dict[str, float] = {}
            posting: dict[str, float] = {}
            deadline = t_kill + args.lease * 4 + 120
            while (len(claimed) < len(moved) or len(posting) < len(moved)) and time.time() < deadline:
                status, jobs = await survivor.api("GET", "/jobs")
                now = time.time()
                for j in jobs:
                    if j["id"] in moved and j["id"] not in claimed and j["worker_id"] not in (None, victim.name):
                        claimed[j["id"]] = now - t_kill
                for d in router.taken:
                    if d.cam in moved and d.cam not in posting and d.worker != victim.name and d.at > t_kill:
                        posting[d.cam] = d.at - t_kill
                await asyncio.sleep(0.1)
            gaps, strays = gaps_and_strays(router.deliveries)
    finally:
        for w in workers:
            await w.stop()
        await router.stop()
        shutil.rmtree(root, ignore_errors=True)

    def stats(values: dict[str, float]) -> list[object]:
        v = sorted(values.values())
        return [len(v), v[0], statistics.median(v), v[-1]] if v else [0, "-", "-", "-"]

    print(f"{args.workers} workers (capacity {args.capacity}), {args.cameras} cameras, lease {args.lease:g} s, "
          f"heartbeat {min(args.lease / 3, 2.0):.2f} s; killed {victim.name} with {len(moved)} cameras")
    print(table(["seconds after kill -9", "cameras", "min", "median", "max"],
                [["claimed by another worker", *stats(claimed)], ["posting again", *stats(posting)]]))
    print(f"posts lost: {len(gaps)} runs with a gap; posts made twice: {len(strays)}; "
          f"posts stored: {len(router.taken)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--cameras", type=int, default=30)
    parser.add_argument("--capacity", type=int, default=16, help="cameras per worker at most")
    parser.add_argument("--lease", type=float, default=10.0, help="fleet.lease_s (default: the config's)")
    parser.add_argument("--store", default=os.environ.get("FACESTACK_TEST_POSTGRES_URL"),
                        help="postgresql+asyncpg:// URL of a server (a fresh database is made there)")
    args = parser.parse_args()
    if not args.store:
        parser.error("needs PostgreSQL: scripts/test-services start, then source var/test-services.env "
                     "(FACESTACK_TEST_POSTGRES_URL) or pass --store")
    os.chdir(REPO)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
