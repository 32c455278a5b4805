"""The Milvus gallery backend: the same galleries as the embedded store, on a Milvus server or
cluster (or the embedded milvus-lite, for tests and demos).

Layout (``prefix`` from config, ``sfapi_`` by default):

* ``<prefix>galleries``: the catalog, one row per gallery: its name, meta schema, face collection,
  the facen model and dimension fixed by its first face, and the layout version.
* one collection per gallery, created at its first face (Milvus fixes the vector dimension at
  creation): ``pk`` (the face id in 16 hex digits), ``facen`` (FLOAT_VECTOR, inner-product metric:
  facens are unit vectors, so the inner product is the cosine), one typed field per meta key and
  the list of keys a face has (no nullable fields: servers from 2.3 on; sfapi.gallery.milvus_expr),
  and ``features`` (JSON text). Its name carries a random suffix, so a gallery dropped and created
  again never meets its old collection.

Writes to one gallery are serialized in this process (Milvus has no unique keys: an add checks
that its id is free, then inserts); concurrent adds are grouped into one existence check and one
insert. Reads run concurrently. Every pymilvus call is blocking and runs in the store's thread
pool, never on the event loop; Milvus errors become STORAGE_ERROR with the reason.

Several sfapi instances may share one Milvus: each caches the catalog and reloads a gallery's row
when it meets an unknown name or a dropped collection. Face-id uniqueness is checked per instance:
two instances adding the same new id at the same instant both succeed and Milvus keeps one row, so
ids should come from one generator (facerouter's ``ctx.idgen`` is one).
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from facestack.vision.engines.similarity import cosine_threshold
from sfapi.errors import BadParam, Conflict, GalleryNotFound, NotFound, StorageError
from sfapi.gallery import milvus_search
from sfapi.gallery.backend import GalleryBackend
from sfapi.gallery.meta import (
    check_query,
    dumps,
    validate_face_id,
    validate_facen,
    validate_meta,
    validate_name,
    validate_schema,
)
from sfapi.gallery.milvus_conn import MilvusConn, MissingCollection, NotLoaded
from sfapi.gallery.milvus_expr import LAYOUT, NOTHING, PK, filter_expr, from_pk, to_pk
from sfapi.gallery.milvus_rows import check_limits, meta_columns, meta_of, row_fields, to_record, to_row
from sfapi.gallery.types import Cursor, FaceRecord, GalleryInfo, Hit, MetaValue, Query, Schema, SearchResult

log = logging.getLogger(__name__)
T = TypeVar("T")

#: rows per Milvus insert (a gRPC message stays well under its size limit)
_INSERT_CHUNK = 2000


@dataclass
class _Gallery:
    name: str
    schema: Schema
    collection: str
    model: str | None = None
    dim: int | None = None
    #: the collection layout (sfapi.gallery.milvus_expr.LAYOUT; None: an earlier sfapi's)
    layout: int | None = LAYOUT
    #: loaded by this instance (a restarted milvus-lite, or an operator, may leave it released)
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list["_Add"] = field(default_factory=list)

    def info_json(self) -> str:
        return dumps({"schema": self.schema, "collection": self.collection, "model": self.model, "dim": self.dim,
                      "layout": self.layout})


@dataclass
class _Add:
    """One caller's faces (all stored or none) and the future its caller awaits."""

    rows: list[dict[str, Any]]
    records: list[FaceRecord]
    model: str
    dim: int
    future: asyncio.Future


class MilvusStore(GalleryBackend):
    """Galleries in Milvus collections (see the module docstring).

    ``uri``, ``token``, ``db_name``: where Milvus is (a ``*.db`` path runs milvus-lite).
    ``index_type`` / ``index_params``: the vector index of new face collections (FLAT = exact);
    ``search_params``: per-search index parameters (HNSW ``ef``, IVF ``nprobe``).
    ``consistency``: the level of face reads (sfapi.gallery.milvus_conn.MilvusConn); the catalog
    is always read Strong (galleries another instance just created).
    """

    def __init__(self, uri: str, *, token: str = "", db_name: str = "", prefix: str = "sfapi_",
                 timeout_s: float = 10.0, consistency: str = "Strong", window: int = 16384,
                 index_type: str = "FLAT", index_params: dict[str, Any] | None = None,
                 search_params: dict[str, Any] | None = None, workers: int = 8) -> None:
        self.conn = MilvusConn(uri, token=token, db_name=db_name, timeout_s=timeout_s, consistency=consistency)
        self.prefix = prefix
        self.catalog = f"{prefix}galleries"
        self.consistency = consistency
        self.window = window
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._galleries: dict[str, _Gallery] = {}
        self._catalog_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, create the catalog if missing and load it."""
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="gallery-milvus")
        try:
            rows = await self._run(self._open_sync)
        except BaseException:
            await self.close()
            raise
        for row in rows:
            self._galleries[row["name"]] = self._from_row(row)
        log.info("Milvus gallery store at %s: %d galleries", self.conn.uri, len(self._galleries))

    def _open_sync(self) -> list[dict[str, Any]]:
        self.conn.connect()
        if not self.conn.call("list collections", "has_collection", self.catalog):
            self.conn.create_catalog(self.catalog, self.consistency)
        else:
            self.conn.call("load the catalog", "load_collection", self.catalog)
        return self.conn.call("read the catalog", "query", self.catalog, filter="",
                              output_fields=["name", "info"], limit=self.window, consistency_level="Strong")

    async def close(self) -> None:
        """Release the connection; every acknowledged write is already in Milvus."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        await asyncio.get_running_loop().run_in_executor(pool, self.conn.close)
        pool.shutdown(wait=True)
        self._galleries.clear()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise StorageError("the Milvus gallery store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- catalog -----------------------------------------------------------------------------
    @staticmethod
    def _from_row(row: dict[str, Any]) -> _Gallery:
        info = json.loads(row["info"])
        return _Gallery(row["name"], info["schema"], info["collection"], info.get("model"), info.get("dim"),
                        info.get("layout"))

    def _read_row(self, name: str) -> dict[str, Any] | None:
        rows = self.conn.call("read the catalog", "get", self.catalog, ids=[name], output_fields=["name", "info"],
                              consistency_level="Strong")  # other instances' galleries
        return rows[0] if rows else None

    async def _gallery(self, name: str) -> _Gallery:
        """The gallery (see :meth:`_lookup`), refused when its collection has an earlier layout."""
        g = await self._lookup(name)
        if g.layout != LAYOUT:
            raise StorageError(f"gallery {name!r} was stored by an earlier sfapi version (INT64 keys, nullable "
                               "meta fields) that this version does not read: move it with that version's "
                               "'sfapi gallery migrate' to the embedded store, then back with this one")
        return g

    async def _lookup(self, name: str) -> _Gallery:
        """The cached gallery, or its catalog row (another instance may have created it)."""
        g = self._galleries.get(name)
        if g is not None:
            return g
        try:
            validate_name(name)
        except BadParam:
            raise GalleryNotFound(f"gallery {name!r} does not exist", gallery=name) from None
        row = await self._run(self._read_row, name)
        if row is None:
            raise GalleryNotFound(f"gallery {name!r} does not exist", gallery=name)
        return self._galleries.setdefault(name, self._from_row(row))

    def _gone(self, g: _Gallery) -> GalleryNotFound:
        """The gallery's collection was dropped (by another instance): forget it."""
        if self._galleries.get(g.name) is g:
            del self._galleries[g.name]
        return GalleryNotFound(f"gallery {g.name!r} does not exist", gallery=g.name)

    async def list_galleries(self) -> list[GalleryInfo]:
        rows = await self._run(lambda: self.conn.call("read the catalog", "query", self.catalog, filter="",
                                                      output_fields=["name", "info"], limit=self.window,
                                                      consistency_level="Strong"))
        out = []
        for row in sorted(rows, key=lambda r: r["name"]):
            g = self._galleries.get(row["name"])
            if g is None or json.loads(row["info"])["collection"] != g.collection:
                g = self._galleries[row["name"]] = self._from_row(row)
            out.append(GalleryInfo(g.name, await self._count(g)))
        return out

    async def _count(self, g: _Gallery) -> int:
        try:
            await self._ready(g)
            if g.dim is None:
                return 0
            rows = await self._run(lambda: self.conn.call("count", "query", g.collection, filter="",
                                                          output_fields=["count(*)"]))
        except (MissingCollection, GalleryNotFound):
            return 0
        return int(rows[0]["count(*)"]) if rows else 0

    async def create_gallery(self, name: str, schema: Schema) -> GalleryInfo:
        validate_name(name)
        schema = validate_schema(schema)
        async with self._catalog_lock:
            if name in self._galleries or await self._run(self._read_row, name) is not None:
                raise Conflict(f"gallery {name!r} already exists", gallery=name)
            safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
            g = _Gallery(name, schema, f"{self.prefix}g_{safe}_{uuid.uuid4().hex[:12]}")
            row = self.conn.catalog_row(name, g.info_json())
            await self._run(lambda: self.conn.call("create gallery", "insert", self.catalog, [row]))
            self._galleries[name] = g
        return GalleryInfo(name, 0)

    async def drop_gallery(self, name: str) -> None:
        g = await self._lookup(name)  # galleries of an earlier layout can be dropped too
        async with g.lock:
            await self._run(lambda: self.conn.call("drop gallery", "delete", self.catalog, ids=[name]))
            if self._galleries.get(name) is g:
                del self._galleries[name]
            try:
                await self._run(lambda: self.conn.call("drop gallery", "drop_collection", g.collection))
            except (MissingCollection, StorageError) as exc:  # the gallery is gone; an orphan is harmless
                log.warning("gallery %s: dropping collection %s failed: %s", name, g.collection, exc)

    async def schema(self, gallery: str) -> Schema:
        return dict((await self._gallery(gallery)).schema)

    # -- faces: writes ---------------------------------------------------------------------------
    async def add(self, gallery: str, record: FaceRecord) -> FaceRecord:
        """Store one face; durable and searchable when this returns."""
        return (await self.add_many(gallery, [record]))[0]

    async def add_many(self, gallery: str, records: Sequence[FaceRecord]) -> list[FaceRecord]:
        """Store several faces, all or none (Conflict if an id is taken or repeated). Concurrent
        calls on one gallery share one existence check and one insert."""
        g = await self._gallery(gallery)
        records = list(records)
        if not records:
            return []
        if len(records) > 64:  # encoding thousands of vectors is CPU work: off the loop
            prepared = await self._run(lambda: [to_row(g.schema, r, g.dim) for r in records])
        else:
            prepared = [to_row(g.schema, r, g.dim) for r in records]
        model = records[0].model
        if any(r.model != model for r in records):
            raise BadParam("facen", model, "faces added together must be of one model")
        dims = {rec.facen.size for _, rec in prepared}
        if len(dims) != 1:
            raise BadParam("facen", sorted(dims), "faces added together must be of one dimension")
        item = _Add([row for row, _ in prepared], [rec for _, rec in prepared], model, dims.pop(),
                    asyncio.get_running_loop().create_future())
        g.pending.append(item)
        async with g.lock:
            if not item.future.done():
                batch, g.pending = g.pending, []
                await self._write_adds(g, batch)
        return item.future.result()

    async def _write_adds(self, g: _Gallery, batch: list[_Add]) -> None:
        try:
            if self._galleries.get(g.name) is not g:
                raise GalleryNotFound(f"gallery {g.name!r} does not exist", gallery=g.name)
            await self._check_model(g, batch)
            batch = [a for a in batch if not a.future.done()]
            taken = await self._taken(g, [row[PK] for a in batch for row in a.rows])
            seen: set[str] = set()
            ok = []
            for a in batch:
                pks = [row[PK] for row in a.rows]
                if len(set(pks)) != len(pks) or seen.intersection(pks) or taken.intersection(pks):
                    a.future.set_exception(_conflict(g.name, a))
                    continue
                seen.update(pks)
                ok.append(a)
            await self._insert(g, [row for a in ok for row in a.rows])
            for a in ok:
                a.future.set_result([FaceRecord(r.id, r.facen, r.meta, r.features, g.model or "") for r in a.records])
        except MissingCollection:
            _fail(batch, self._gone(g))
        except asyncio.CancelledError:  # the leading caller was cancelled: nobody else waits forever
            _fail(batch, StorageError(f"adding to gallery {g.name!r} was interrupted"))
            raise
        except Exception as exc:
            _fail(batch, exc)

    async def _insert(self, g: _Gallery, rows: list[dict[str, Any]]) -> None:
        """Insert in chunks; when a later chunk fails, the earlier ones are deleted again (best
        effort) so that a bulk add stays all or none."""
        done: list[str] = []
        try:
            for i in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[i:i + _INSERT_CHUNK]
                await self._run(lambda c=chunk: self.conn.call("add", "insert", g.collection, c))
                done += [row[PK] for row in chunk]
        except BaseException:
            if done:
                try:
                    await self._run(lambda: self.conn.call("add (undo)", "delete", g.collection, ids=done))
                except Exception as exc:
                    log.error("gallery %s: %d faces of a failed bulk add could not be removed: %s",
                              g.name, len(done), exc)
            raise

    async def _ready(self, g: _Gallery) -> None:
        """Before touching a gallery's collection: a gallery without faces here may have got its
        first face through another instance; a collection not yet loaded by this instance is
        loaded (a no-op when Milvus holds it loaded already)."""
        if g.dim is None:
            row = await self._run(self._read_row, g.name)
            if row is None:
                raise self._gone(g)
            fresh = self._from_row(row)
            if fresh.collection != g.collection:
                raise self._gone(g)
            g.model, g.dim = fresh.model, fresh.dim
        if g.dim is not None and not g.loaded:
            await self._call_g(g, "load", "load_collection", g.collection)
            g.loaded = True

    async def _check_model(self, g: _Gallery, batch: list[_Add]) -> None:
        """The first face fixes the gallery's model and dimension (and creates its collection)."""
        await self._ready(g)
        for a in batch:
            model, dim = (a.model, a.dim) if g.dim is None else (g.model, g.dim)
            if a.model != model:
                a.future.set_exception(BadParam("facen", a.model, f"gallery {g.name!r} holds facens of model "
                                                f"{model!r}, not {a.model!r}"))
            elif a.dim != dim:
                a.future.set_exception(BadParam("facen", f"dimension {a.dim}",
                                                f"gallery {g.name!r} holds facens of dimension {dim}"))
            elif g.dim is None:
                await self._run(self._create_collection, g, a.model, a.dim)

    def _create_collection(self, g: _Gallery, model: str, dim: int) -> None:
        try:
            self.conn.create_faces_collection(g.collection, g.schema, dim, self.index_type, self.index_params,
                                              self.consistency)
        except StorageError:
            if not self.conn.call("create gallery", "has_collection", g.collection):
                raise
        g.model, g.dim, g.loaded = model, dim, True
        self.conn.call("update the catalog", "upsert", self.catalog, [self.conn.catalog_row(g.name, g.info_json())])
        log.info("gallery %s: collection %s created (model %s, dimension %d, index %s)",
                 g.name, g.collection, model, dim, self.index_type)

    async def _taken(self, g: _Gallery, pks: list[str]) -> set[str]:
        if g.dim is None or not pks:
            return set()
        rows = await self._run(lambda: self.conn.call("add", "get", g.collection, ids=pks, output_fields=[PK]))
        return {str(r[PK]) for r in rows}

    async def update_meta(self, gallery: str, face_id: int, meta: dict[str, MetaValue | None]) -> FaceRecord:
        """Set the given keys (None leaves a key as it is); the vector and features are kept."""
        g = await self._gallery(gallery)
        face_id = validate_face_id(face_id)
        changes = validate_meta(g.schema, meta, allow_none=True)
        for key, value in changes.items():
            if value is not None:
                check_limits(key, value)
        async with g.lock:
            row = await self._fetch_row(g, face_id)
            current = meta_of(g.schema, row)
            current.update({k: v for k, v in changes.items() if v is not None})
            row.update(meta_columns(g.schema, current))
            await self._call_g(g, "update", "upsert", g.collection, [row])
        return to_record(g.schema, g.model, row)

    async def delete(self, gallery: str, face_id: int) -> None:
        g = await self._gallery(gallery)
        face_id = validate_face_id(face_id)
        async with g.lock:
            await self._fetch_row(g, face_id, fields=[PK])
            await self._call_g(g, "delete", "delete", g.collection, ids=[to_pk(face_id)])

    async def flush(self, gallery: str) -> None:
        """Seal the gallery's newly written segments so its vector index covers them. A Milvus
        server seals on its own as segments fill; milvus-lite searches unsealed rows by brute force
        until a flush. Durability does not depend on it (Milvus logs every write first)."""
        g = await self._gallery(gallery)
        if g.dim is not None:
            await self._call_g(g, "flush", "flush", g.collection)

    # -- faces: reads -----------------------------------------------------------------------------
    async def get(self, gallery: str, face_id: int) -> FaceRecord:
        g = await self._gallery(gallery)
        face_id = validate_face_id(face_id)
        return to_record(g.schema, g.model, await self._fetch_row(g, face_id))

    async def _fetch_row(self, g: _Gallery, face_id: int, fields: list[str] | None = None) -> dict[str, Any]:
        await self._ready(g)
        rows = [] if g.dim is None else await self._call_g(g, "get", "get", g.collection, ids=[to_pk(face_id)],
                                                            output_fields=fields or self._fields(g))
        if not rows:
            raise NotFound(f"face {face_id} is not in gallery {g.name!r}", gallery=g.name, id=face_id)
        return dict(rows[0])

    def _fields(self, g: _Gallery) -> list[str]:
        return row_fields(g.schema)

    async def _call_g(self, g: _Gallery, op: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._on_collection(g, lambda: self.conn.call(op, method, *args, **kwargs))

    async def _on_collection(self, g: _Gallery, fn: Callable[[], T]) -> T:
        """``fn()`` (blocking, on the pool) against the gallery's collection: a dropped collection is
        GALLERY_NOT_FOUND; one not loaded (a restarted server, an operator's release) is loaded and
        ``fn`` runs once more."""
        try:
            try:
                return await self._run(fn)
            except NotLoaded as exc:
                log.warning("gallery %s: collection %s is not loaded (%s): loading it", g.name, g.collection,
                            exc.reason)
                await self._run(lambda: self.conn.call("load", "load_collection", g.collection))
                return await self._run(fn)
        except MissingCollection:
            raise self._gone(g) from None

    async def search(self, gallery: str, query: Query) -> SearchResult:
        """Filtered listing or 1:N search with the embedded store's order and keyset paging.
        Milvus answers a search whole or fails it (its replicas cover failed query nodes), so
        ``ignore_errors`` never gives a partial answer here: a failure is STORAGE_ERROR."""
        g = await self._gallery(gallery)
        check_query(g.schema, query)
        await self._ready(g)
        vec = None
        like = query.like
        if like is not None:
            try:
                vec = validate_facen(like.vector, g.dim)
            except BadParam as exc:
                raise BadParam("looks_like", exc.value, exc.reason) from None
            if like.model and g.model and like.model != g.model:
                raise BadParam("looks_like", like.model, f"gallery {g.name!r} holds facens of model {g.model!r}")
        expr = filter_expr(g.schema, query.ids, query.meta)
        if g.dim is None or expr is NOTHING:
            return SearchResult(hits=[], next_page=None)
        threshold = float(like.threshold) if like is not None else 0.0
        spec = milvus_search.PageSpec(
            collection=g.collection, expr=expr, vec=vec,
            cos_min=cosine_threshold(threshold) if vec is not None and threshold > 0 else None,
            sort=query.sort, k=query.limit + 1, after=query.after, window=self.window,
            index_type=self.index_type, search_params=self.search_params,
            exact_range=not self.conn.is_lite and self.index_type == "FLAT",  # see milvus_search
            row_fields=tuple(self._fields(g)))
        ids, confs, found = await self._on_collection(g, lambda: milvus_search.find_page(self.conn, spec))
        page = ids[: query.limit]
        if found is not None:  # the search brought the rows
            by_id = found
        else:
            rows = await self._call_g(g, "search", "get", g.collection, ids=[to_pk(i) for i in page],
                                      output_fields=self._fields(g)) if page else []
            by_id = {from_pk(r[PK]): r for r in rows}
        hits = []
        for i, face_id in enumerate(page):
            row = by_id.get(face_id)
            if row is not None:  # deleted since the page was chosen: left out
                hits.append(Hit(to_record(g.schema, g.model, row), None if confs is None else float(confs[i])))
        next_page = None
        if len(ids) > query.limit and hits:
            last = hits[-1]
            next_page = Cursor(query.sort, last.record.id, last.confidence)
        return SearchResult(hits=hits, next_page=next_page)


def _conflict(gallery: str, a: _Add) -> Conflict:
    if len(a.records) == 1:
        return Conflict(f"face {a.records[0].id} already exists in gallery {gallery!r}", gallery=gallery,
                        id=a.records[0].id)
    return Conflict(f"a face id is taken in gallery {gallery!r} or repeated in the batch", gallery=gallery)


def _fail(batch: list[_Add], exc: Exception) -> None:
    for a in batch:
        if not a.future.done():
            a.future.set_exception(exc)
