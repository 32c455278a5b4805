"""MilvusStore on milvus-lite (a ``*.db`` path), where it differs from a server or needs none:
reopening, the catalog across instances, lite's narrow-window paging, index types, errors, config,
migration progress. The backend contract runs on a real server (test_milvus_server.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from pymilvus import MilvusException  # noqa: E402

from sfapi.config import GalleryConfig  # noqa: E402
from sfapi.errors import BadParam, GalleryNotFound, StorageError  # noqa: E402
from sfapi.gallery.embedded import EmbeddedStore  # noqa: E402
from sfapi.gallery.factory import create_backend  # noqa: E402
from sfapi.gallery.migrate import Progress, migrate_gallery, run_migration  # noqa: E402
from sfapi.gallery.milvus import MilvusStore  # noqa: E402
from sfapi.gallery.milvus_conn import MilvusConn  # noqa: E402
from sfapi.gallery.types import FaceRecord, IdFilter, LookAlike, MetaFilter, Query  # noqa: E402

from tests.sfapi.gallery.contract import (  # noqa: E402
    SCHEMA,
    collect,
    random_meta,
    record,
    ref_match,
    unit_vectors,
)


async def test_released_collections_are_loaded_again(tmp_path: Path) -> None:
    """A restarted milvus-lite (or an operator) leaves collections released: reopening loads them."""
    uri = str(tmp_path / "milvus.db")
    store = MilvusStore(uri)
    await store.open()
    recs = await _fill(store, 20)
    collection = store._galleries["g"].collection
    await store.close()
    raw = MilvusConn(uri)
    raw.connect()
    for name in ("sfapi_galleries", collection):
        raw.call("release", "release_collection", name)
    raw.close()
    again = MilvusStore(uri)
    await again.open()
    assert [(g.name, g.number) for g in await again.list_galleries()] == [("g", 20)]
    res = await again.search("g", Query(like=LookAlike(recs[3].facen, 0.9), sort="-confidence"))
    assert [h.record.id for h in res.hits] == [recs[3].id]
    await again.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MilvusStore]:
    s = MilvusStore(str(tmp_path / "milvus.db"))
    await s.open()
    yield s
    await s.close()


async def _fill(backend: Any, n: int = 300, gallery: str = "g") -> list[Any]:
    await backend.create_gallery(gallery, SCHEMA)
    rng = np.random.default_rng(11)
    vecs = unit_vectors(n, seed=5)
    recs = [record(i * 3 if i % 7 else 2**64 - 1 - i, vecs[i], random_meta(rng), i=i) for i in range(n)]
    await backend.add_many(gallery, recs)
    return recs


async def test_catalog_is_shared_by_instances_and_survives_reopen(tmp_path: Path) -> None:
    uri = str(tmp_path / "milvus.db")
    a, b = MilvusStore(uri), MilvusStore(uri)
    await a.open()
    await b.open()
    await a.create_gallery("people.v1-x", SCHEMA)
    await a.add("people.v1-x", record(5, unit_vectors(1)[0], {"age": 3}))
    assert await b.schema("people.v1-x") == SCHEMA  # created by another instance
    assert (await b.get("people.v1-x", 5)).meta == {"age": 3}
    await a.drop_gallery("people.v1-x")
    with pytest.raises(GalleryNotFound):  # b's cached gallery is gone with its collection
        await b.get("people.v1-x", 5)
    await b.create_gallery("people.v1-x", {})
    await b.add("people.v1-x", FaceRecord(id=7, facen=unit_vectors(1, seed=7)[0], model="m2"))
    await a.close()
    await b.close()

    again = MilvusStore(uri)
    await again.open()
    assert [(g.name, g.number) for g in await again.list_galleries()] == [("people.v1-x", 1)]
    with pytest.raises(BadParam) as err:  # the model of the first face is kept
        await again.add("people.v1-x", record(8, unit_vectors(1)[0]))
    assert err.value.param == "facen"
    await again.close()


@pytest.mark.parametrize("sort,like,threshold", [
    ("id", False, 0.0), ("-id", False, 0.0), ("id", True, 0.0), ("-id", True, 0.4), ("-confidence", True, 0.0),
    ("-confidence", True, 0.4),
])
async def test_narrow_result_window_pages_exactly(tmp_path: Path, sort: str, like: bool, threshold: float) -> None:
    """A result window far below the gallery size: id pages need several narrowing rounds and
    confidence pages a growing search, and still equal the embedded store's pages."""
    milvus = MilvusStore(str(tmp_path / "m.db"), window=16)
    embedded = EmbeddedStore(tmp_path / "e.db")
    await milvus.open()
    await embedded.open()
    try:
        recs = await _fill(milvus)
        await _fill(embedded)
        probe = LookAlike(recs[4].facen, threshold) if like else None
        meta = (MetaFilter("age", "gte", 20),)
        pages = []
        for backend in (milvus, embedded):
            if sort == "-confidence" and backend is milvus:  # milvus-lite pages by confidence within its window
                q = Query(meta=meta, like=probe, sort=sort, limit=5)  # type: ignore[arg-type]
                res = await backend.search("g", q)
                pages.append([(h.record.id, h.confidence) for h in res.hits])
                continue
            hits = await collect(backend, "g", Query(meta=meta, like=probe, sort=sort, limit=5))  # type: ignore[arg-type]
            pages.append([(h.record.id, h.confidence) for h in hits])
        got, want = pages
        if sort == "-confidence":
            want = want[:5]
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([c or 0 for _, c in got], [c or 0 for _, c in want], atol=1e-5)
        if not like:
            assert len(want) == sum(ref_match(r, Query(meta=meta)) for r in recs)
    finally:
        await milvus.close()
        await embedded.close()


async def test_lite_confidence_paging_is_bounded_by_the_window(tmp_path: Path) -> None:
    milvus = MilvusStore(str(tmp_path / "m.db"), window=16)
    await milvus.open()
    recs = await _fill(milvus, 60)
    with pytest.raises(StorageError, match="milvus-lite"):
        await collect(milvus, "g", Query(like=LookAlike(recs[0].facen, 0.0), sort="-confidence", limit=5))
    with pytest.raises(StorageError, match="window"):
        await milvus.search("g", Query(limit=20))
    await milvus.close()


@pytest.mark.parametrize("index,params", [("HNSW", {"M": 8, "efConstruction": 64}), ("IVF_FLAT", {"nlist": 4})])
async def test_approximate_indexes_find_the_face_itself(tmp_path: Path, index: str, params: dict[str, Any]) -> None:
    milvus = MilvusStore(str(tmp_path / "m.db"), index_type=index, index_params=params,
                         search_params={"nprobe": 4} if index == "IVF_FLAT" else {"ef": 32})
    await milvus.open()
    recs = await _fill(milvus, 200)
    for rec in recs[::40]:
        res = await milvus.search("g", Query(like=LookAlike(rec.facen, 0.5), sort="-confidence", limit=3))
        assert res.hits[0].record.id == rec.id and res.hits[0].confidence > 0.99
    await milvus.close()


async def test_unreachable_milvus_is_a_storage_error() -> None:
    store = MilvusStore("http://127.0.0.1:9", timeout_s=1.0)
    with pytest.raises(StorageError) as err:  # at once, not after a hang (the per-test limit)
        await store.open()
    assert "127.0.0.1:9" in err.value.reason
    with pytest.raises(StorageError):
        await store.search("g", Query())


@pytest.mark.parametrize("ignore_errors", [False, True])
async def test_milvus_errors_map_to_storage_error(store: MilvusStore, monkeypatch: pytest.MonkeyPatch,
                                                  ignore_errors: bool) -> None:
    recs = await _fill(store, 20)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise MilvusException(code=65535, message="rpc deadline exceeded")

    monkeypatch.setattr(store.conn._client, "search", fail)
    monkeypatch.setattr(store.conn._client, "insert", fail)
    with pytest.raises(StorageError) as err:  # Milvus answers whole or not at all: nothing partial
        await store.search("g", Query(like=LookAlike(recs[0].facen, 0.0), sort="-confidence",
                                      ignore_errors=ignore_errors))
    assert "deadline exceeded" in err.value.reason and err.value.code == "STORAGE_ERROR"
    with pytest.raises(StorageError):
        await store.add("g", record(10**6, recs[0].facen))
    assert (await store.search("g", Query(ids=(IdFilter("oneof", (10**6,)),)))).hits == []


def test_factory_builds_the_configured_milvus_store(tmp_path: Path) -> None:
    cfg = GalleryConfig(backend="milvus", milvus_uri=str(tmp_path / "m.db"), milvus_prefix="site1_",
                        milvus_index={"type": "HNSW", "params": {"M": 16}, "search_params": {"ef": 64}})
    backend = create_backend(cfg)
    assert isinstance(backend, MilvusStore)
    assert (backend.catalog, backend.index_type, backend.index_params, backend.search_params) == (
        "site1_galleries", "HNSW", {"M": 16}, {"ef": 64})


async def test_migrate_embedded_to_milvus_and_back(tmp_path: Path) -> None:
    embedded = EmbeddedStore(tmp_path / "e.db")
    milvus = MilvusStore(str(tmp_path / "m.db"))
    await embedded.open()
    await milvus.open()
    recs = await _fill(embedded, 250)
    seen: list[Progress] = []
    done = await migrate_gallery(embedded, milvus, "g", batch=64, progress=seen.append)
    assert (done.read, done.written, done.skipped) == (250, 250, 0)
    assert [p.read for p in seen] == [64, 128, 192, 250] and seen[-1].total == 250
    again = await migrate_gallery(embedded, milvus, "g", batch=100, progress=None)  # resumable: no-op
    assert (again.written, again.skipped) == (0, 250)
    back = EmbeddedStore(tmp_path / "back.db")
    await back.open()
    await migrate_gallery(milvus, back, "g", batch=100, progress=None)
    for b in (milvus, back):
        hits = await collect(b, "g", Query(limit=1000))
        by_id = {r.id: r for r in recs}
        assert [h.record.id for h in hits] == sorted(by_id)
        for h in hits:
            r = by_id[h.record.id]
            assert h.record.meta == r.meta and h.record.features == r.features
            assert np.array_equal(h.record.facen, r.facen) and h.record.model == r.model
    await back.create_gallery("other", {"x": "int"})
    await milvus.create_gallery("other", {"x": "string"})
    with pytest.raises(BadParam):
        await migrate_gallery(milvus, back, "other", progress=None)
    for b in (embedded, milvus, back):
        await b.close()


async def test_run_migration_opens_both_backends_from_config(tmp_path: Path) -> None:
    cfg = GalleryConfig(path=tmp_path / "e.db", milvus_uri=str(tmp_path / "m.db"))
    embedded = EmbeddedStore(tmp_path / "e.db")
    await embedded.open()
    await _fill(embedded, 30)
    await embedded.close()
    out = await run_migration(cfg, "embedded", "milvus", ["g"], batch=7, progress=None)
    assert [(p.read, p.written) for p in out] == [(30, 30)]
    milvus = MilvusStore(str(tmp_path / "m.db"))
    await milvus.open()
    assert [(g.name, g.number) for g in await milvus.list_galleries()] == [("g", 30)]
    await milvus.close()


async def test_galleries_of_the_earlier_layout_are_refused_but_can_be_dropped(store: MilvusStore) -> None:
    """Catalog rows without a layout were written by sfapi versions with INT64 keys and nullable
    fields: refused with a clear reason, and still droppable."""
    await store.create_gallery("old", {"n": "int"})
    info = json.loads(store._galleries.pop("old").info_json())
    del info["layout"]
    store.conn.call("test", "upsert", store.catalog, [store.conn.catalog_row("old", json.dumps(info))])
    with pytest.raises(StorageError, match="earlier sfapi version"):
        await store.search("old", Query())
    await store.drop_gallery("old")
    assert await store.list_galleries() == []
