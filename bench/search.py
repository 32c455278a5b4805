"""Gallery store speed: 1:N search latency, insert throughput, memory per face, load time.

Run: ``.venv/bin/python bench/search.py [--sizes 100000,1000000] [--quick] [--shards 1,2]``.

For every size a gallery of random 128-d unit vectors (meta: ``camera`` one of 10 values, ``age``,
``tags``) is built in a temporary directory through the EmbeddedStore API: single ``add`` calls from
64 concurrent tasks (group commit), then the bulk path ``add_many`` (batches of 5,000, 4 in flight).
Searches go through ``EmbeddedStore.search`` (top 10 by confidence, threshold 0): one query at a
time, and 16 queries as 16 concurrent ``search`` calls (there is no batched call); unfiltered and
with a meta filter (``camera oneof cam-0``) selecting 10%. The baseline in the same run is a bare
numpy product over the very matrix the store searches (``M @ q``; 16 queries: ``M @ Q.T``, one BLAS
call). Memory per face and the time to load at open() are measured in a fresh child process.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import sfapi_server, table  # noqa: E402
from sfapi.gallery.embedded import EmbeddedStore  # noqa: E402
from sfapi.gallery.types import FaceRecord, LookAlike, MetaFilter, Query  # noqa: E402

DIM = 128
SCHEMA = {"camera": "string", "age": "int", "tags": "strings"}
TAGS = ["red", "green", "blue", "male", "female", "hat", "glasses", "beard"]
TEN_PERCENT = (MetaFilter("camera", "oneof", ("cam-0",)),)


def unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def records(start: int, n: int, rng: np.random.Generator) -> list[FaceRecord]:
    vecs = unit_vectors(n, rng)
    cams = rng.integers(0, 10, n)
    ages = rng.integers(0, 90, n)
    tags = rng.integers(0, len(TAGS), (n, 2))
    return [FaceRecord(id=start + i, facen=vecs[i], model="bench",
                       meta={"camera": f"cam-{cams[i]}", "age": int(ages[i]), "tags": [TAGS[t] for t in tags[i]]})
            for i in range(n)]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def build(store: EmbeddedStore, size: int, rng: np.random.Generator) -> list[list[Any]]:
    """Fill gallery ``g``; returns the insert rows of the table."""
    await store.create_gallery("g", SCHEMA)
    rows = []
    single = min(size, 20_000)
    recs = records(0, single, rng)
    queue = iter(recs)

    async def adder() -> None:
        for r in queue:
            await store.add("g", r)

    t0 = time.perf_counter()
    await asyncio.gather(*(adder() for _ in range(64)))
    dt = time.perf_counter() - t0
    rows.append([size, "add, 64 concurrent callers", single, round(single / dt)])

    done, batch, t0 = single, 5000, time.perf_counter()
    while done < size:
        chunk = [(done + i * batch, min(batch, size - done - i * batch)) for i in range(4)]
        chunk = [(s, n) for s, n in chunk if n > 0]
        await asyncio.gather(*(store.add_many("g", records(s, n, rng)) for s, n in chunk))
        done += sum(n for _, n in chunk)
    dt = time.perf_counter() - t0
    if size > single:
        rows.append([size, "add_many 5k x 4 in flight (incl. record building)", size - single,
                     round((size - single) / dt)])
    return rows


async def median_ms(fn: Callable[[], Awaitable[Any]], runs: int) -> float:
    await fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def numpy_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def search_rows(store: EmbeddedStore, size: int, shard_counts: list[int], runs: int,
                      rng: np.random.Generator) -> list[list[Any]]:
    probes = unit_vectors(16, rng)
    matrix = store._galleries["g"].index.snapshot().vecs  # the very matrix the store scans
    base1 = numpy_ms(lambda: matrix @ probes[0], runs)
    base16 = numpy_ms(lambda: matrix @ probes.T, max(3, runs // 4))
    rows = []
    for shards in shard_counts:
        store.shards = shards
        unfiltered: dict[str, float] = {}
        for label, meta in (("unfiltered", ()), ("camera oneof (10%)", TEN_PERCENT)):
            def query(i: int) -> Query:
                return Query(meta=meta, like=LookAlike(probes[i], 0.0), sort="-confidence", limit=10)

            one = await median_ms(lambda: store.search("g", query(0)), runs)
            many = await median_ms(lambda: asyncio.gather(*(store.search("g", query(i)) for i in range(16))),
                                   max(3, runs // 4))
            own = {k: (f"{v / unfiltered[k]:.2f}" if unfiltered.get(k) else "") for k, v in (("1", one), ("16", many))}
            unfiltered.setdefault("1", one)
            unfiltered.setdefault("16", many)
            rows.append([size, shards, label, "1q", one, base1, one / base1, own["1"]])
            rows.append([size, shards, label, "16q concurrent", many, base16, many / base16, own["16"]])
    return rows


HTTP_MAX_SIZE = 200_000
HTTP_SCHEMA = {"camera": "string"}


async def build_http_gallery(path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    """Gallery ``bench`` of ``size`` faces (meta ``camera`` cam0..cam9) written through the store
    before the service opens the file; returns the matrix."""
    store = EmbeddedStore(path, synchronous="NORMAL")
    await store.open()
    await store.create_gallery("bench", HTTP_SCHEMA)
    vecs = unit_vectors(size, rng)
    for start in range(0, size, 10_000):
        await store.add_many("bench", [FaceRecord(id=i, facen=vecs[i], model="bench", meta={"camera": f"cam{i % 10}"})
                                       for i in range(start, min(size, start + 10_000))])
    await store.close()
    return vecs


def http_config(tmp: Path) -> Path:
    cfg = tmp / "sfapi.yaml"
    cfg.write_text(yaml.safe_dump({
        "gallery": {"path": str(tmp / "g.db"), "synchronous": "NORMAL", "schemas": {"bench": HTTP_SCHEMA}},
        "models": {"fetch_if_missing": True},
    }))
    return cfg


async def http_rows(size: int, runs: int, rng: np.random.Generator) -> list[list[Any]]:
    """Search rows measured through the real service: ``POST /v2/galleries/bench/faces/search``
    with a stored face as the look-alike (threshold 0, top 10), 1 request at a time and 16
    concurrent ones, unfiltered and with ``meta.camera oneof [cam0]`` (10%)."""
    if size > HTTP_MAX_SIZE:
        return [[size, "-", "HTTP: not measured (building this size through the service takes too long)",
                 "", "", "", "", ""]]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        matrix = await build_http_gallery(tmp / "g.db", size, rng)
        probes = matrix[:16].copy()
        base1 = numpy_ms(lambda: matrix @ probes[0], runs)
        base16 = numpy_ms(lambda: matrix @ probes.T, max(3, runs // 4))
        with sfapi_server(config=http_config(tmp)) as base:
            return await _http_search_rows(base, size, runs, base1, base16)


async def _http_search_rows(base: str, size: int, runs: int, base1: float, base16: float) -> list[list[Any]]:
    url = f"{base}/v2/galleries/bench/faces/search"
    rows: list[list[Any]] = []
    unfiltered: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async def post(face: int, meta: list[dict[str, Any]]) -> None:
            body = {"filters": [{"field": "face", "op": "looks_like", "value": {"gallery": "bench", "face": face},
                                 "threshold": 0.0}, *meta], "limit": 10}
            async with session.post(url, json=body) as resp:
                data = await resp.json()
                if resp.status != 200 or len(data["results"]) != 10:
                    raise SystemExit(f"HTTP search failed: {resp.status} {data}")

        for label, meta in (("unfiltered", []), ("camera oneof (10%)",
                                                 [{"field": "meta.camera", "op": "oneof", "value": ["cam0"]}])):
            one = await median_ms(lambda: post(0, meta), runs)
            many = await median_ms(lambda: asyncio.gather(*(post(i, meta) for i in range(16))), max(3, runs // 4))
            own = {k: (f"{v / unfiltered[k]:.2f}" if unfiltered.get(k) else "") for k, v in (("1", one), ("16", many))}
            unfiltered.setdefault("1", one)
            unfiltered.setdefault("16", many)
            rows.append([size, "http", label, "1q", one, base1, one / base1, own["1"]])
            rows.append([size, "http", label, "16q concurrent", many, base16, many / base16, own["16"]])
    return rows


def load_child(path: str) -> None:
    """Child mode: open the store, report load seconds and RSS growth as JSON."""
    async def main() -> dict[str, float]:
        gc.collect()
        before = rss_bytes()
        store = EmbeddedStore(Path(path))
        t0 = time.perf_counter()
        await store.open()
        load_s = time.perf_counter() - t0
        gc.collect()
        grown = rss_bytes() - before
        faces = sum(g.number for g in await store.list_galleries())
        await store.close()
        return {"load_s": load_s, "rss": grown, "faces": faces}

    print(json.dumps(asyncio.run(main())))


def measure_load(path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--load-child", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def run(sizes: list[int], shard_counts: list[int]) -> None:
    search, inserts, memory = [], [], []
    for size in sizes:
        rng = np.random.default_rng(size)
        with tempfile.TemporaryDirectory(prefix="bench-gallery-") as tmp:
            path = Path(tmp) / "gallery.db"
            store = EmbeddedStore(path, shards=max(shard_counts))
            await store.open()
            inserts += await build(store, size, rng)
            runs = 30 if size <= 200_000 else 15
            search += await search_rows(store, size, shard_counts, runs, rng)
            search += await http_rows(size, runs, rng)
            await store.close()
            del store
            gc.collect()
            loaded = measure_load(path)
            db_bytes = sum(p.stat().st_size for p in Path(tmp).iterdir())
            memory.append([size, round(loaded["load_s"], 2), round(loaded["rss"] / loaded["faces"]),
                           round(db_bytes / size)])
        print(f"-- {size} done", file=sys.stderr, flush=True)
    print("1:N search, top 10 by confidence (ms, median); baseline: bare numpy product over the same matrix")
    print(table(["faces", "shards", "filter", "queries", "store ms", "numpy ms", "store/numpy",
                 "filtered/unfiltered"], search))
    print()
    print(table(["faces", "insert path", "faces added", "faces/s"], inserts))
    print()
    print(table(["faces", "load at open() s", "RSS bytes/face", "SQLite bytes/face"], memory))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="gallery sizes, comma-separated")
    ap.add_argument("--quick", action="store_true", help="one gallery of 10,000 faces")
    ap.add_argument("--shards", default="1,2", help="shard counts to compare, comma-separated")
    ap.add_argument("--load-child", help=argparse.SUPPRESS)
    ap.add_argument("--milvus", action="store_true",
                    help="also the Milvus backend (the pinned wheel's Milvus server) beside the embedded store "
                         "at 100k: recall@10 and latency, FLAT vs IVF_FLAT vs HNSW (bench/search_milvus.py)")
    args = ap.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    asyncio.run(run(sizes, [int(s) for s in args.shards.split(",")]))
    if args.milvus:
        from bench.search_milvus import report

        print("\nMilvus beside the embedded store:")
        print(asyncio.run(report([100_000])))


if __name__ == "__main__":
    main()
