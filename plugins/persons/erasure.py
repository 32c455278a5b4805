"""Erasure of one person everywhere: ``DELETE {prefix}/persons/{pid}?erase=true`` (admins).

In this order, so that an interrupted erasure can be run again and finish:

1. archive faces (``erasure.archive_galleries``) looking like the person's enrolled face with
   similarity ``>= erasure.archive_threshold`` are removed (searched before the face goes);
2. the person's entries (every result that named the pid) and their kept images;
3. the person: the database row, then the enrolled gallery face;
4. sfapi's cached detections looking like that face (``POST /v2/detect/erase``), when sfapi has it.

The answer is a report of what was removed, and of the backups (``erasure.backup_dirs``) made
before now, which still hold the person until they are deleted or expire: a backup is never edited.
Entries that never named the person (``nm``/``det`` faces before enrolment) are not linked to them
and stay; their images expire with the source's retention.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sfapi.client import SFApiError, SFApiRemoteError, filters
from sfapi.client.objects import FaceId

from .params import from_ms
from .storage import entries

if TYPE_CHECKING:
    from . import PersonsPlugin

__all__ = ["erase_person", "backups_holding"]

log = logging.getLogger(__name__)
_PAGE = 1000


async def erase_person(plugin: "PersonsPlugin", pid: str) -> dict[str, Any]:
    """Erase ``pid`` (see the module); returns the report."""
    cfg = plugin.config.erasure
    row = await plugin.persons.get_row(pid)
    face = FaceId(plugin.config.gallery, int(row["face_id"]))
    report: dict[str, Any] = {"pid": pid, "erased": from_ms(int(time.time() * 1000)),
                              "enrolled_faces": [f"{face.gallery}/{face.face}"],
                              "archive_faces": {}, "entries": 0, "images": 0,
                              "cached_detections": None, "backups_still_holding": []}
    for name in cfg.archive_galleries:
        report["archive_faces"][name] = await _erase_lookalikes(plugin, name, face,
                                                                cfg.archive_threshold)
    report["cached_detections"] = await _erase_cached(plugin, face, cfg.archive_threshold)
    # entries and their images
    while True:
        async with plugin.db.connect() as conn:
            rows = (await conn.execute(sa.select(entries.c.id, entries.c.image_face,
                                                 entries.c.image_photo)
                                       .where(entries.c.pid == pid).limit(_PAGE))).mappings().all()
        if not rows:
            break
        files = [r[k] for r in rows for k in ("image_face", "image_photo") if r[k]]
        report["images"] += await plugin.images.remove(files)
        async with plugin.db.begin() as conn:
            await conn.execute(entries.delete().where(entries.c.id.in_([r["id"] for r in rows])))
        report["entries"] += len(rows)
    await plugin.persons.delete(pid)
    created_ms = int(row["created_ms"])
    loop = asyncio.get_running_loop()  # file reads: off the event loop
    report["backups_still_holding"] = await loop.run_in_executor(
        None, backups_holding, cfg.backup_dirs, created_ms)
    log.info("persons: person %s erased: %d entries, %d images, archive %s", pid,
             report["entries"], report["images"], report["archive_faces"])
    return report


async def _erase_lookalikes(plugin: "PersonsPlugin", gallery: str, face: FaceId,
                            threshold: float) -> int:
    removed = 0
    g = plugin.ctx.sfapi[gallery]
    while True:
        try:
            hits = await g.list(filters=[filters.Face(face, threshold)], limit=_PAGE)
        except SFApiRemoteError as exc:
            if exc.code in ("NOT_FOUND", "GALLERY_NOT_FOUND"):
                return removed
            raise
        if not hits:
            return removed
        for hit in hits:
            try:
                await g.delete(hit.id.face)
                removed += 1
            except SFApiRemoteError as exc:
                if exc.code not in ("NOT_FOUND", "FACE_NOT_FOUND"):
                    raise


async def _erase_cached(plugin: "PersonsPlugin", face: FaceId, threshold: float) -> int | str:
    """sfapi's cached detections that look like ``face``: removed where sfapi can enumerate them."""
    try:
        resp = await plugin.ctx.sfapi.request("POST", "/v2/detect/erase", json_body={
            "looks_like": {"gallery": face.gallery, "face": face.face}, "threshold": threshold})
    except (SFApiError, AttributeError) as exc:
        log.warning("persons: cached detections not erased (%s); they expire with sfapi's cache",
                    exc)
        return "not erased: they expire with sfapi's cache.ttl_s"
    return int(resp.get("removed", 0)) if isinstance(resp, dict) else 0


def backups_holding(dirs: list[str], since_ms: int) -> list[dict[str, Any]]:
    """Backups under ``dirs`` (folders with a ``manifest.json``) made since ``since_ms`` (or with
    no readable time): they may hold the person (an older one cannot)."""
    out: list[dict[str, Any]] = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for manifest in sorted([*root.glob("manifest.json"), *root.glob("*/manifest.json")]):
            try:
                meta = json.loads(manifest.read_text())
                created = str(meta.get("created", ""))
            except (OSError, ValueError):
                continue
            try:
                made_ms = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                made_ms = None
            # manifests give whole seconds: one made in the second of the enrolment may hold it
            if made_ms is None or made_ms >= since_ms - since_ms % 1000:
                out.append({"path": str(manifest.parent), "created": created,
                            "tool": meta.get("tool")})
    return out
