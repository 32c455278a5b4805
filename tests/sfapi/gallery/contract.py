"""The gallery backend contract: one suite every GalleryBackend must pass.

Plug a backend in by subclassing :class:`BackendContract` in a test module (named ``Test...``) and
defining the async fixture ``backend`` that yields an opened, empty backend and closes it::

    class TestMilvusContract(BackendContract):
        @pytest.fixture
        async def backend(self, tmp_path):
            store = MilvusStore(...)
            await store.open()
            yield store
            await store.close()

The tests use random 128-d unit vectors and a reference implementation written here in plain
Python (brute force over the records the test added) to check filters, ordering and paging.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import numpy as np
import pytest

from facestack.vision.engines.similarity import cosine_threshold, similarity
from sfapi.errors import BadParam, Conflict, GalleryNotFound, NotFound
from sfapi.gallery.backend import GalleryBackend
from sfapi.gallery.types import (
    UINT64_MAX,
    Cursor,
    FaceRecord,
    IdFilter,
    LookAlike,
    MetaFilter,
    Query,
    SearchResult,
)

DIM = 128
MODEL = "test-model"
SCHEMA = {"age": "int", "camera": "string", "tags": "strings"}
CAMERAS = ["cam-a", "cam-b", "cam-c", "cam-d"]
TAGS = ["red", "green", "blue", "male", "female"]


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_meta(rng: np.random.Generator) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if rng.random() < 0.9:
        meta["age"] = int(rng.integers(0, 100))
    if rng.random() < 0.9:
        meta["camera"] = CAMERAS[int(rng.integers(0, len(CAMERAS)))]
    if rng.random() < 0.9:
        meta["tags"] = sorted({TAGS[int(i)] for i in rng.integers(0, len(TAGS), int(rng.integers(0, 4)))})
    return meta


def record(face_id: int, vec: np.ndarray, meta: dict[str, Any] | None = None, **features: Any) -> FaceRecord:
    return FaceRecord(id=face_id, facen=vec, meta=meta or {}, features=features, model=MODEL)


def ref_match(rec: FaceRecord, q: Query) -> bool:
    """Plain-Python meaning of the id and meta filters."""
    for f in q.ids:
        vals = f.value if isinstance(f.value, tuple) else (f.value,)
        if not {"lte": rec.id <= vals[0], "gte": rec.id >= vals[0], "oneof": rec.id in vals}[f.op]:
            return False
    for f in q.meta:
        if f.field not in rec.meta:
            if f.op == "subset" and f.value == ():
                continue
            return False
        have = rec.meta[f.field]
        vals = f.value if isinstance(f.value, tuple) else (f.value,)
        ok = {"lte": lambda: have <= vals[0], "gte": lambda: have >= vals[0],
              "oneof": lambda: have in vals, "subset": lambda: set(vals) <= set(have)}[f.op]()
        if not ok:
            return False
    return True


async def collect(backend: GalleryBackend, gallery: str, query: Query, max_pages: int = 10_000) -> list[Any]:
    """Every hit of a query, following next_page."""
    hits = []
    for _ in range(max_pages):
        res = await backend.search(gallery, query)
        hits.extend(res.hits)
        if res.next_page is None:
            return hits
        query = Query(ids=query.ids, meta=query.meta, like=query.like, sort=query.sort,
                      limit=query.limit, after=res.next_page)
    raise AssertionError("paging did not end")


def filled_records() -> list[FaceRecord]:
    """The 300 faces of the ``filled`` fixture (always the same)."""
    rng = np.random.default_rng(7)
    vecs = unit_vectors(300, seed=1)
    return [record(i if i < 250 else i * 1000, vecs[i], random_meta(rng), quality=float(i)) for i in range(300)]


async def fill(backend: GalleryBackend, gallery: str = "g") -> list[FaceRecord]:
    """Create ``gallery`` and add :func:`filled_records` to it, concurrently."""
    await backend.create_gallery(gallery, SCHEMA)
    recs = filled_records()
    await asyncio.gather(*(backend.add(gallery, r) for r in recs))
    return recs


FILTER_CASES = [
    ((), ()),
    ((IdFilter("lte", 150),), ()),
    ((IdFilter("gte", 150),), ()),
    ((IdFilter("gte", 50), IdFilter("lte", 60)), ()),
    ((IdFilter("oneof", (3, 77, 199, 10**9)),), ()),
    ((), (MetaFilter("age", "lte", 30),)),
    ((), (MetaFilter("age", "gte", 30), MetaFilter("age", "lte", 40))),
    ((), (MetaFilter("age", "oneof", (1, 2, 3, 50)),)),
    ((), (MetaFilter("camera", "oneof", ("cam-a",)),)),
    ((), (MetaFilter("camera", "oneof", ("cam-b", "cam-d", "nope")),)),
    ((), (MetaFilter("camera", "lte", "cam-b"),)),
    ((), (MetaFilter("camera", "gte", "cam-c"),)),
    ((), (MetaFilter("camera", "oneof", ("nope",)),)),
    ((), (MetaFilter("tags", "subset", ("red",)),)),
    ((), (MetaFilter("tags", "subset", ("red", "male")),)),
    ((), (MetaFilter("tags", "subset", ("nope",)),)),
    ((IdFilter("lte", 200),), (MetaFilter("tags", "subset", ("blue",)), MetaFilter("camera", "oneof", ("cam-a", "cam-c")),
                               MetaFilter("age", "gte", 20))),
]


class BackendContract:
    """Backend-independent behaviour. Subclasses provide the ``backend`` fixture."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[GalleryBackend]:
        raise NotImplementedError("a backend test module overrides the backend fixture")
        yield  # pragma: no cover

    @pytest.fixture
    async def filled(self, backend: GalleryBackend) -> tuple[GalleryBackend, list[FaceRecord]]:
        """Gallery ``g`` with 300 faces (ids 0, 1, 3, ..., some sparse) of random meta."""
        return backend, await fill(backend)

    # -- galleries ---------------------------------------------------------------------------
    async def test_gallery_lifecycle(self, backend: GalleryBackend) -> None:
        assert await backend.list_galleries() == []
        info = await backend.create_gallery("people.v1", SCHEMA)
        assert (info.name, info.number) == ("people.v1", 0)
        assert await backend.schema("people.v1") == SCHEMA
        with pytest.raises(Conflict):
            await backend.create_gallery("people.v1", {})
        await backend.add("people.v1", record(1, unit_vectors(1)[0]))
        assert [(g.name, g.number) for g in await backend.list_galleries()] == [("people.v1", 1)]
        await backend.drop_gallery("people.v1")
        assert await backend.list_galleries() == []
        with pytest.raises(GalleryNotFound):
            await backend.drop_gallery("people.v1")
        await backend.create_gallery("people.v1", {})  # the name is free again, and empty
        assert [(g.name, g.number) for g in await backend.list_galleries()] == [("people.v1", 0)]

    @pytest.mark.parametrize("name", ["", "a" * 65, "with space", "slash/y", "ü", "semi;colon"])
    async def test_bad_gallery_name(self, backend: GalleryBackend, name: str) -> None:
        with pytest.raises(BadParam) as err:
            await backend.create_gallery(name, {})
        assert err.value.param == "name"

    async def test_bad_schema(self, backend: GalleryBackend) -> None:
        with pytest.raises(BadParam):
            await backend.create_gallery("g", {"age": "float"})  # type: ignore[dict-item]

    @pytest.mark.parametrize("call", ["schema", "add", "get", "update_meta", "delete", "search"])
    async def test_missing_gallery(self, backend: GalleryBackend, call: str) -> None:
        args: dict[str, tuple[Any, ...]] = {
            "schema": (), "add": (record(1, unit_vectors(1)[0]),), "get": (1,), "update_meta": (1, {}),
            "delete": (1,), "search": (Query(),)}
        with pytest.raises(GalleryNotFound):
            await getattr(backend, call)("nope", *args[call])

    # -- faces -------------------------------------------------------------------------------
    async def test_add_get_roundtrip(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", SCHEMA)
        vecs = unit_vectors(3)
        meta = {"age": 42, "camera": "cam-a", "tags": ["red", "male"]}
        added = await backend.add("g", record(UINT64_MAX, vecs[0], meta, gender="male", age=41.5))
        assert added.id == UINT64_MAX and added.meta == meta
        got = await backend.get("g", UINT64_MAX)
        assert got.id == UINT64_MAX and got.meta == meta and got.model == MODEL
        assert got.features == {"gender": "male", "age": 41.5}
        assert got.facen.dtype == np.float32 and np.array_equal(got.facen, vecs[0])
        await backend.add("g", record(0, vecs[1]))
        assert (await backend.get("g", 0)).meta == {}
        with pytest.raises(Conflict):
            await backend.add("g", record(0, vecs[2]))
        with pytest.raises(NotFound):
            await backend.get("g", 5)

    async def test_id_order_spans_uint64(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", {})
        ids = [0, 1, 2**63 - 1, 2**63, 2**63 + 1, UINT64_MAX - 1, UINT64_MAX]
        vecs = unit_vectors(len(ids))
        for i, fid in enumerate(reversed(ids)):
            await backend.add("g", record(fid, vecs[i]))
        res = await backend.search("g", Query(sort="id"))
        assert [h.record.id for h in res.hits] == ids
        res = await backend.search("g", Query(sort="-id"))
        assert [h.record.id for h in res.hits] == ids[::-1]
        res = await backend.search("g", Query(ids=(IdFilter("gte", 2**63),)))
        assert [h.record.id for h in res.hits] == ids[3:]

    @pytest.mark.parametrize("face_id", [-1, 2**64, 1.5, "7", True])
    async def test_bad_face_id(self, backend: GalleryBackend, face_id: Any) -> None:
        await backend.create_gallery("g", {})
        with pytest.raises(BadParam):
            await backend.add("g", record(face_id, unit_vectors(1)[0]))

    @pytest.mark.parametrize("key,value", [
        ("unknown", 1), ("age", "12"), ("age", 1.5), ("age", True), ("age", [1]), ("camera", 3),
        ("camera", ["cam-a"]), ("tags", "red"), ("tags", [1, 2]), ("tags", ["ok", None]),
    ])
    async def test_bad_meta(self, backend: GalleryBackend, key: str, value: Any) -> None:
        await backend.create_gallery("g", SCHEMA)
        await backend.add("g", record(1, unit_vectors(1)[0], {"age": 1}))
        with pytest.raises(BadParam) as err:
            await backend.add("g", record(2, unit_vectors(1, 2)[0], {key: value}))
        assert err.value.param == f"meta.{key}"
        with pytest.raises(BadParam) as err:
            await backend.update_meta("g", 1, {key: value})
        assert err.value.param == f"meta.{key}"
        assert (await backend.get("g", 1)).meta == {"age": 1}
        with pytest.raises(NotFound):
            await backend.get("g", 2)

    async def test_model_and_dimension_are_fixed_by_the_first_face(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", {})
        await backend.add("g", record(1, unit_vectors(1)[0]))
        other = FaceRecord(id=2, facen=unit_vectors(1)[0], model="another-model")
        with pytest.raises(BadParam) as err:
            await backend.add("g", other)
        assert err.value.param == "facen"
        with pytest.raises(BadParam) as err:
            await backend.add("g", record(3, unit_vectors(1, dim=64)[0]))
        assert err.value.param == "facen"
        assert [g.number for g in await backend.list_galleries()] == [1]

    async def test_update_meta(self, filled: tuple[GalleryBackend, list[FaceRecord]]) -> None:
        backend, recs = filled
        rec = recs[10]
        updated = await backend.update_meta("g", rec.id, {"age": 1000, "camera": None, "tags": ["zzz"]})
        want = dict(rec.meta, age=1000, tags=["zzz"])
        assert updated.meta == want and np.array_equal(updated.facen, rec.facen)
        got = await backend.get("g", rec.id)
        assert got.meta == want and got.features == rec.features and np.array_equal(got.facen, rec.facen)
        res = await backend.search("g", Query(meta=(MetaFilter("age", "gte", 1000),)))
        assert [h.record.id for h in res.hits] == [rec.id]
        res = await backend.search("g", Query(meta=(MetaFilter("tags", "subset", ("zzz",)),)))
        assert [h.record.id for h in res.hits] == [rec.id]
        res = await backend.search("g", Query(like=LookAlike(rec.facen, 0.9), sort="-confidence"))
        assert [h.record.id for h in res.hits] == [rec.id]
        with pytest.raises(NotFound):
            await backend.update_meta("g", 10**12, {"age": 1})

    async def test_delete(self, filled: tuple[GalleryBackend, list[FaceRecord]]) -> None:
        backend, recs = filled
        gone = {r.id for r in recs[::3]}
        await asyncio.gather(*(backend.delete("g", fid) for fid in gone))
        for fid in list(gone)[:5]:
            with pytest.raises(NotFound):
                await backend.get("g", fid)
        with pytest.raises(NotFound):
            await backend.delete("g", recs[0].id)
        left = [r for r in recs if r.id not in gone]
        hits = await collect(backend, "g", Query(limit=37))
        assert [h.record.id for h in hits] == sorted(r.id for r in left)
        res = await backend.search("g", Query(like=LookAlike(recs[3].facen, 0.0), sort="-confidence", limit=1000))
        assert {h.record.id for h in res.hits} == {r.id for r in left}
        assert [g.number for g in await backend.list_galleries()] == [len(left)]
        await backend.add("g", recs[0])  # an id is free again after a delete
        assert (await backend.get("g", recs[0].id)).meta == recs[0].meta

    async def test_concurrent_adds(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", {"n": "int"})
        vecs = unit_vectors(200)
        out = await asyncio.gather(*(backend.add("g", record(i, vecs[i], {"n": i})) for i in range(200)))
        assert [r.id for r in out] == list(range(200))
        hits = await collect(backend, "g", Query(limit=1000))
        assert [(h.record.id, h.record.meta["n"]) for h in hits] == [(i, i) for i in range(200)]

    # -- filters -----------------------------------------------------------------------------
    @pytest.mark.parametrize("ids,meta", FILTER_CASES)
    async def test_filters_match_reference(self, filled: tuple[GalleryBackend, list[FaceRecord]],
                                           ids: tuple[IdFilter, ...], meta: tuple[MetaFilter, ...]) -> None:
        backend, recs = filled
        q = Query(ids=ids, meta=meta, limit=1000)
        want = sorted(r.id for r in recs if ref_match(r, q))
        res = await backend.search("g", q)
        assert [h.record.id for h in res.hits] == want
        assert res.next_page is None
        for h in res.hits[:5]:
            rec = next(r for r in recs if r.id == h.record.id)
            assert h.record.meta == rec.meta and h.record.features == rec.features and h.confidence is None
        like = LookAlike(recs[0].facen, 0.0)
        res = await backend.search("g", Query(ids=ids, meta=meta, like=like, sort="-confidence", limit=1000))
        assert sorted(h.record.id for h in res.hits) == want

    @pytest.mark.parametrize("flt", [
        MetaFilter("nope", "lte", 1), MetaFilter("age", "subset", (1,)), MetaFilter("tags", "lte", "a"),
        MetaFilter("tags", "gte", "a"), MetaFilter("age", "lte", "10"), MetaFilter("camera", "oneof", (1,)),
        MetaFilter("age", "oneof", ("a",)), MetaFilter("tags", "subset", (1,)), MetaFilter("age", "like", 1),  # type: ignore[arg-type]
    ])
    async def test_bad_filter(self, filled: tuple[GalleryBackend, list[FaceRecord]], flt: MetaFilter) -> None:
        backend, _ = filled
        with pytest.raises(BadParam) as err:
            await backend.search("g", Query(meta=(flt,)))
        assert err.value.param == f"meta.{flt.field}"

    @pytest.mark.parametrize("query", [
        Query(limit=0), Query(limit=10_001), Query(sort="-confidence"), Query(sort="name"),  # type: ignore[arg-type]
        Query(after=Cursor("-id", 5)), Query(ids=(IdFilter("lte", -1),)),
    ])
    async def test_bad_query(self, filled: tuple[GalleryBackend, list[FaceRecord]], query: Query) -> None:
        backend, _ = filled
        with pytest.raises(BadParam):
            await backend.search("g", query)

    async def test_look_alike_of_another_dimension(self, filled: tuple[GalleryBackend, list[FaceRecord]]) -> None:
        backend, _ = filled
        with pytest.raises(BadParam) as err:
            await backend.search("g", Query(like=LookAlike(unit_vectors(1, dim=64)[0], 0.5), sort="-confidence"))
        assert err.value.param == "looks_like"

    # -- look-alike search -------------------------------------------------------------------
    @pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.75])
    async def test_look_alike_matches_reference(self, filled: tuple[GalleryBackend, list[FaceRecord]],
                                                threshold: float) -> None:
        backend, recs = filled
        probe = recs[42].facen * 0.95 + recs[43].facen * 0.31
        probe = (probe / np.linalg.norm(probe)).astype(np.float32)
        cos = np.array([float(np.dot(r.facen, probe)) for r in recs])
        ok = cos >= cosine_threshold(threshold) if threshold > 0 else np.ones(len(recs), bool)
        conf = similarity(cos.astype(np.float32))
        want = sorted((-float(conf[i]), recs[i].id) for i in np.flatnonzero(ok))
        res = await backend.search("g", Query(like=LookAlike(probe, threshold), sort="-confidence", limit=1000))
        got = [(h.record.id, h.confidence) for h in res.hits]
        assert [fid for fid, _ in got] == [fid for _, fid in want]
        assert np.allclose([c for _, c in got], [-c for c, _ in want], atol=1e-4)
        assert all(c is not None and c >= threshold - 1e-4 for _, c in got)
        assert got and got[0][0] == recs[42].id

    async def test_look_alike_top_k_and_self_match(self, filled: tuple[GalleryBackend, list[FaceRecord]]) -> None:
        backend, recs = filled
        for rec in recs[::50]:
            res = await backend.search("g", Query(like=LookAlike(rec.facen, 0.0), sort="-confidence", limit=5))
            assert res.hits[0].record.id == rec.id and res.hits[0].confidence > 0.99
            confs = [h.confidence for h in res.hits]
            assert confs == sorted(confs, reverse=True) and len(confs) == 5
            assert res.next_page is not None

    async def test_look_alike_sorted_by_id(self, filled: tuple[GalleryBackend, list[FaceRecord]]) -> None:
        backend, recs = filled
        like = LookAlike(recs[5].facen, 0.3)
        all_hits = await collect(backend, "g", Query(like=like, sort="-confidence", limit=1000))
        by_id = await collect(backend, "g", Query(like=like, sort="id", limit=7))
        assert [h.record.id for h in by_id] == sorted(h.record.id for h in all_hits)
        assert all(h.confidence is not None for h in by_id)
        by_id_desc = await collect(backend, "g", Query(like=like, sort="-id", limit=7))
        assert [h.record.id for h in by_id_desc] == sorted((h.record.id for h in all_hits), reverse=True)

    async def test_empty_gallery_search(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", SCHEMA)
        res = await backend.search("g", Query(like=LookAlike(unit_vectors(1)[0], 0.0), sort="-confidence"))
        assert res == SearchResult(hits=[], next_page=None)
        assert (await backend.search("g", Query())).hits == []

    # -- paging ------------------------------------------------------------------------------
    @pytest.mark.parametrize("sort,limit", [("id", 1), ("id", 17), ("-id", 23), ("-confidence", 1), ("-confidence", 29)])
    async def test_paging_covers_everything_once(self, filled: tuple[GalleryBackend, list[FaceRecord]],
                                                 sort: str, limit: int) -> None:
        backend, recs = filled
        like = LookAlike(recs[1].facen, 0.0) if sort == "-confidence" else None
        meta = (MetaFilter("age", "gte", 10),)
        full = (await backend.search("g", Query(meta=meta, like=like, sort=sort, limit=1000))).hits  # type: ignore[arg-type]
        paged = await collect(backend, "g", Query(meta=meta, like=like, sort=sort, limit=limit))  # type: ignore[arg-type]
        assert [h.record.id for h in paged] == [h.record.id for h in full]
        assert len({h.record.id for h in paged}) == len(paged) == sum(ref_match(r, Query(meta=meta)) for r in recs)

    async def test_paging_through_confidence_ties(self, backend: GalleryBackend) -> None:
        await backend.create_gallery("g", {})
        vecs = unit_vectors(3)
        ids = [9, 3, 12, 5, 7]
        for fid in ids:  # the same vector five times: equal confidences, ordered by id
            await backend.add("g", record(fid, vecs[0]))
        await backend.add("g", record(100, vecs[1]))
        hits = await collect(backend, "g", Query(like=LookAlike(vecs[0], 0.0), sort="-confidence", limit=2))
        assert [h.record.id for h in hits] == sorted(ids) + [100]

    @pytest.mark.parametrize("sort", ["id", "-id", "-confidence"])
    async def test_paging_under_concurrent_inserts(self, filled: tuple[GalleryBackend, list[FaceRecord]],
                                                   sort: str) -> None:
        backend, recs = filled
        probe = recs[7].facen
        like = LookAlike(probe, 0.0) if sort == "-confidence" else None
        q = Query(like=like, sort=sort, limit=25)  # type: ignore[arg-type]
        seen: list[Any] = []
        extra = unit_vectors(60, seed=99)
        new_id = 10**15
        while True:
            res = await backend.search("g", q)
            seen.extend(res.hits)
            if res.next_page is None:
                break
            for _ in range(3):  # before the next page: new faces on both sides of the cursor
                vec = extra[(new_id - 10**15) % 60]
                if new_id % 2:
                    vec = probe  # as similar as can be: sorts before any cursor
                await backend.add("g", record(new_id if new_id % 3 else new_id % 997 + 250, vec))
                new_id += 1
            q = Query(like=like, sort=sort, limit=25, after=res.next_page)
        ids = [h.record.id for h in seen]
        assert len(ids) == len(set(ids)), "a face was returned twice"
        assert {r.id for r in recs} <= set(ids), "a face present all along was skipped"
        if sort == "-confidence":
            keys = [(-h.confidence, h.record.id) for h in seen]
        else:
            keys = [h.record.id if sort == "id" else -h.record.id for h in seen]
        assert keys == sorted(keys)
