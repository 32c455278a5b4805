"""``facestack backup`` / ``restore``: the persons database and the galleries together, consistent.

Order: the persons database is copied first (one snapshot), then the galleries. Every person row of
that snapshot was written after its gallery face was acknowledged (the plugin adds the face, then
the row), so the face is in the gallery copy taken after it: in the embedded store's snapshot, or
in Milvus's export up to a watermark read after the persons snapshot (faces the persons name are
also fetched one by one should any lie past the watermark). Only a face removed between the two
copies can be missing (a person re-initialised or deleted at that moment): the backup checks every
person against the gallery copy and lists any such person in the manifest (``consistency``), and
the restore reports them again. Gallery faces no person of the snapshot names (persons created
between the two copies) are counted there too; the persons plugin never matches them to a person.

The manifest also records the ``watermark``: the highest face id of the persons gallery in the
copy, i.e. the time up to which enrolments are in the backup.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfapi.backup.gallery import backup_galleries, restore_galleries
from sfapi.backup.manifest import (BackupError, new_backup_dir, read_manifest, verify,
                                   write_manifest)
from sfapi.config import GalleryConfig
from sfapi.gallery import sqlite_store as sql

from .dbbackup import backup_database, restore_database

__all__ = ["backup_site", "restore_site", "backup_stores", "restore_stores", "RestoreResult"]

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    """What a joint restore did: ``ok`` when every count and every sampled vector matched."""

    ok: bool
    persons: dict[str, Any]
    galleries: dict[str, Any]
    missing_faces: list[dict[str, Any]] = field(default_factory=list)


def _face_ids(path: Path, gallery: str) -> set[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {sql.from_db_id(r[0]) for r in conn.execute(
            "SELECT f.id FROM faces f JOIN galleries g ON g.gid = f.gid WHERE g.name = ?",
            (gallery,))}
    finally:
        conn.close()


async def backup_stores(database_url: str, persons_gallery: str, gallery_cfg: GalleryConfig,
                        out: Path) -> dict[str, Any]:
    """The joint backup into the new folder ``out``; returns the manifest."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, new_backup_dir, out)
    db = await backup_database(database_url, out)
    refs = set(db.faces.values())
    galleries = await backup_galleries(gallery_cfg, out,
                                       include={persons_gallery: refs} if refs else None)
    have = await loop.run_in_executor(None, _face_ids, out / galleries["file"], persons_gallery)
    missing = sorted(({"pid": pid, "face_id": str(fid)} for pid, fid in db.faces.items()
                      if fid not in have), key=lambda m: m["pid"])
    consistency = {"persons_gallery": persons_gallery, "persons": len(db.faces),
                   "watermark": str(max(have)) if have else None,
                   "missing_faces": missing, "faces_without_person": len(have - refs)}
    if missing:
        log.warning("backup: %d persons name a face the gallery copy lacks (removed while the "
                    "backup ran): %s", len(missing), ", ".join(m["pid"] for m in missing[:20]))
    files = [db.part["file"], galleries["file"]]
    manifest = await loop.run_in_executor(
        None, lambda: write_manifest(out, "facestack backup",
                                     {"persons": db.part, "galleries": galleries,
                                      "consistency": consistency}, files))
    log.info("backup in %s: %d persons, galleries %s, watermark %s", out, len(db.faces),
             ", ".join(f"{n} {s['faces']}" for n, s in galleries["galleries"].items()),
             consistency["watermark"])
    return manifest


async def restore_stores(backup: Path, database_url: str, persons_gallery: str,
                         gallery_cfg: GalleryConfig, *, sample: int = 200) -> RestoreResult:
    """Restore a joint backup into empty stores and check it (services stopped)."""
    loop = asyncio.get_running_loop()
    manifest = await loop.run_in_executor(None, read_manifest, backup)
    if "persons" not in manifest or "galleries" not in manifest:
        raise BackupError(f"{backup} is not a joint backup (made by facestack backup)")
    await loop.run_in_executor(None, verify, backup, manifest)
    db = await restore_database(backup, manifest["persons"], database_url)
    galleries = await restore_galleries(backup, manifest["galleries"], gallery_cfg, sample=sample)
    have = await loop.run_in_executor(None, _face_ids, backup / manifest["galleries"]["file"],
                                      persons_gallery)
    missing = [{"pid": pid, "face_id": str(fid)} for pid, fid in sorted(db["faces"].items())
               if fid not in have]
    if missing:
        log.warning("restore: %d persons have no face in the restored gallery %s (they were "
                    "re-initialised or deleted while the backup ran): %s", len(missing),
                    persons_gallery, ", ".join(m["pid"] for m in missing[:20]))
    ok = bool(db["ok"] and galleries["ok"])
    return RestoreResult(ok, {k: v for k, v in db.items() if k != "faces"}, galleries, missing)


async def backup_site(router_config: Path, sfapi_config: Path, out: Path, *,
                      section: str = "persons") -> dict[str, Any]:
    """``facestack backup``: the stores named by the two services' config files."""
    from sfapi.config import SfapiConfig
    from facestack.core.configfile import load_config

    from .dbbackup import persons_config

    pcfg = persons_config(router_config, section)
    scfg = load_config(sfapi_config, SfapiConfig)
    return await backup_stores(pcfg.resolved_database_url(), pcfg.gallery, scfg.gallery, out)


async def restore_site(backup: Path, router_config: Path, sfapi_config: Path, *,
                       section: str = "persons", sample: int = 200) -> RestoreResult:
    """``facestack restore``: into the stores named by the two services' config files."""
    from sfapi.config import SfapiConfig
    from facestack.core.configfile import load_config

    from .dbbackup import persons_config

    pcfg = persons_config(router_config, section)
    scfg = load_config(sfapi_config, SfapiConfig)
    return await restore_stores(backup, pcfg.resolved_database_url(), pcfg.gallery, scfg.gallery,
                                sample=sample)
