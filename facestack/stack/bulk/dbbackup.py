"""Backup and restore of the persons database (``facestack persons backup | restore``).

* SQLite: SQLite's online backup API copies the live file (``persons.db``) at one moment while the
  router runs and writes.
* PostgreSQL: ``pg_dump --format=custom`` (``persons.pgdump``) run on a snapshot the backup opens
  first (``REPEATABLE READ`` + ``pg_export_snapshot()``), so the row counts and the person -> face
  list it records are those of the dump exactly. ``pg_dump`` / ``pg_restore`` must be on the PATH,
  of the server's major version or newer.

Restore goes into an empty database (a missing SQLite file, or a database without persons tables
or with empty ones) and then checks the row count of every table against the manifest. The
router must be stopped during a restore.

Besides the manifest's ``persons`` part, a backup returns the person -> gallery face map of the
snapshot: the joint backup (:mod:`.joint`) checks the galleries against it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sfapi.backup.gallery import snapshot_sqlite
from sfapi.backup.manifest import BackupError

from plugins.persons.config import PersonsConfig
from plugins.persons.storage import metadata, persons

__all__ = ["DbBackup", "persons_config", "backup_database", "restore_database", "SQLITE_FILE",
           "PG_FILE"]

log = logging.getLogger(__name__)

SQLITE_FILE = "persons.db"
PG_FILE = "persons.pgdump"
TABLES = tuple(sorted(metadata.tables))


@dataclass
class DbBackup:
    """The manifest part, and the face id of every person in the snapshot."""

    part: dict[str, Any]
    faces: dict[str, int]


def persons_config(router_config: Path, section: str = "persons") -> PersonsConfig:
    """The persons section of a facerouter config file, validated."""
    from pydantic import ValidationError

    from facerouter.config import load
    from sfapi.errors import ConfigError

    loaded = load(router_config)
    try:
        return PersonsConfig.model_validate(loaded.section(section))
    except ValidationError as exc:
        raise ConfigError(f"{router_config} {section}: {exc.errors()[0]['msg']}") from None


def _sqlite_path(url: str) -> Path:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        raise BackupError(f"the persons database {url!r} is not a file")
    return Path(path).expanduser()


def _pg_url(url: str) -> str:
    """A libpq URL (what pg_dump takes) from the SQLAlchemy one."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _sqlite_contents(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts = {t: int(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
                  for t in TABLES if t in have}
        faces = {pid: int(fid) for pid, fid in conn.execute(
            f"SELECT pid, face_id FROM {persons.name}")} if persons.name in have else {}
        return counts, faces
    finally:
        conn.close()


async def _pg_contents(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    counts = {}
    for table in TABLES:
        if table in names:
            counts[table] = int((await conn.execute(
                sa.select(sa.func.count()).select_from(metadata.tables[table]))).scalar() or 0)
    faces = {}
    if persons.name in names:
        faces = {r.pid: int(r.face_id) for r in await conn.execute(
            sa.select(persons.c.pid, persons.c.face_id))}
    return counts, faces


async def _run_tool(*cmd: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{cmd[0]} is not on the PATH (install the PostgreSQL client tools)")
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(f"{cmd[0]} failed ({proc.returncode}): "
                          f"{(err or out).decode(errors='replace').strip()[:500]}")


async def backup_database(url: str, out: Path) -> DbBackup:
    """Back up the persons database at ``url`` into the folder ``out``."""
    loop = asyncio.get_running_loop()
    if url.startswith("sqlite"):
        dst = out / SQLITE_FILE
        await loop.run_in_executor(None, snapshot_sqlite, _sqlite_path(url), dst)
        counts, faces = await loop.run_in_executor(None, _sqlite_contents, dst)
        part = {"dialect": "sqlite", "file": SQLITE_FILE, "tables": counts}
    else:
        dst = out / PG_FILE
        engine = create_async_engine(url, isolation_level="REPEATABLE READ")
        try:
            async with engine.connect() as conn:
                async with conn.begin():
                    snapshot = (await conn.execute(sa.text("SELECT pg_export_snapshot()"))
                                ).scalar_one()
                    counts, faces = await _pg_contents(conn)
                    await _run_tool("pg_dump", "--format=custom", "--no-owner",
                                    f"--snapshot={snapshot}", f"--file={dst}",
                                    f"--dbname={_pg_url(url)}")
        finally:
            await engine.dispose()
        part = {"dialect": "postgresql", "file": PG_FILE, "tables": counts}
    log.info("persons database: %s", ", ".join(f"{t} {n}" for t, n in counts.items()))
    return DbBackup(part, faces)


async def restore_database(backup: Path, part: dict[str, Any], url: str) -> dict[str, Any]:
    """Restore into an empty database at ``url``; returns ``{"ok", "tables": {t: [want, got]}}``
    and the restored person -> face map under ``"faces"``."""
    loop = asyncio.get_running_loop()
    src = backup / part["file"]
    if url.startswith("sqlite") != (part["dialect"] == "sqlite"):
        raise BackupError(f"the backup is of a {part['dialect']} database; {url.split(':')[0]} "
                          "is another kind (use pg_dump/pg_restore or the API to move between "
                          "kinds)")
    if part["dialect"] == "sqlite":
        target = _sqlite_path(url)
        if target.exists():
            counts, _ = await loop.run_in_executor(None, _sqlite_contents, target)
            if any(counts.values()):
                raise BackupError(f"{target} already holds persons data; restore goes into an "
                                  "empty database (move the old file away)")
            for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
                if stale.exists():  # an empty database a router made: the backup replaces it
                    await loop.run_in_executor(None, os.remove, stale)
        target.parent.mkdir(parents=True, exist_ok=True)
        await loop.run_in_executor(None, snapshot_sqlite, src, target)
        counts, faces = await loop.run_in_executor(None, _sqlite_contents, target)
    else:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                before, _ = await _pg_contents(conn)
            if any(before.values()):
                raise BackupError("the target database already holds persons data; restore goes "
                                  "into an empty database")
            if before:  # empty tables made by a router start: the dump brings its own
                async with engine.begin() as conn:
                    await conn.run_sync(metadata.drop_all)
            await _run_tool("pg_restore", "--no-owner", "--exit-on-error",
                            f"--dbname={_pg_url(url)}", str(src))
            async with engine.connect() as conn:
                counts, faces = await _pg_contents(conn)
        finally:
            await engine.dispose()
    want = part["tables"]
    tables = {t: [want.get(t, 0), counts.get(t, 0)] for t in sorted(set(want) | set(counts))}
    ok = all(a == b for a, b in tables.values())
    (log.info if ok else log.error)("persons database restored: %s", ", ".join(
        f"{t} {got}/{w}" for t, (w, got) in tables.items()))
    return {"ok": ok, "tables": tables, "faces": faces}
