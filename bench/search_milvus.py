"""Milvus gallery backend on a real Milvus server beside the embedded store: recall@10, latency at
1 and 16 concurrent searches, insert rate.

Run: ``.venv/bin/python bench/search_milvus.py [--sizes 100000,1000000] [--queries 200] [--uri URL]
[--indexes FLAT,IVF_FLAT,HNSW] [--reads Strong,Session] [--index-wait-s 1800]``.

Without ``--uri`` the bench starts the standalone server of the pinned ``milvus`` wheel
(sfapi.gallery.milvus_server) with its production settings in a temporary folder and stops it at
the end; ``--uri http://host:19530`` measures a server you run. For every size one set of random
128-d unit vectors (meta: ``camera`` one of 10 values, ``age``) is loaded through the gallery API
(``add_many`` in batches of 5,000: the insert rate) into the embedded store and, one after
another, into a Milvus store per index: FLAT (exact), IVF_FLAT (``nlist`` about 4 sqrt(n) of a
segment's n rows -- Milvus builds one IVF per sealed segment, 80,000 rows here -- rounded to a
power of two: 1,024 from 65k faces on; ``nprobe`` 32) and HNSW (M=16, efConstruction=200;
``ef`` = max(64, rows asked for)). The Milvus collections are flushed and the bench waits until
the index covers every row or ``--index-wait-s`` has passed (then it measures what is indexed and
the table says how much: the rest is searched unindexed). Probes are enrolled faces with noise (``v + 0.5 n``, renormalized: cosine about 0.9 to the
enrolled face, a "same person" probe). A search is ``store.search``: top 10 by confidence,
threshold 0, unfiltered. recall@10 is the overlap with the embedded store's exact top 10 (on random
vectors only the enrolled face is close to a probe, the other nine are near-ties around cosine 0,
which approximate indexes order loosely: real face galleries fare better); top-1 is how often the
enrolled face comes first. Latency
per search in ms at 1 query in flight (one after another) and at 16 in flight (16 asyncio tasks
sharing the queries), p50 and p99, the searches per second at 16 and that rate over the embedded
store's of the same size in the same run. Milvus reads run at two consistency levels: Strong (the
default: sees every acknowledged write of any client, waits for the server's next time tick) and
Session (this process's writes; no wait). Each row is also logged (stderr) as soon as it is
measured, so a run cut short by ``timeout`` keeps what it measured.
"""
from __future__ import annotations

import argparse
import asyncio
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
from sfapi.gallery.milvus_server import LocalMilvus  # noqa: E402
from sfapi.gallery.types import FaceRecord, LookAlike, Query  # noqa: E402

DIM = 128
SCHEMA = {"camera": "string", "age": "int"}
BATCH = 5000
CONCURRENCY = 16
#: rows of a sealed segment on a default 2.3.5 server at this row size (seen: 80,000)
SEGMENT_ROWS = 80_000
HEADERS = ["faces", "store", "reads", "insert faces/s", "recall@10", "top-1", "p50 1", "p99 1",
           f"p50 {CONCURRENCY}", f"p99 {CONCURRENCY}", f"searches/s {CONCURRENCY}", "x embedded"]


def index_config(name: str, size: int) -> dict[str, Any]:
    """MilvusStore arguments for one index type at one gallery size."""
    if name == "FLAT":
        return {"index_type": "FLAT"}
    if name == "HNSW":
        return {"index_type": "HNSW", "index_params": {"M": 16, "efConstruction": 200}, "search_params": {"ef": 64}}
    if name == "IVF_FLAT":  # Milvus builds one IVF per sealed segment: nlist follows the segment's rows
        nlist = 1 << max(4, round(np.log2(4 * np.sqrt(min(size, SEGMENT_ROWS)))))
        return {"index_type": name, "index_params": {"nlist": nlist}, "search_params": {"nprobe": 32}}
    raise SystemExit(f"unknown index {name!r}: FLAT, IVF_FLAT or HNSW (gallery.milvus_index.type)")


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def records(vecs: np.ndarray, cams: np.ndarray, ages: np.ndarray, start: int, end: int) -> list[FaceRecord]:
    return [FaceRecord(id=i, facen=vecs[i], model="bench", meta={"camera": f"cam-{cams[i]}", "age": int(ages[i])})
            for i in range(start, end)]


def log(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


async def load(store: GalleryBackend, vecs: np.ndarray, cams: np.ndarray, ages: np.ndarray) -> float:
    """Fill gallery ``g``; returns faces per second (acknowledged adds)."""
    await store.create_gallery("g", SCHEMA)
    t0 = time.perf_counter()
    for a in range(0, len(vecs), BATCH):
        await store.add_many("g", records(vecs, cams, ages, a, min(len(vecs), a + BATCH)))
    return len(vecs) / (time.perf_counter() - t0)


async def settle(store: MilvusStore, timeout_s: float = 1800) -> float:
    """Flush (seal the segments) and wait until the vector index covers every row or ``timeout_s``
    has passed; returns the share of rows indexed."""
    t0 = time.perf_counter()
    await store.flush("g")
    collection = store._galleries["g"].collection
    share = 0.0
    while True:
        info = await store._run(lambda: store.conn.call("describe index", "describe_index", collection, "facen"))
        total, indexed = int(info.get("total_rows", 0)), int(info.get("indexed_rows", 0))
        share = indexed / total if total else 0.0
        if (total and indexed >= total) or time.perf_counter() - t0 >= timeout_s:
            break
        await asyncio.sleep(2)
    await asyncio.sleep(5)  # the query node swaps the indexed segments in on its next check
    log(f"{collection}: flushed in {time.perf_counter() - t0:.0f} s, {share:.0%} of {total} rows indexed")
    return share


async def reindex(store: MilvusStore, extra: dict[str, Any], timeout_s: float = 600) -> None:
    """Swap the vector index of gallery ``g``'s collection for ``extra``'s (release, drop the index,
    create the new one, load again; every call may take up to ``timeout_s``): the next index is
    measured on the same rows without loading them again."""
    from pymilvus import MilvusClient

    collection = store._galleries["g"].collection
    index = MilvusClient.prepare_index_params()
    index.add_index("facen", index_type=extra["index_type"], metric_type="IP", params=dict(extra.get("index_params", {})))

    def swap() -> None:
        call = store.conn.call
        call("release", "release_collection", collection, timeout=timeout_s)
        call("drop index", "drop_index", collection, "facen", timeout=timeout_s)
        call("create index", "create_index", collection, index, sync=False, timeout=timeout_s)
        call("load", "load_collection", collection, timeout=timeout_s)

    t0 = time.perf_counter()
    await store._run(swap)
    log(f"{collection}: index swapped for {extra['index_type']} and loaded in {time.perf_counter() - t0:.0f} s")


async def top10(store: GalleryBackend, probe: np.ndarray) -> tuple[list[int], float]:
    t0 = time.perf_counter()
    res = await store.search("g", Query(like=LookAlike(probe, 0.0), sort="-confidence", limit=10))
    return [h.record.id for h in res.hits], (time.perf_counter() - t0) * 1000


async def measure(store: GalleryBackend, probes: np.ndarray, enrolled: np.ndarray, truth: list[list[int]] | None
                  ) -> tuple[list[list[int]], dict[str, float]]:
    """Top 10 of every probe, recall against ``truth``, how often the probe's ``enrolled`` face
    comes first, latency at 1 and 16 in flight."""
    await top10(store, probes[0])  # warm-up
    got, one = [], []
    for p in probes:
        ids, ms = await top10(store, p)
        got.append(ids)
        one.append(ms)
    many: list[float] = []
    queue = list(probes)

    async def worker() -> None:
        while queue:
            many.append((await top10(store, queue.pop()))[1])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    qps = len(probes) / (time.perf_counter() - t0)
    recall = 1.0 if truth is None else float(np.mean([len(set(g) & set(t)) / max(1, len(t))
                                                       for g, t in zip(got, truth)]))
    top1 = float(np.mean([bool(g) and g[0] == int(want) for g, want in zip(got, enrolled)]))
    return got, {"recall": recall, "top1": top1, "p50_1": float(np.percentile(one, 50)), "p99_1": float(np.percentile(one, 99)),
                 "p50_16": float(np.percentile(many, 50)), "p99_16": float(np.percentile(many, 99)), "qps_16": qps}


async def run_size(size: int, queries: int, uri: str, rng: np.random.Generator, tmp: Path,
                   indexes: list[str], reads: list[str], index_wait_s: float, one_load: bool = False
                   ) -> list[list[Any]]:
    vecs = unit(rng.standard_normal((size, DIM), dtype=np.float32))
    cams = rng.integers(0, 10, size)
    ages = rng.integers(0, 90, size)
    picks = rng.choice(size, queries, replace=False)
    probes = unit(vecs[picks] + 0.5 * unit(rng.standard_normal((queries, DIM), dtype=np.float32)))
    rows: list[list[Any]] = []
    embedded = EmbeddedStore(tmp / f"e{size}.db", synchronous="NORMAL")
    await embedded.open()
    try:
        rate = await load(embedded, vecs, cams, ages)
        log(f"{size}: embedded loaded at {rate:.0f} faces/s")
        truth, base = await measure(embedded, probes, picks, None)
        rows.append(row(size, "embedded", "-", rate, base, base))
        log("row: " + "  ".join(map(str, rows[-1])))
    finally:
        await embedded.close()
    if one_load:  # one collection, loaded once; each index after the first replaces the one before
        prefix = f"bench{size}_"
        writer = MilvusStore(uri, prefix=prefix, **index_config(indexes[0], size))
        await writer.open()
        try:
            for i, index in enumerate(indexes):
                extra = index_config(index, size)
                if i == 0:
                    rate: float | None = await _milvus_load(writer, size, index, extra, vecs, cams, ages)
                else:
                    rate = None
                    await reindex(writer, extra, index_wait_s + 600)  # a load may wait for the build
                rows += await _milvus_measure(uri, prefix, size, index, extra, reads, rate, probes, picks, truth, base,
                                              await settle(writer, index_wait_s))
        finally:
            await _drop(writer, "one load")
        return rows
    for index in indexes:
        extra = index_config(index, size)
        prefix = f"bench{size}_{index.lower()}_"
        writer = MilvusStore(uri, prefix=prefix, **extra)
        await writer.open()
        try:
            rate = await _milvus_load(writer, size, index, extra, vecs, cams, ages)
            rows += await _milvus_measure(uri, prefix, size, index, extra, reads, rate, probes, picks, truth, base,
                                          await settle(writer, index_wait_s))
        finally:
            await _drop(writer, index)
    return rows


async def _milvus_load(writer: MilvusStore, size: int, index: str, extra: dict[str, Any], vecs: np.ndarray,
                       cams: np.ndarray, ages: np.ndarray) -> float:
    t0 = time.perf_counter()
    rate = await load(writer, vecs, cams, ages)
    log(f"{size}: milvus {index} {extra} loaded at {rate:.0f} faces/s ({time.perf_counter() - t0:.0f} s)")
    return rate


async def _milvus_measure(uri: str, prefix: str, size: int, index: str, extra: dict[str, Any], reads: list[str],
                          rate: float | None, probes: np.ndarray, picks: np.ndarray, truth: list[list[int]],
                          base: dict[str, float], share: float) -> list[list[Any]]:
    name = f"Milvus {index}" + ("" if share >= 1.0 else f" ({share:.0%} indexed)")
    rows = []
    for consistency in reads:
        reader = MilvusStore(uri, prefix=prefix, consistency=consistency, **extra)
        await reader.open()
        try:
            _, m = await measure(reader, probes, picks, truth)
        finally:
            await reader.close()
        rows.append(row(size, name, consistency, rate, m, base))
        log("row: " + "  ".join(map(str, rows[-1])))
    return rows


async def _drop(writer: MilvusStore, what: str) -> None:
    try:
        await writer.drop_gallery("g")
    except Exception as exc:  # a bench cleans up what it can
        log(f"cleanup of milvus {what} failed: {exc}")
    await writer.close()


def row(size: int, name: str, reads: str, rate: float | None, m: dict[str, float], base: dict[str, float]
        ) -> list[Any]:
    return [size, name, reads, "-" if rate is None else round(rate), f"{m['recall']:.3f}", f"{m['top1']:.3f}", f"{m['p50_1']:.1f}",
            f"{m['p99_1']:.1f}", f"{m['p50_16']:.1f}", f"{m['p99_16']:.1f}", round(m["qps_16"]),
            f"{m['qps_16'] / base['qps_16']:.2f}"]


async def report(sizes: list[int], queries: int = 200, uri: str = "", seed: int = 0,
                 indexes: tuple[str, ...] = ("FLAT", "IVF_FLAT", "HNSW"), reads: tuple[str, ...] = ("Strong", "Session"),
                 index_wait_s: float = 1800, one_load: bool = False) -> str:
    """The Milvus-beside-embedded table (also printed by ``bench/search.py --milvus``)."""
    rng = np.random.default_rng(seed)
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if not uri:
            server = LocalMilvus(Path(tmp) / "milvus", die_with_parent=True)
            server.start()
            uri = server.uri
        try:
            version = await _server_version(uri)
            log(f"Milvus server {version} at {uri}")
            for size in sizes:
                rows += await run_size(size, queries, uri, rng, Path(tmp), list(indexes), list(reads), index_wait_s,
                                       one_load)
        finally:
            if server is not None:
                server.kill()  # a temporary folder: nothing to keep
    head = f"Milvus server {version}; {queries} probes; top 10 by confidence; latency ms\n"
    return head + table(HEADERS, rows)


async def _server_version(uri: str) -> str:
    def ask() -> str:
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri)
        try:
            return str(client.get_server_version())
        finally:
            client.close()

    return await asyncio.get_running_loop().run_in_executor(None, ask)


async def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--sizes", default="100000", help="gallery sizes, comma-separated (e.g. 100000,1000000)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--uri", default="", help="a Milvus server (default: start the pinned wheel's server)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--indexes", default="FLAT,IVF_FLAT,HNSW", help="Milvus indexes: FLAT, IVF_FLAT, HNSW")
    ap.add_argument("--reads", default="Strong,Session", help="Milvus read consistency levels")
    ap.add_argument("--index-wait-s", type=float, default=1800,
                    help="longest wait for an index build; then the bench measures the rows indexed by then")
    ap.add_argument("--one-load", action="store_true",
                    help="load Milvus once per size and swap the index (saves the loads at 1M; insert rate "
                         "only for the first index)")
    args = ap.parse_args()
    indexes = tuple(args.indexes.split(","))
    for name in indexes:
        index_config(name, 1)  # an unknown name stops the bench before any loading
    print(await report([int(s) for s in args.sizes.split(",")], args.queries, args.uri, args.seed, indexes,
                       tuple(args.reads.split(",")), args.index_wait_s, args.one_load))


if __name__ == "__main__":
    asyncio.run(main())
