"""Milvus gallery backend beside the embedded store: recall@10 and latency, exact and HNSW.

Run: ``.venv/bin/python bench/search_milvus.py [--sizes 10000,100000] [--queries 30] [--uri PATH|URL]``.

For every size one set of random 128-d unit vectors (meta: ``camera`` one of 10 values, ``age``)
is loaded through the gallery API (``add_many`` in batches of 5,000) into three stores: the
embedded store, a Milvus store with a FLAT (exact) index and one with HNSW (M=16,
efConstruction=200; ``ef`` = max(64, the rows asked for)), flushed after loading (milvus-lite
indexes sealed segments only; a server seals on its own). Milvus is milvus-lite in a temporary
directory unless ``--uri`` names a server (``http://host:19530``). Probes are enrolled faces with
noise (``v + 0.5 n``, renormalized: the cosine to the enrolled face is about 0.9, a "same
person" probe). Each search goes through ``store.search``: top 10 by confidence (threshold 0), one
query at a time, unfiltered and with ``camera oneof cam-0`` (10% of the gallery). recall@10 is the
overlap with the embedded store's exact top 10; latency is the median per search in ms.
milvus-lite is a pure-Python stand-in for a Milvus server: its speeds are no guide to a server's.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import table  # noqa: E402
from sfapi.gallery.backend import GalleryBackend  # noqa: E402
from sfapi.gallery.embedded import EmbeddedStore  # noqa: E402
from sfapi.gallery.milvus import MilvusStore  # noqa: E402
from sfapi.gallery.types import FaceRecord, LookAlike, MetaFilter, Query  # noqa: E402

DIM = 128
SCHEMA = {"camera": "string", "age": "int"}
TEN_PERCENT = (MetaFilter("camera", "oneof", ("cam-0",)),)
BATCH = 5000


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def records(vecs: np.ndarray, cams: np.ndarray, ages: np.ndarray, start: int, end: int) -> list[FaceRecord]:
    return [FaceRecord(id=i, facen=vecs[i], model="bench", meta={"camera": f"cam-{cams[i]}", "age": int(ages[i])})
            for i in range(start, end)]


async def load(store: Any, vecs: np.ndarray, cams: np.ndarray, ages: np.ndarray) -> float:
    """Fill gallery ``g``; returns faces per second."""
    await store.create_gallery("g", SCHEMA)
    t0 = time.perf_counter()
    for a in range(0, len(vecs), BATCH):
        await store.add_many("g", records(vecs, cams, ages, a, min(len(vecs), a + BATCH)))
    rate = len(vecs) / (time.perf_counter() - t0)
    if isinstance(store, MilvusStore):  # seal the segments: milvus-lite indexes only sealed rows
        t0 = time.perf_counter()
        await store.flush("g")
        print(f"# flush: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return rate


async def top10(store: GalleryBackend, probe: np.ndarray, meta: tuple[MetaFilter, ...]) -> tuple[list[int], float]:
    t0 = time.perf_counter()
    res = await store.search("g", Query(meta=meta, like=LookAlike(probe, 0.0), sort="-confidence", limit=10))
    return [h.record.id for h in res.hits], (time.perf_counter() - t0) * 1000


async def measure(stores: dict[str, GalleryBackend], probes: np.ndarray) -> dict[tuple[str, str], tuple[float, float]]:
    """(store, filter) -> (recall@10 against the embedded store, median ms)."""
    out = {}
    for fname, meta in (("none", ()), ("camera 10%", TEN_PERCENT)):
        truth = [(await top10(stores["embedded"], p, meta))[0] for p in probes]
        for name, store in stores.items():
            await top10(store, probes[0], meta)  # warm-up
            recalls, times = [], []
            for p, want in zip(probes, truth):
                got, ms = await top10(store, p, meta)
                recalls.append(len(set(got) & set(want)) / max(1, len(want)))
                times.append(ms)
            out[(name, fname)] = (float(np.mean(recalls)), statistics.median(times))
    return out


async def run_size(size: int, queries: int, uri: str, rng: np.random.Generator) -> list[list[Any]]:
    vecs = unit(rng.standard_normal((size, DIM), dtype=np.float32))
    cams = rng.integers(0, 10, size)
    ages = rng.integers(0, 90, size)
    picks = rng.choice(size, queries, replace=False)
    probes = unit(vecs[picks] + 0.5 * unit(rng.standard_normal((queries, DIM), dtype=np.float32)))
    with tempfile.TemporaryDirectory() as tmp:
        target = uri or str(Path(tmp) / "milvus.db")
        stores: dict[str, Any] = {
            "embedded": EmbeddedStore(Path(tmp) / "e.db", synchronous="NORMAL"),
            "milvus FLAT": MilvusStore(target, prefix=f"bench{size}_flat_", index_type="FLAT"),
            "milvus HNSW": MilvusStore(target, prefix=f"bench{size}_hnsw_", index_type="HNSW",
                                       index_params={"M": 16, "efConstruction": 200}, search_params={"ef": 64}),
        }
        rates = {}
        try:
            for name, store in stores.items():
                await store.open()
                rates[name] = await load(store, vecs, cams, ages)
                print(f"# {size}: {name} loaded at {rates[name]:.0f} faces/s", file=sys.stderr, flush=True)
            results = await measure(stores, probes)
        finally:
            for name, store in stores.items():
                if name != "embedded":
                    try:
                        await store.drop_gallery("g")
                    except Exception as exc:  # a bench cleans up what it can
                        print(f"# cleanup of {name} failed: {exc}", file=sys.stderr)
                await store.close()
    return [[size, name, fname, round(rates[name]), f"{rec:.3f}", f"{ms:.1f}"]
            for (name, fname), (rec, ms) in results.items()]


async def report(sizes: list[int], queries: int = 30, uri: str = "", seed: int = 0) -> str:
    """The Milvus-beside-embedded table (also printed by ``bench/search.py --milvus``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        rows += await run_size(size, queries, uri, rng)
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    return table(["faces", "store", "filter", "load faces/s", "recall@10", "median ms"], rows)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--uri", default="", help="a Milvus server (default: milvus-lite in a temporary directory)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(await report([int(s) for s in args.sizes.split(",")], args.queries, args.uri, args.seed))


if __name__ == "__main__":
    asyncio.run(main())
