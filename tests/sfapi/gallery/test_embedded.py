"""EmbeddedStore: the backend contract plus durability, reload, sharding and filter-mask tests."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import pytest

from sfapi.errors import BadParam
from sfapi.gallery import scan
from sfapi.gallery.columns import IntColumn, StringColumn, StringsColumn
from sfapi.gallery.embedded import EmbeddedStore
from sfapi.gallery.index import GalleryIndex
from sfapi.gallery.sqlite_store import SqliteStore
from sfapi.gallery.types import IdFilter, LookAlike, MetaFilter, Query

from tests.sfapi.gallery.contract import SCHEMA, BackendContract, collect, record, unit_vectors

REPO = Path(__file__).resolve().parents[3]


class TestEmbeddedContract(BackendContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
        store = EmbeddedStore(tmp_path / "gallery.db")
        await store.open()
        yield store
        await store.close()


class TestEmbeddedShardedContract(BackendContract):
    """The same contract with the scan split into many small parts, gathered and full-scan."""

    @pytest.fixture(params=[0.0, 1.0], ids=["full-scan", "gather"])
    async def backend(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedStore]:
        monkeypatch.setattr(scan, "MIN_PART_ROWS", 16)
        monkeypatch.setattr(scan, "SPLIT_FULL_SCAN", True)
        monkeypatch.setattr(scan, "GATHER_FRACTION", request.param)
        store = EmbeddedStore(tmp_path / "gallery.db", shards=3)
        await store.open()
        yield store
        await store.close()


async def _snapshot_of(store: EmbeddedStore, probe: np.ndarray) -> list[Any]:
    out = []
    for q in (Query(limit=10_000), Query(like=LookAlike(probe, 0.2), sort="-confidence", limit=50),
              Query(meta=(MetaFilter("tags", "subset", ("red",)),), limit=10_000)):
        res = await store.search("g", q)
        out.append([(h.record.id, h.record.meta, h.record.features, h.confidence, h.record.facen.tobytes())
                    for h in res.hits])
    return out


async def test_reload_gives_the_same_faces_and_results(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = EmbeddedStore(path)
    await store.open()
    await store.create_gallery("g", SCHEMA)
    await store.create_gallery("empty", {"x": "int"})
    vecs = unit_vectors(500)
    rng = np.random.default_rng(3)
    tags = [["red"], ["red", "blue"], [], ["blue"]]
    await store.add_many("g", [record(i * 7, vecs[i], {"age": int(rng.integers(0, 90)), "tags": tags[i % 4]}, q=i)
                               for i in range(500)])
    for i in range(0, 500, 5):
        await store.delete("g", i * 7)
    for i in range(1, 500, 9):
        if i % 5 == 0:
            continue
        await store.update_meta("g", i * 7, {"age": 1000 + i, "tags": ["red"]})
    before = await _snapshot_of(store, vecs[3])
    galleries = await store.list_galleries()
    await store.close()

    again = EmbeddedStore(path)
    await again.open()
    assert await again.list_galleries() == galleries
    assert await again.schema("empty") == {"x": "int"}
    assert await _snapshot_of(again, vecs[3]) == before
    await again.close()


async def test_compaction_keeps_the_index_consistent(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "g.db")
    await store.open()
    await store.create_gallery("g", SCHEMA)
    vecs = unit_vectors(400)
    await store.add_many("g", [record(i, vecs[i], {"age": i, "camera": f"c{i % 3}", "tags": ["t"] if i % 2 else []})
                               for i in range(400)])
    for i in range(0, 400, 2):
        await store.update_meta("g", i, {"age": -i})
    for i in range(1, 400, 4):
        await store.delete("g", i)
    store._galleries["g"].index.compact()  # what a long-running store does after many tombstones
    left = [i for i in range(400) if i % 4 != 1]
    hits = await collect(store, "g", Query(limit=100))
    assert [h.record.id for h in hits] == left
    assert all(h.record.meta["age"] == (-h.record.id if h.record.id % 2 == 0 else h.record.id) for h in hits)
    res = await store.search("g", Query(meta=(MetaFilter("tags", "subset", ("t",)), MetaFilter("camera", "oneof", ("c0",))),
                                        limit=1000))
    assert [h.record.id for h in res.hits] == [i for i in left if i % 2 and i % 3 == 0]
    res = await store.search("g", Query(like=LookAlike(vecs[6], 0.9), sort="-confidence"))
    assert [h.record.id for h in res.hits] == [6]
    await store.close()


async def test_concurrent_writes_share_one_commit(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "g.db")
    await store.open()
    await store.create_gallery("g", {})
    sizes: list[int] = []
    real = SqliteStore._commit_group

    def spy(self: SqliteStore, batch: list[Any]) -> None:
        sizes.append(len(batch))
        real(self, batch)

    gate = threading.Event()
    blocker = asyncio.wrap_future(store._sql.submit(lambda conn: gate.wait(10)))
    await asyncio.sleep(0.05)  # the writer is now inside the blocking write
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SqliteStore, "_commit_group", spy)
        vecs = unit_vectors(20)
        adds = asyncio.gather(*(store.add("g", record(i, vecs[i])) for i in range(20)))
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        await adds
    assert sizes == [20]
    await store.close()


def test_bad_synchronous_mode(tmp_path: Path) -> None:
    with pytest.raises(BadParam):
        EmbeddedStore(tmp_path / "g.db", synchronous="SOMETIMES")


async def test_ids_keep_their_order_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = EmbeddedStore(path, synchronous="NORMAL")
    await store.open()
    await store.create_gallery("g", {})
    ids = [2**64 - 1, 0, 2**63, 2**63 - 1, 12345]
    vecs = unit_vectors(len(ids))
    for fid, v in zip(ids, vecs):
        await store.add("g", record(fid, v))
    await store.close()
    with sqlite3.connect(path) as conn:
        raw = [r[0] for r in conn.execute("SELECT id FROM faces ORDER BY id")]
    assert [r + 2**63 for r in raw] == sorted(ids)


# -- kill -9 durability ---------------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    import numpy as np
    from sfapi.gallery.embedded import EmbeddedStore
    from sfapi.gallery.types import FaceRecord

    def vec(i):
        v = np.random.default_rng(i).standard_normal(128).astype(np.float32)
        return v / np.linalg.norm(v)

    async def adder(store, first, step):
        i = first
        while True:
            await store.add("g", FaceRecord(id=i, facen=vec(i), meta={"n": i, "s": f"face-{i}"},
                                            features={"k": [i, i]}, model="m"))
            sys.stdout.write(f"{i}\\n")
            sys.stdout.flush()
            i += step

    async def main():
        store = EmbeddedStore(Path(sys.argv[1]))
        await store.open()
        if not await store.list_galleries():
            await store.create_gallery("g", {"n": "int", "s": "string"})
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(adder(store, k, 8) for k in range(8)))

    asyncio.run(main())
""")


async def test_acknowledged_adds_survive_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "g.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, env=env, cwd=REPO)
    assert proc.stdout is not None
    acked: list[int] = []
    try:
        assert proc.stdout.readline().strip() == b"ready"
        while len(acked) < 300:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        tail = proc.stdout.read()
        proc.stdout.close()
    acked += [int(x) for x in tail.split(b"\n")[:-1]]  # complete lines only
    assert len(acked) >= 300

    store = EmbeddedStore(path)
    await store.open()
    stored = await collect(store, "g", Query(limit=10_000))
    by_id = {h.record.id: h.record for h in stored}
    assert set(acked) <= set(by_id), f"lost acknowledged adds: {sorted(set(acked) - set(by_id))[:10]}"
    for rec in by_id.values():  # nothing half-written: every stored face is whole
        v = np.random.default_rng(rec.id).standard_normal(128).astype(np.float32)
        assert np.array_equal(rec.facen, v / np.linalg.norm(v))
        assert rec.meta == {"n": rec.id, "s": f"face-{rec.id}"} and rec.features == {"k": [rec.id, rec.id]}
        assert rec.model == "m"
    await store.close()


# -- filter masks -------------------------------------------------------------------------------
INTS = [5, None, -3, 5, 100, 0, None]
STRS = ["b", "a", None, "c", "b", "", "a"]
LISTS = [["x", "y"], [], None, ["y"], ["x", "y", "z"], ["x"], ["z", "x"]]


@pytest.mark.parametrize("op,value,want", [
    ("lte", 5, [0, 2, 3, 5]), ("gte", 5, [0, 3, 4]), ("lte", -4, []), ("gte", -3, [0, 2, 3, 4, 5]),
    ("oneof", (5,), [0, 3]), ("oneof", (0, 100, 7), [4, 5]), ("oneof", (), []),
])
def test_int_column_mask(op: str, value: Any, want: list[int]) -> None:
    col = IntColumn()
    col.append(0, INTS[:3])
    col.append(3, INTS[3:])
    assert np.flatnonzero(col.mask(op, value, len(INTS))).tolist() == want
    assert np.flatnonzero(col.mask(op, value, 3)).tolist() == [w for w in want if w < 3]


@pytest.mark.parametrize("op,value,want", [
    ("oneof", ("a",), [1, 6]), ("oneof", ("a", "c", "q"), [1, 3, 6]), ("oneof", ("q",), []),
    ("oneof", ("",), [5]), ("lte", "b", [0, 1, 4, 5, 6]), ("gte", "b", [0, 3, 4]), ("lte", "", [5]),
])
def test_string_column_mask(op: str, value: Any, want: list[int]) -> None:
    col = StringColumn()
    col.append(0, STRS)
    assert np.flatnonzero(col.mask(op, value, len(STRS))).tolist() == want


@pytest.mark.parametrize("value,want", [
    (("x",), [0, 4, 5, 6]), (("x", "y"), [0, 4]), (("z", "x"), [4, 6]), (("x", "y", "z"), [4]),
    (("q",), []), (("x", "q"), []), ((), [0, 1, 2, 3, 4, 5, 6]),
])
def test_strings_column_mask(value: tuple[str, ...], want: list[int]) -> None:
    col = StringsColumn()
    col.append(0, LISTS[:4])
    col.append(4, LISTS[4:])
    assert np.flatnonzero(col.mask("subset", value, len(LISTS))).tolist() == want
    assert np.flatnonzero(col.mask("subset", value, 4)).tolist() == [w for w in want if w < 4]
    keep = np.array([0, 3, 4, 6])
    new_of_old = np.full(len(LISTS), -1)
    new_of_old[keep] = np.arange(keep.size)
    taken = col.take(keep, new_of_old)
    assert np.flatnonzero(taken.mask("subset", value, keep.size)).tolist() == [
        int(new_of_old[w]) for w in want if w in keep] or value == ()


@pytest.mark.parametrize("ids,meta,want", [
    ((), (), [10, 20, 30, 40]),
    ((IdFilter("lte", 20),), (), [10, 20]),
    ((IdFilter("gte", 25),), (), [30, 40]),
    ((IdFilter("oneof", (40, 10, 99)),), (), [10, 40]),
    ((), (MetaFilter("age", "gte", 2),), [20, 30]),
    ((), (MetaFilter("cam", "oneof", ("b",)),), [20, 40]),
    ((), (MetaFilter("tags", "subset", ("x",)),), [10, 30]),
    ((IdFilter("gte", 20),), (MetaFilter("tags", "subset", ("x",)), MetaFilter("age", "lte", 5)), [30]),
])
def test_index_snapshot_mask(ids: tuple[IdFilter, ...], meta: tuple[MetaFilter, ...], want: list[int]) -> None:
    index = GalleryIndex({"age": "int", "cam": "string", "tags": "strings"})
    metas = [{"age": 1, "cam": "a", "tags": ["x"]}, {"age": 2, "cam": "b"}, {"age": 3, "tags": ["x", "y"]},
             {"cam": "b", "tags": []}]
    index.append([10, 20, 30, 40], unit_vectors(4), metas, ["[{},{}]"] * 4)
    index.append([50], unit_vectors(1), [{"age": 2, "cam": "b", "tags": ["x"]}], ["[{},{}]"])
    index.remove(50)
    snap = index.snapshot(ids, meta)
    assert snap.mask is not None
    assert snap.ids[snap.mask].tolist() == want


# -- search batching ------------------------------------------------------------------------------
def _batch_queries(vecs: np.ndarray, recs_conf: float) -> list[Query]:
    """16 look-alike queries of every kind: filters selecting all, some (gathered) or none of the
    rows, thresholds (one exactly at a face's confidence), every order, limits and cursors."""
    metas: list[tuple[MetaFilter, ...]] = [
        (), (MetaFilter("camera", "oneof", ("cam-a",)),), (MetaFilter("age", "gte", 50),),
        (MetaFilter("tags", "subset", ("red",)),), (MetaFilter("camera", "oneof", ("nope",)),),
        (MetaFilter("camera", "oneof", ("cam-b",)), MetaFilter("age", "lte", 30)),
    ]
    out = []
    for i in range(16):
        sort = ("-confidence", "-confidence", "id", "-id")[i % 4]
        threshold = (0.0, 0.3, recs_conf, 0.5)[i % 4 if i < 12 else 2]
        ids = (IdFilter("gte", 100),) if i % 5 == 4 else ()
        out.append(Query(ids=ids, meta=metas[i % len(metas)], like=LookAlike(vecs[i % 3 * 7], threshold),
                         sort=sort, limit=(10, 3, 50, 1)[i % 4]))  # type: ignore[arg-type]
    return out


def _as_rows(res: Any) -> Any:
    if isinstance(res, BaseException):
        return type(res).__name__
    return ([(h.record.id, h.confidence, h.record.meta, h.record.features, h.record.facen.tobytes())
             for h in res.hits], res.next_page)


@pytest.mark.parametrize("score_elements,min_part,fraction", [
    (4 * 1024 * 1024, 32768, 0.3),  # defaults: one block
    (2048, 64, 0.3),  # many blocks per scan
    (2048, 64, 0.0),  # never gather
    (2048, 64, 1.0),  # gather whatever the filters select
], ids=["default", "blocks", "full-scan", "gather"])
async def test_concurrent_searches_equal_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   score_elements: int, min_part: int, fraction: float) -> None:
    monkeypatch.setattr(scan, "_SCORE_ELEMENTS", score_elements)
    monkeypatch.setattr(scan, "MIN_PART_ROWS", min_part)
    monkeypatch.setattr(scan, "GATHER_FRACTION", fraction)
    if score_elements < 4 * 1024 * 1024:
        monkeypatch.setattr(scan, "_GATHER_CHUNK", 100)
        monkeypatch.setattr(scan, "_BATCH_GATHER_CHUNK", 150)
    store = EmbeddedStore(tmp_path / "g.db", shards=2)
    await store.open()
    await store.create_gallery("g", SCHEMA)
    vecs = unit_vectors(3000, seed=5)
    rng = np.random.default_rng(11)
    cams = ["cam-a", "cam-b", "cam-c", "cam-d", "cam-e", "cam-f", "cam-g", "cam-h", "cam-i", "cam-j"]
    await store.add_many("g", [record(i, vecs[i], {"age": int(rng.integers(0, 100)), "camera": cams[i % 10],
                                                   "tags": ["red"] if i % 7 == 0 else []}) for i in range(3000)])
    for i in range(0, 3000, 11):
        await store.delete("g", i)
    exact = (await store.search("g", Query(like=LookAlike(vecs[0], 0.0), sort="-confidence", limit=40))).hits
    queries = _batch_queries(vecs, exact[25].confidence)  # a threshold exactly at a face's confidence
    queries.append(Query(like=LookAlike(unit_vectors(1, dim=64)[0], 0.5), sort="-confidence"))  # its own error
    sizes: list[int] = []
    real = scan.run_many

    def spy(snaps: Any, plans: Any, *args: Any) -> Any:
        sizes.append(len(plans))
        return real(snaps, plans, *args)

    monkeypatch.setattr(scan, "run_many", spy)

    async def one(q: Query) -> Any:
        try:
            return await store.search("g", q)
        except BadParam as exc:
            return exc

    for _ in range(2):  # page 1, then page 2 from each query's cursor
        alone = [_as_rows(await one(q)) for q in queries]
        assert sizes == [1] * (len(queries) - 1)  # the bad query never reaches the scan
        sizes.clear()
        together = [_as_rows(r) for r in await asyncio.gather(*(one(q) for q in queries))]
        assert sizes == [len(queries) - 1]
        sizes.clear()
        assert together == alone
        assert together[-1] == "BadParam" and all(isinstance(r, tuple) for r in together[:-1])
        assert any(r[0] for r in together[:-1]) and any(not r[0] for r in together[:-1])
        queries = [Query(ids=q.ids, meta=q.meta, like=q.like, sort=q.sort, limit=q.limit, after=r[1])
                   if isinstance(r, tuple) and r[1] is not None else q for q, r in zip(queries, together)]
    await store.close()


async def test_searches_arriving_during_a_scan_form_the_next_batch(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = EmbeddedStore(tmp_path / "g.db")
    await store.open()
    await store.create_gallery("g", {})
    vecs = unit_vectors(100)
    await store.add_many("g", [record(i, vecs[i]) for i in range(100)])
    gate = threading.Event()
    sizes: list[int] = []
    real = scan.run_many

    def spy(snaps: Any, plans: Any, *args: Any) -> Any:
        sizes.append(len(plans))
        if len(sizes) == 1:
            gate.wait(10)
        return real(snaps, plans, *args)

    monkeypatch.setattr(scan, "run_many", spy)
    first = asyncio.ensure_future(store.search("g", Query(like=LookAlike(vecs[0], 0.0), sort="-confidence", limit=1)))
    await asyncio.sleep(0.05)  # the first search is now scanning
    rest = asyncio.gather(*(store.search("g", Query(like=LookAlike(vecs[i], 0.0), sort="-confidence", limit=1))
                            for i in range(1, 6)))
    await asyncio.sleep(0.05)
    gate.set()
    assert [h.record.id for h in (await first).hits] == [0]
    assert [r.hits[0].record.id for r in await rest] == [1, 2, 3, 4, 5]
    assert sizes == [1, 5]
    await store.close()


def test_bad_batch_window(tmp_path: Path) -> None:
    with pytest.raises(BadParam):
        EmbeddedStore(tmp_path / "g.db", batch_window_s=-1)
