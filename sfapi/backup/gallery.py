"""Backup and restore of the gallery store, whatever its backend, into one portable file.

A gallery backup is always a SQLite file in the embedded store's own format (``galleries.db``):

* **embedded** store: SQLite's online backup API copies the live file while sfapi runs and writes;
  the copy is the store as it was at one moment (every write acknowledged before the backup
  started is in it: sfapi acknowledges a write only once it is committed).
* **Milvus**: there is no point-in-time export through its API. The backup first reads each
  gallery's highest face id (its *watermark*), then copies the faces with ids up to it, page by
  page, in id order. The persons plugin's face ids grow with time (the router's id generator), so
  the watermark is also a time: every face acknowledged before the backup started is in it; faces
  added after (higher ids) are not, and a face deleted during the copy may or may not be. The
  manifest says so and records the watermarks.

Restore goes into an empty store of either backend (a gallery that already holds faces is refused):
into a new embedded file the backup is copied as is, otherwise the faces are added through the
backend (:mod:`sfapi.gallery.migrate`). Then the restored store is checked against the backup: the
face count of every gallery, and a random sample of faces whose vectors and meta must be equal.
"""
from __future__ import annotations

import asyncio
import logging
import random
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sfapi.backup.manifest import BackupError
from sfapi.config import GalleryConfig
from sfapi.errors import GalleryNotFound
from sfapi.gallery import sqlite_store as sql
from sfapi.gallery.backend import GalleryBackend
from sfapi.gallery.migrate import log_progress, migrate_gallery
from sfapi.gallery.types import MAX_LIMIT, Cursor, IdFilter, Query

__all__ = ["GALLERY_FILE", "snapshot_sqlite", "file_stats", "backup_galleries", "export_store",
           "restore_galleries", "watermark"]

log = logging.getLogger(__name__)

GALLERY_FILE = "galleries.db"
SNAPSHOT_NOTE = ("a consistent snapshot of the embedded store at one moment (SQLite online "
                 "backup): every write acknowledged before the backup started is in it")
WATERMARK_NOTE = ("Milvus has no point-in-time export: this backup holds each gallery's faces "
                  "with ids up to its watermark (its highest face id when the backup started), "
                  "as they were when read. Faces added after the backup started are not in it; a "
                  "face deleted during the copy may or may not be.")


def snapshot_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (online backup API), as one self-contained
    file (rollback journal, not WAL). Blocking."""
    if not src.is_file():
        raise BackupError(f"{src}: no such database file")
    source = sqlite3.connect(src, timeout=60)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # all pages in one step: one read transaction, one moment
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()


def file_stats(path: Path) -> dict[str, dict[str, Any]]:
    """Per gallery of an embedded-format file: face count and highest face id. Blocking."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT g.name, COUNT(f.id), MAX(f.id) FROM galleries g "
            "LEFT JOIN faces f ON f.gid = g.gid GROUP BY g.gid ORDER BY g.name").fetchall()
    finally:
        conn.close()
    return {name: {"faces": int(n), "max_id": None if top is None else str(sql.from_db_id(top))}
            for name, n, top in rows}


def _keep_only(path: Path, galleries: Sequence[str]) -> None:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM galleries")]
        missing = sorted(set(galleries) - set(names))
        if missing:
            raise BackupError(f"no gallery {', '.join(missing)} in the store")
        marks = ",".join("?" * len(galleries))
        conn.execute(f"DELETE FROM faces WHERE gid IN (SELECT gid FROM galleries WHERE name NOT IN "
                     f"({marks}))", tuple(galleries))
        conn.execute(f"DELETE FROM galleries WHERE name NOT IN ({marks})", tuple(galleries))
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()


async def watermark(store: GalleryBackend, gallery: str) -> int | None:
    """The highest face id of a gallery now (None when empty)."""
    res = await store.search(gallery, Query(sort="-id", limit=1))
    return res.hits[0].record.id if res.hits else None


async def export_store(store: GalleryBackend, dst: Path, galleries: Sequence[str] | None = None,
                       *, include: dict[str, set[int]] | None = None,
                       batch: int = 1000) -> dict[str, Any]:
    """Copy galleries of an open backend, each up to its watermark, into a new embedded-format file;
    ``include`` names faces to copy even past the watermark (when they still exist). Returns the
    manifest's ``galleries`` part."""
    from sfapi.gallery.embedded import EmbeddedStore

    names = list(galleries) if galleries else sorted(g.name for g in await store.list_galleries())
    marks = {name: await watermark(store, name) for name in names}
    out = EmbeddedStore(dst, synchronous="NORMAL")
    await out.open()
    stats: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            await out.create_gallery(name, await store.schema(name))
            mark = marks[name]
            copied = 0
            seen: set[int] = set()
            after: Cursor | None = None
            while mark is not None:
                res = await store.search(name, Query(ids=(IdFilter("lte", mark),), sort="id",
                                                     limit=min(batch, MAX_LIMIT), after=after))
                records = [h.record for h in res.hits]
                if records:
                    await out.add_many(name, records)
                    copied += len(records)
                    seen.update(r.id for r in records)
                if res.next_page is None:
                    break
                after = res.next_page
            extra = 0
            for face_id in sorted((include or {}).get(name, set()) - seen):
                try:
                    await out.add(name, await store.get(name, face_id))
                    extra += 1
                except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                    log.warning("gallery %s: face %d named by the persons database is gone (%s)",
                                name, face_id, exc)
            stats[name] = {"faces": copied + extra, "watermark": None if mark is None else str(mark),
                           "past_watermark": extra}
            log.info("gallery %s: %d faces exported up to watermark %s", name, copied, mark)
    finally:
        await out.close()
    await asyncio.get_running_loop().run_in_executor(None, _to_single_file, dst)
    return {"backend": "milvus", "file": dst.name, "point_in_time": False, "note": WATERMARK_NOTE,
            "galleries": stats}


def _to_single_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


async def backup_galleries(cfg: GalleryConfig, out: Path, galleries: Sequence[str] | None = None,
                           *, include: dict[str, set[int]] | None = None,
                           batch: int = 1000) -> dict[str, Any]:
    """Back up the configured store into ``out/galleries.db``; the manifest's ``galleries`` part."""
    loop = asyncio.get_running_loop()
    dst = out / GALLERY_FILE
    if cfg.backend == "embedded":
        src = cfg.resolved_path()
        await loop.run_in_executor(None, snapshot_sqlite, src, dst)
        if galleries:
            await loop.run_in_executor(None, _keep_only, dst, list(galleries))
        stats = await loop.run_in_executor(None, file_stats, dst)
        log.info("galleries: snapshot of %s: %s", src,
                 ", ".join(f"{n} {s['faces']} faces" for n, s in stats.items()) or "empty")
        return {"backend": "embedded", "file": dst.name, "point_in_time": True,
                "note": SNAPSHOT_NOTE, "galleries": stats}
    from sfapi.gallery.factory import create_backend

    store = create_backend(cfg)
    await store.open()
    try:
        return await export_store(store, dst, galleries, include=include, batch=batch)
    finally:
        await store.close()


def _sample(path: Path, gallery: str, n: int, seed: int) -> list[tuple[int, np.ndarray, str]]:
    """Up to ``n`` random (id, vector, meta JSON) of a gallery in a backup file. Blocking."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in conn.execute(
            "SELECT f.id FROM faces f JOIN galleries g ON g.gid = f.gid WHERE g.name = ?",
            (gallery,))]
        chosen = random.Random(seed).sample(ids, min(n, len(ids)))
        out = []
        for db_id in chosen:
            vec, meta = conn.execute(
                "SELECT f.facen, f.meta FROM faces f JOIN galleries g ON g.gid = f.gid "
                "WHERE g.name = ? AND f.id = ?", (gallery, db_id)).fetchone()
            out.append((sql.from_db_id(db_id), np.frombuffer(vec, np.float32), meta))
        return out
    finally:
        conn.close()


async def _check_empty(store: GalleryBackend, names: Sequence[str]) -> None:
    have = {g.name: g.number for g in await store.list_galleries()}
    full = {n: have[n] for n in names if have.get(n)}
    if full:
        raise BackupError("restore goes into an empty store, but the target holds "
                          + ", ".join(f"gallery {n} ({c} faces)" for n, c in full.items()))


async def restore_galleries(backup: Path, part: dict[str, Any], cfg: GalleryConfig, *,
                            sample: int = 200, seed: int = 0) -> dict[str, Any]:
    """Restore the galleries of a backup into the configured (empty) store, then check counts and
    a sample of vectors. Returns ``{"ok", "galleries": {name: {faces, restored, sampled,
    mismatched}}}``."""
    from sfapi.gallery.embedded import EmbeddedStore
    from sfapi.gallery.factory import create_backend

    loop = asyncio.get_running_loop()
    src_file = backup / part["file"]
    names = sorted(part["galleries"])
    fast = cfg.backend == "embedded" and not cfg.resolved_path().exists()
    if fast:
        target_path = cfg.resolved_path()
        target_path.parent.mkdir(parents=True, exist_ok=True)
        await loop.run_in_executor(None, snapshot_sqlite, src_file, target_path)
        log.info("galleries: copied %s to %s", src_file, target_path)
    target = create_backend(cfg)
    await target.open()
    try:
        if not fast:
            await _check_empty(target, names)
            with tempfile.TemporaryDirectory(prefix="facestack-restore-") as tmp:
                copy = Path(tmp) / GALLERY_FILE  # the backup itself is never opened for writing
                await loop.run_in_executor(None, shutil.copyfile, src_file, copy)
                source = EmbeddedStore(copy, synchronous="OFF")
                await source.open()
                try:
                    for name in names:
                        await migrate_gallery(source, target, name, progress=log_progress)
                finally:
                    await source.close()
        return await check_restored(target, src_file, part, sample=sample, seed=seed)
    finally:
        await target.close()


async def check_restored(target: GalleryBackend, src_file: Path, part: dict[str, Any], *,
                         sample: int = 200, seed: int = 0) -> dict[str, Any]:
    """Compare an open store with a backup file: counts, and a sample of vectors and meta."""
    import json

    loop = asyncio.get_running_loop()
    have = {g.name: g.number for g in await target.list_galleries()}
    report: dict[str, Any] = {}
    ok = True
    for name, want in sorted(part["galleries"].items()):
        picked = await loop.run_in_executor(None, _sample, src_file, name, sample, seed)
        bad: list[str] = []
        for face_id, vec, meta_json in picked:
            try:
                rec = await target.get(name, face_id)
            except (GalleryNotFound, Exception) as exc:  # noqa: BLE001 - reported per face
                bad.append(f"{face_id}: {exc}")
                continue
            if rec.facen.shape != vec.shape or not np.array_equal(rec.facen, vec):
                bad.append(f"{face_id}: vector differs")
            elif rec.meta != json.loads(meta_json):
                bad.append(f"{face_id}: meta differs")
        restored = have.get(name, 0)
        good = restored == want["faces"] and not bad
        ok = ok and good
        report[name] = {"faces": want["faces"], "restored": restored, "sampled": len(picked),
                        "mismatched": bad[:20]}
        (log.info if good else log.error)(
            "gallery %s: %d of %d faces restored, %d sampled, %d mismatched", name, restored,
            want["faces"], len(picked), len(bad))
    return {"ok": ok, "galleries": report}
