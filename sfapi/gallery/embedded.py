"""The embedded gallery store, sfapi's default backend: SQLite store of record + in-memory index.

Every write goes through the SQLite writer thread (sfapi.gallery.sqlite_store): validated and
written there inside a group transaction, committed, then applied to the gallery's in-memory
:class:`~sfapi.gallery.index.GalleryIndex`, and only then acknowledged. Reads (get, search) are
served from the index in a thread pool; a search may split its scan into ``shards`` row blocks
scored in parallel threads. Concurrent look-alike searches of a gallery are batched
(sfapi.gallery.batch): one pass over the matrix serves them all. The event loop only awaits futures.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from sfapi.errors import BadParam, GalleryNotFound, NotFound, StorageError
from sfapi.gallery import scan
from sfapi.gallery.batch import SearchBatcher
from sfapi.gallery import sqlite_store as sql
from sfapi.gallery.backend import GalleryBackend
from sfapi.gallery.index import GalleryIndex, Snapshot, doc_text, parse_doc
from sfapi.gallery.meta import (
    check_query,
    dumps,
    validate_face_id,
    validate_facen,
    validate_meta,
    validate_name,
    validate_schema,
)
from sfapi.gallery.types import (
    Cursor,
    FaceRecord,
    GalleryInfo,
    Hit,
    MetaValue,
    Query,
    Schema,
    SearchResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: default parts per search. Measured on 2 cores (1M x 128, interleaved runs): a full scan is one
#: BLAS call that BLAS threads itself (scan.SPLIT_FULL_SCAN); a filtered (gathered) scan took
#: 13.2 ms median in 1 part and 14.1 ms in 2, so one part it is. Raise it on machines with more cores.
DEFAULT_SHARDS = 1
#: how long the first look-alike search of a batch waits for others (searches that arrive while a
#: batch runs always wait for it and form the next one)
DEFAULT_BATCH_WINDOW_S = 0.0
#: most look-alike searches scored in one pass
MAX_BATCH = 64


@dataclass
class _Gallery:
    gid: int
    name: str
    schema: Schema
    index: GalleryIndex
    model: str | None
    batcher: SearchBatcher[Query, SearchResult] | None = None


class EmbeddedStore(GalleryBackend):
    """Galleries in one SQLite file, searched in memory.

    ``path`` is the SQLite file (created if missing). ``shards``: row blocks a search is split into
    and scored in parallel (default :data:`DEFAULT_SHARDS`). ``synchronous``: SQLite's
    ``PRAGMA synchronous`` (``FULL`` makes every acknowledged write survive a power loss; ``NORMAL``
    survives a process crash). ``batch_window_s``: how long a look-alike search waits for others to
    share its scan (default :data:`DEFAULT_BATCH_WINDOW_S`: only those submitted in the same event
    loop iteration or while a scan of the gallery runs).
    """

    def __init__(self, path: Path, *, shards: int | None = None, synchronous: str = "FULL",
                 batch_window_s: float = DEFAULT_BATCH_WINDOW_S) -> None:
        if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
            raise BadParam("shards", shards, "shards is a positive integer")
        self.path = Path(path)
        self.shards = shards or DEFAULT_SHARDS
        if isinstance(batch_window_s, bool) or not isinstance(batch_window_s, (int, float)) or not 0 <= batch_window_s <= 1:
            raise BadParam("batch_window_s", batch_window_s, "batch_window_s is a number of seconds in 0..1")
        self.batch_window_s = float(batch_window_s)
        self._sql = sql.SqliteStore(self.path, synchronous)
        self._galleries: dict[str, _Gallery] = {}
        self._schemas: dict[int, Schema] = {}
        self._readers: ThreadPoolExecutor | None = None
        self._parts: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the SQLite file and load every gallery into memory."""
        self._readers = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="gallery-read")
        if self.shards > 1:
            self._parts = ThreadPoolExecutor(max_workers=self.shards, thread_name_prefix="gallery-part")
        await self._run(self._load)

    def _load(self) -> None:
        for row in self._sql.open():
            schema = json.loads(row.schema_json)
            index = GalleryIndex(schema, row.dim)
            for chunk in self._sql.load_faces(row.gid):
                ids = [sql.from_db_id(r[0]) for r in chunk]
                vecs = np.frombuffer(b"".join(r[1] for r in chunk), np.float32).reshape(len(chunk), -1)
                metas = [json.loads(r[2]) for r in chunk]
                index.append(ids, vecs, metas, [doc_text(r[2], r[3]) for r in chunk])
            self._galleries[row.name] = _Gallery(row.gid, row.name, schema, index, row.model)
            self._schemas[row.gid] = schema
            log.info("gallery %s: loaded %d faces", row.name, len(index))
        self._sql.start()

    async def close(self) -> None:
        """Finish every queued write (durable when this returns) and release everything."""
        if self._readers is None:
            return
        for g in list(self._galleries.values()):
            if g.batcher is not None:
                await g.batcher.drain()
        await self._run(self._sql.close)
        for pool in (self._readers, self._parts):
            if pool is not None:
                pool.shutdown(wait=True)
        self._readers = self._parts = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._readers is None:
            raise StorageError("the gallery store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    async def _write(self, work: Callable[[sqlite3.Connection], Any], after: Callable[[Any], T]) -> T:
        return await asyncio.wrap_future(self._sql.submit(work, after))

    def _gallery(self, name: str) -> _Gallery:
        g = self._galleries.get(name)
        if g is None:
            raise GalleryNotFound(f"gallery {name!r} does not exist", gallery=name)
        return g

    def _schema_of(self, row: sql.GalleryRow) -> Schema:
        schema = self._schemas.get(row.gid)
        return schema if schema is not None else json.loads(row.schema_json)

    # -- galleries ---------------------------------------------------------------------------
    async def list_galleries(self) -> list[GalleryInfo]:
        return [GalleryInfo(g.name, len(g.index)) for g in list(self._galleries.values())]

    async def create_gallery(self, name: str, schema: Schema) -> GalleryInfo:
        validate_name(name)
        schema = validate_schema(schema)

        def after(row: sql.GalleryRow) -> GalleryInfo:
            self._schemas[row.gid] = schema
            self._galleries[name] = _Gallery(row.gid, name, schema, GalleryIndex(schema), None)
            return GalleryInfo(name, 0)

        return await self._write(lambda conn: sql.create_gallery(conn, name, dumps(schema)), after)

    async def drop_gallery(self, name: str) -> None:
        def after(row: sql.GalleryRow) -> None:
            g = self._galleries.get(name)
            if g is not None and g.gid == row.gid:
                del self._galleries[name]
            self._schemas.pop(row.gid, None)

        await self._write(lambda conn: sql.drop_gallery(conn, name), after)

    async def schema(self, gallery: str) -> Schema:
        return dict(self._gallery(gallery).schema)

    # -- faces -------------------------------------------------------------------------------
    async def add(self, gallery: str, record: FaceRecord) -> FaceRecord:
        """Store one face; durable and searchable when this returns."""
        return (await self.add_many(gallery, [record]))[0]

    async def add_many(self, gallery: str, records: Sequence[FaceRecord]) -> list[FaceRecord]:
        """Bulk path: store several faces in one write, all or none (Conflict if any id is taken
        or repeated). Durable and searchable when this returns."""
        self._gallery(gallery)
        records = list(records)
        if not records:
            return []

        def work(conn: sqlite3.Connection) -> tuple[sql.GalleryRow, list[Any]]:
            row = sql.gallery_row(conn, gallery)
            schema = self._schema_of(row)
            model = records[0].model
            prepared = [_prepare(schema, r, row.dim) for r in records]
            if any(r.model != model for r in records):
                raise BadParam("facen", model, "faces added together must be of one model")
            dims = {p[1].size for p in prepared}
            if len(dims) != 1:
                raise BadParam("facen", sorted(dims), "faces added together must be of one dimension")
            rows = [(fid, vec.tobytes(), mj, fj) for fid, vec, _, mj, fj in prepared]
            return sql.add_faces(conn, gallery, model, dims.pop(), rows), prepared

        def after(result: tuple[sql.GalleryRow, list[Any]]) -> list[FaceRecord]:
            row, prepared = result
            g = self._galleries.get(gallery)
            out = []
            if g is None or g.gid != row.gid:  # dropped in the same group: nothing to show
                return [FaceRecord(fid, vec, meta, json.loads(fj), row.model or "") for fid, vec, meta, _, fj in prepared]
            g.model = row.model
            g.index.append([p[0] for p in prepared], np.stack([p[1] for p in prepared]),
                           [p[2] for p in prepared], [doc_text(p[3], p[4]) for p in prepared])
            for fid, vec, meta, _, fj in prepared:
                out.append(FaceRecord(fid, vec, meta, json.loads(fj), row.model or ""))
            return out

        return await self._write(work, after)

    async def get(self, gallery: str, face_id: int) -> FaceRecord:
        g = self._gallery(gallery)
        face_id = validate_face_id(face_id)
        found = await self._run(g.index.get, face_id)
        if found is None:
            raise NotFound(f"face {face_id} is not in gallery {gallery!r}", gallery=gallery, id=face_id)
        vec, doc = found
        meta, features = parse_doc(doc)
        return FaceRecord(face_id, vec, meta, features, g.model or "")

    async def update_meta(self, gallery: str, face_id: int, meta: dict[str, MetaValue | None]) -> FaceRecord:
        """Set the given keys (None leaves a key as it is); the vector and features are kept."""
        self._gallery(gallery)
        face_id = validate_face_id(face_id)

        def work(conn: sqlite3.Connection) -> tuple[sql.GalleryRow, bytes, dict[str, Any], str, str]:
            row = sql.gallery_row(conn, gallery)
            changes = validate_meta(self._schema_of(row), meta, allow_none=True)
            facen, meta_json, features_json = sql.read_face(conn, row.gid, gallery, face_id)
            current = json.loads(meta_json)
            current.update({k: v for k, v in changes.items() if v is not None})
            new_json = dumps(current)
            sql.set_meta(conn, row.gid, face_id, new_json)
            return row, facen, current, new_json, features_json

        def after(result: tuple[sql.GalleryRow, bytes, dict[str, Any], str, str]) -> FaceRecord:
            row, facen, current, new_json, features_json = result
            g = self._galleries.get(gallery)
            if g is not None and g.gid == row.gid:
                g.index.replace(face_id, current, doc_text(new_json, features_json))
            vec = np.frombuffer(facen, np.float32).copy()
            return FaceRecord(face_id, vec, current, json.loads(features_json), row.model or "")

        return await self._write(work, after)

    async def delete(self, gallery: str, face_id: int) -> None:
        self._gallery(gallery)
        face_id = validate_face_id(face_id)

        def work(conn: sqlite3.Connection) -> sql.GalleryRow:
            row = sql.gallery_row(conn, gallery)
            sql.delete_face(conn, row.gid, gallery, face_id)
            return row

        def after(row: sql.GalleryRow) -> None:
            g = self._galleries.get(gallery)
            if g is not None and g.gid == row.gid:
                g.index.remove(face_id)

        await self._write(work, after)

    # -- search ------------------------------------------------------------------------------
    async def search(self, gallery: str, query: Query) -> SearchResult:
        """Filtered listing or 1:N search with keyset paging (see sfapi.gallery.scan). Look-alike
        searches are batched with concurrent ones of the same gallery."""
        g = self._gallery(gallery)
        check_query(g.schema, query)
        if query.like is None:
            return await self._run(self._search_sync, g, query)
        if g.batcher is None:
            g.batcher = SearchBatcher(lambda queries: self._run(self._search_many_sync, g, queries),
                                      window_s=self.batch_window_s, max_batch=MAX_BATCH)
        return await g.batcher.submit(query)

    def _search_sync(self, g: _Gallery, query: Query) -> SearchResult:
        out = self._search_many_sync(g, [query])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def _search_many_sync(self, g: _Gallery, queries: Sequence[Query]) -> list[SearchResult | BaseException]:
        """Queries over one snapshot of the gallery with shared scans; a query's error is its own."""
        out: list[SearchResult | BaseException | None] = [None] * len(queries)
        todo, plans = [], []
        for i, query in enumerate(queries):
            try:
                plans.append(self._plan(g, query))
                todo.append(i)
            except BadParam as exc:
                out[i] = exc
        if not todo:
            return [r for r in out if r is not None]
        snaps = g.index.snapshots([(queries[i].ids, queries[i].meta) for i in todo])
        found = scan.run_many(snaps, plans, self.shards, self._map_parts if self._parts else None)
        for i, snap, (rows, conf) in zip(todo, snaps, found):
            out[i] = self._result(g, snap, queries[i], rows, conf)
        return [r for r in out if r is not None]

    def _plan(self, g: _Gallery, query: Query) -> scan.Plan:
        vec = None
        like = query.like
        if like is not None:
            try:
                vec = validate_facen(like.vector, g.index.dim)
            except BadParam as exc:
                raise BadParam("looks_like", exc.value, exc.reason) from None
            if like.model and g.model and like.model != g.model:
                raise BadParam("looks_like", like.model, f"gallery {g.name!r} holds facens of model {g.model!r}")
        return scan.plan_for(vec, float(like.threshold) if like else 0.0, query.sort, query.limit, query.after)

    def _result(self, g: _Gallery, snap: Snapshot, query: Query, rows: np.ndarray,
                conf: np.ndarray | None) -> SearchResult:
        model = g.model or ""
        hits = []
        for i, r in enumerate(rows[: query.limit].tolist()):
            meta, features = parse_doc(snap.docs[r])
            record = FaceRecord(int(snap.ids[r]), snap.vecs[r].copy(), meta, features, model)
            hits.append(Hit(record, None if conf is None else float(conf[i])))
        next_page = None
        if rows.size > query.limit and hits:
            last = hits[-1]
            next_page = Cursor(query.sort, last.record.id, last.confidence)
        return SearchResult(hits=hits, next_page=next_page)

    def _map_parts(self, fn: Callable[[Any], T], parts: Iterable[Any]) -> Iterable[T]:
        assert self._parts is not None
        return self._parts.map(fn, parts)


def _prepare(schema: Schema, record: FaceRecord, dim: int | None) -> tuple[int, np.ndarray, dict[str, Any], str, str]:
    """A record checked and encoded: (id, float32 vector, meta, meta JSON, features JSON)."""
    face_id = validate_face_id(record.id)
    vec = validate_facen(record.facen, dim)
    meta = validate_meta(schema, record.meta)
    try:
        features_json = dumps(record.features or {})
    except (TypeError, ValueError) as exc:
        raise BadParam("features", type(record.features).__name__, f"features must be JSON: {exc}") from None
    return face_id, vec, meta, dumps(meta), features_json
