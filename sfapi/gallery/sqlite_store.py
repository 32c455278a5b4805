"""The store of record: SQLite in WAL mode with a single group-committing writer thread.

Tables::

    galleries(gid INTEGER PRIMARY KEY, name TEXT UNIQUE, schema TEXT, model TEXT, dim INTEGER)
    faces(gid, id, facen BLOB, meta TEXT, features TEXT, UNIQUE(gid, id))

Face ids are unsigned 64-bit; they are stored as ``id - 2**63`` so SQLite's signed int64 keeps their
order. ``facen`` is the float32 vector's bytes (little-endian), meta and features are JSON.

Writes are submitted as (work, after_commit) pairs. The writer thread takes every pending write,
runs all their ``work`` in one transaction, commits (one fsync for the whole group), then runs each
``after_commit`` in order (the in-memory index is updated there) and only then resolves each
caller's future: an acknowledged write is durable and visible to searches.
"""
from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from sfapi.errors import BadParam, Conflict, GalleryNotFound, NotFound, SfapiError, StorageError

log = logging.getLogger(__name__)

ID_OFFSET = 2**63
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_MAX_BATCH = 4096
_LOAD_CHUNK = 65536

_DDL = (
    """CREATE TABLE IF NOT EXISTS galleries (
        gid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, schema TEXT NOT NULL,
        model TEXT, dim INTEGER)""",
    """CREATE TABLE IF NOT EXISTS faces (
        gid INTEGER NOT NULL, id INTEGER NOT NULL, facen BLOB NOT NULL,
        meta TEXT NOT NULL, features TEXT NOT NULL, UNIQUE (gid, id))""",
)


def to_db_id(face_id: int) -> int:
    return face_id - ID_OFFSET


def from_db_id(db_id: int) -> int:
    return db_id + ID_OFFSET


@dataclass(frozen=True)
class GalleryRow:
    gid: int
    name: str
    schema_json: str
    model: str | None
    dim: int | None


@dataclass
class _Write:
    work: Callable[[sqlite3.Connection], Any]
    after_commit: Callable[[Any], Any]
    future: concurrent.futures.Future


class SqliteStore:
    """The SQLite file and its writer thread."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        sync = synchronous.upper()
        if sync not in _SYNC_MODES:
            raise BadParam("synchronous", synchronous, f"one of {', '.join(_SYNC_MODES)}")
        self.path = Path(path)
        self.synchronous = sync
        self._conn: sqlite3.Connection | None = None
        self._pending: deque[_Write] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> list[GalleryRow]:
        """Open (creating) the database; returns the galleries. Blocking: run it off the loop."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            for ddl in _DDL:
                conn.execute(ddl)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the gallery store {self.path}: {exc}") from exc
        self._conn = conn
        rows = conn.execute("SELECT gid, name, schema, model, dim FROM galleries ORDER BY gid").fetchall()
        return [GalleryRow(*r) for r in rows]

    def load_faces(self, gid: int) -> Iterator[list[tuple[int, bytes, str, str]]]:
        """Chunks of (db id, facen bytes, meta JSON, features JSON) of a gallery, before start()."""
        assert self._conn is not None and self._thread is None
        cur = self._conn.execute("SELECT id, facen, meta, features FROM faces WHERE gid = ?", (gid,))
        while True:
            chunk = cur.fetchmany(_LOAD_CHUNK)
            if not chunk:
                return
            yield chunk

    def start(self) -> None:
        """Start the writer thread (after loading)."""
        self._thread = threading.Thread(target=self._run, name=f"gallery-writer:{self.path.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish every submitted write, stop the writer, checkpoint and close. Blocking."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("gallery store %s: checkpoint at close failed: %s", self.path, exc)
            self._conn.close()
            self._conn = None

    # -- writes ------------------------------------------------------------------------------
    def submit(self, work: Callable[[sqlite3.Connection], Any],
               after_commit: Callable[[Any], Any] = lambda r: r) -> concurrent.futures.Future:
        """Queue a write; the future resolves to ``after_commit(work(conn))`` after the commit."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing or self._thread is None:
                raise StorageError("the gallery store is closed")
            self._pending.append(_Write(work, after_commit, fut))
            self._cond.notify()
        return fut

    def _take(self) -> list[_Write] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            batch = []
            while self._pending and len(batch) < _MAX_BATCH:
                batch.append(self._pending.popleft())
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [w for w in batch if w.future.set_running_or_notify_cancel()]
            try:
                if batch:
                    self._commit_group(batch)
            except Exception as exc:  # never let the writer die with callers waiting
                log.exception("gallery store %s: writer failed", self.path)
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(StorageError(f"the gallery store could not write: {exc}"))

    def _commit_group(self, batch: list[_Write]) -> None:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for w in batch:
                try:
                    outcomes.append((True, w.work(conn)))
                except SfapiError as exc:
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except Exception as exc:  # an I/O error, disk full, a bug: nothing of the group is stored
            log.error("gallery store %s: group of %d writes failed: %s", self.path, len(batch), exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = StorageError(f"the gallery store could not write: {exc}")
            for w in batch:
                w.future.set_exception(err)
            return
        for w, (ok, value) in zip(batch, outcomes):
            if not ok:
                w.future.set_exception(value)
                continue
            try:
                w.future.set_result(w.after_commit(value))
            except Exception as exc:
                log.exception("gallery store %s: applying a committed write failed", self.path)
                w.future.set_exception(exc)


# -- SQL of the individual writes (run by the writer inside its transaction) ---------------------
def gallery_row(conn: sqlite3.Connection, name: str) -> GalleryRow:
    row = conn.execute("SELECT gid, name, schema, model, dim FROM galleries WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise GalleryNotFound(f"gallery {name!r} does not exist", gallery=name)
    return GalleryRow(*row)


def create_gallery(conn: sqlite3.Connection, name: str, schema_json: str) -> GalleryRow:
    try:
        cur = conn.execute("INSERT INTO galleries (name, schema) VALUES (?, ?)", (name, schema_json))
    except sqlite3.IntegrityError:
        raise Conflict(f"gallery {name!r} already exists", gallery=name) from None
    return GalleryRow(int(cur.lastrowid or 0), name, schema_json, None, None)


def drop_gallery(conn: sqlite3.Connection, name: str) -> GalleryRow:
    row = gallery_row(conn, name)
    conn.execute("DELETE FROM faces WHERE gid = ?", (row.gid,))
    conn.execute("DELETE FROM galleries WHERE gid = ?", (row.gid,))
    return row


def add_faces(conn: sqlite3.Connection, name: str, model: str, dim: int,
              faces: Sequence[tuple[int, bytes, str, str]]) -> GalleryRow:
    """Insert faces (face id, facen bytes, meta JSON, features JSON), all or none."""
    row = gallery_row(conn, name)
    if row.model is not None and row.model != model:
        raise BadParam("facen", model, f"gallery {name!r} holds facens of model {row.model!r}, not {model!r}")
    if row.dim is not None and row.dim != dim:
        raise BadParam("facen", f"dimension {dim}", f"gallery {name!r} holds facens of dimension {row.dim}")
    params = [(row.gid, to_db_id(fid), blob, meta, feats) for fid, blob, meta, feats in faces]
    sql = "INSERT INTO faces (gid, id, facen, meta, features) VALUES (?, ?, ?, ?, ?)"
    try:
        if len(params) == 1:
            conn.execute(sql, params[0])
        else:
            conn.execute("SAVEPOINT add_faces")
            try:
                conn.executemany(sql, params)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO add_faces")
                raise
            finally:
                conn.execute("RELEASE add_faces")
    except sqlite3.IntegrityError:
        if len(faces) == 1:
            raise Conflict(f"face {faces[0][0]} already exists in gallery {name!r}",
                           gallery=name, id=faces[0][0]) from None
        raise Conflict(f"a face id is taken in gallery {name!r} or repeated in the batch", gallery=name) from None
    if row.model is None:
        conn.execute("UPDATE galleries SET model = ?, dim = ? WHERE gid = ?", (model, dim, row.gid))
        row = GalleryRow(row.gid, row.name, row.schema_json, model, dim)
    return row


def read_face(conn: sqlite3.Connection, gid: int, name: str, face_id: int) -> tuple[bytes, str, str]:
    row = conn.execute("SELECT facen, meta, features FROM faces WHERE gid = ? AND id = ?",
                       (gid, to_db_id(face_id))).fetchone()
    if row is None:
        raise NotFound(f"face {face_id} is not in gallery {name!r}", gallery=name, id=face_id)
    return row


def set_meta(conn: sqlite3.Connection, gid: int, face_id: int, meta_json: str) -> None:
    conn.execute("UPDATE faces SET meta = ? WHERE gid = ? AND id = ?", (meta_json, gid, to_db_id(face_id)))


def delete_face(conn: sqlite3.Connection, gid: int, name: str, face_id: int) -> None:
    cur = conn.execute("DELETE FROM faces WHERE gid = ? AND id = ?", (gid, to_db_id(face_id)))
    if cur.rowcount == 0:
        raise NotFound(f"face {face_id} is not in gallery {name!r}", gallery=name, id=face_id)
