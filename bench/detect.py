"""Detection + extraction speed through the HTTP API, beside the face_recognition pipeline.

Run: ``make bench`` or ``.venv/bin/python bench/detect.py [--rounds N]``. Starts the real sfapi
service (config/sfapi.yaml) as a child process, sends every sample photo (`make data`) with facen,
gender, age and emotions all on from 1 and 8 concurrent clients, and times one 640x480 photo
sequentially for p50/p99. In the same run the same photos go through dlib HOG + dlib ResNet (what
``face_recognition`` does) in 1 and 2 processes (this machine has 2 cores). Prints both and the ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, photos, sfapi_server, table  # noqa: E402
from sfapi.config import default_models_dir  # noqa: E402

ALL = "/v2/detect?facen=true&gender=true&age=true&emotions=true"


async def http_faces_per_s(base: str, blobs: list[bytes], clients: int, rounds: int) -> tuple[float, int, float]:
    work = [b for _ in range(rounds) for b in blobs]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in work:
        queue.put_nowait(b)
    faces = 0
    async with aiohttp.ClientSession() as http:
        async def client() -> None:
            nonlocal faces
            while True:
                try:
                    blob = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                async with http.post(base + ALL, data=blob) as resp:
                    body = await resp.json()
                    if resp.status != 200:
                        raise SystemExit(f"HTTP {resp.status}: {body}")
                    faces += len(body["faces"])
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return faces / elapsed, faces, elapsed


async def latency(base: str, blob: bytes, n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            t = time.perf_counter()
            async with http.post(base + ALL, data=blob) as resp:
                await resp.read()
            out.append((time.perf_counter() - t) * 1000)
    return out


_PIPE = None


def _init_baseline(sources: str) -> None:
    global _PIPE
    from bench.dlib_baseline import DlibPipeline
    _PIPE = DlibPipeline(Path(sources))


def _baseline_one(path: str) -> int:
    assert _PIPE is not None
    return len(_PIPE.encode(Path(path)))


def baseline_faces_per_s(paths: list[Path], procs: int, rounds: int) -> tuple[float, int, float]:
    sources = str(default_models_dir() / "sources")
    work = [str(p) for _ in range(rounds) for p in paths]
    with ProcessPoolExecutor(procs, initializer=_init_baseline, initargs=(sources,)) as pool:
        list(pool.map(_baseline_one, [str(paths[0])] * procs))  # warm up every worker
        started = time.perf_counter()
        faces = sum(pool.map(_baseline_one, work))
        elapsed = time.perf_counter() - started
    return faces / elapsed, faces, elapsed


def photo_640x480() -> bytes:
    img = Image.open(DATA / "resolutions" / "obama-720p.jpg").convert("RGB").resize((640, 480))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2, help="passes over the photo set per measurement")
    parser.add_argument("--latency-n", type=int, default=60)
    args = parser.parse_args()
    paths = photos()
    blobs = [p.read_bytes() for p in paths]
    out = sys.stdout
    out.write(f"{len(paths)} photos from {DATA}, {args.rounds} rounds, {os.cpu_count()} cores\n\n")
    rows = []
    with sfapi_server() as base:
        asyncio.run(http_faces_per_s(base, blobs, 2, 1))  # warm-up
        ours = {c: asyncio.run(http_faces_per_s(base, blobs, c, args.rounds)) for c in (1, 8)}
        lat = asyncio.run(latency(base, photo_640x480(), args.latency_n))
    try:
        base_rates = {n: baseline_faces_per_s(paths, n, max(1, args.rounds // 2)) for n in (1, 2)}
    except ImportError:
        base_rates = {}
    for c, (rate, faces, secs) in ours.items():
        rows.append([f"sfapi HTTP, all features, {c} client(s)", faces, secs, rate])
    for n, (rate, faces, secs) in base_rates.items():
        rows.append([f"face_recognition (dlib HOG+ResNet), {n} process(es)", faces, secs, rate])
    out.write(table(["pipeline", "faces", "seconds", "faces/s"], rows) + "\n\n")
    if base_rates:
        best_ours = max(r[0] for r in ours.values())
        best_base = max(r[0] for r in base_rates.values())
        out.write(f"ratio, best sfapi / best baseline: {best_ours / best_base:.2f}x "
                  f"(sfapi computes facen + gender + age + emotions; the baseline only the descriptor)\n")
        out.write(f"ratio at one client / one process: {ours[1][0] / base_rates[1][0]:.2f}x\n\n")
    p50 = statistics.median(lat)
    p99 = float(np.percentile(lat, 99))
    out.write(f"one 640x480 photo, all features, sequential x{len(lat)}: p50 {p50:.1f} ms, p99 {p99:.1f} ms\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
