"""Persons: one face each in an sfapi gallery (meta ``{"pid": <uuid>}``), one row each in the
database. Identification, creation (from a camera face or an uploaded photo), reinit, deletion.

A person's face id in the gallery comes from ``ctx.idgen()``; the pid is a random UUID. Creating a
person adds the gallery face first, then the row (a failed row removes the face again); deleting
removes the row, then the face. Reinit adds the new face, points the row at it, removes the old one.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import sqlalchemy as sa

from sfapi.client import (Client, SFApiError, SFApiMalformedResponseError, SFApiRemoteError,
                          filters)
from sfapi.client.objects import DetectFace

from .errors import BadParam, NotFound, Unavailable
from .params import from_ms
from .storage import Database, persons
from .thresholds import ThresholdStore, classify

__all__ = ["Match", "PersonService", "upload_error", "face_area"]

log = logging.getLogger(__name__)

META_SCHEMA = {"pid": "string"}


@dataclass(frozen=True)
class Match:
    """The outcome of identifying one face: result, best person and score (0-100)."""

    result: str
    pid: str | None
    score: float | None


def face_area(box: Any) -> float:
    """Area in px^2 of an sfapi BBox or an ``[x1, y1, x2, y2]`` list."""
    if isinstance(box, (list, tuple)):
        x1, y1, x2, y2 = box
        return float(max(x2 - x1, 0) * max(y2 - y1, 0))
    return float(max(box.width, 0) * max(box.height, 0))


def upload_error(exc: SFApiError, param: str) -> Exception:
    """An sfapi failure on an uploaded image: the image's fault (400) or sfapi's (503)."""
    if isinstance(exc, SFApiRemoteError) and (exc.status or 500) < 500:
        return BadParam(f"sfapi refused {param}: {exc.reason}", param=param, value=exc.code)
    return Unavailable(f"sfapi is unavailable: {exc}")


class PersonService:
    """Persons over the gallery and the database."""

    def __init__(self, sfapi: Client, gallery: str, db: Database, thresholds: ThresholdStore,
                 idgen: Callable[[], int], create_gallery: bool) -> None:
        self.sfapi = sfapi
        self.gallery = sfapi[gallery]
        self.db = db
        self.thresholds = thresholds
        self.idgen = idgen
        self._ready = not create_gallery
        self._lock = asyncio.Lock()

    async def ensure_gallery(self) -> None:
        """Create the gallery with its meta schema unless it exists (once per process)."""
        async with self._lock:
            if self._ready:
                return
            await self.gallery.create(timeout=5.0, meta_schema=META_SCHEMA, exist_ok=True)
            log.info("persons: gallery %s ready", self.gallery.name)
            self._ready = True

    async def identify(self, detection: DetectFace) -> Match:
        """The best person for a detection (made with facen) and the result it gives."""
        if not self._ready:
            await self.ensure_gallery()
        t = self.thresholds.current
        hits = await self.gallery.list(filters=[filters.Detection(detection, t.junk / 100.0)],
                                       limit=1)
        if not hits or hits[0].confidence is None:
            return Match("nm", None, None)
        score = round(float(hits[0].confidence) * 100.0, 2)
        result = classify(score, t)
        pid = hits[0].meta.get("pid") if result != "nm" else None
        return Match(result, pid if isinstance(pid, str) else None, score)

    async def create(self, detection: DetectFace, source_id: int | None,
                     entry_id: int | None) -> str:
        """A new person from a detection (made with facen); returns the pid."""
        if not self._ready:
            await self.ensure_gallery()
        pid = str(uuid.uuid4())
        face = await self.gallery.add(self.idgen, detection, meta={"pid": pid})
        now = int(time.time() * 1000)
        try:
            async with self.db.begin() as conn:
                await conn.execute(persons.insert().values(
                    pid=pid, face_id=face.id.face, source_id=source_id, entry_id=entry_id,
                    created_ms=now, updated_ms=now))
        except BaseException:
            await self._drop_face(face.id.face)
            raise
        log.info("persons: person %s created (face %d)", pid, face.id.face)
        return pid

    async def reinit(self, pid: str, detection: DetectFace, entry_id: int | None) -> None:
        """Replace a person's face by a new detection."""
        row = await self.get_row(pid)
        face = await self.gallery.add(self.idgen, detection, meta={"pid": pid})
        async with self.db.begin() as conn:
            await conn.execute(persons.update().where(persons.c.pid == pid).values(
                face_id=face.id.face, entry_id=entry_id, updated_ms=int(time.time() * 1000)))
        await self._drop_face(row["face_id"])
        log.info("persons: person %s reinitialized (face %d -> %d)", pid, row["face_id"],
                 face.id.face)

    async def get_row(self, pid: str) -> Any:
        """A person's row, or :class:`NotFound`."""
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(persons).where(persons.c.pid == pid))
                   ).mappings().first()
        if row is None:
            raise NotFound(f"person {pid} not found", param="pid", value=pid)
        return row

    async def list(self, limit: int, offset: int) -> tuple[int, list[Any]]:
        """The number of persons and one page, newest first."""
        async with self.db.connect() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(persons))).scalar()
            rows = (await conn.execute(sa.select(persons).order_by(
                persons.c.created_ms.desc(), persons.c.pid).limit(limit).offset(offset))
                    ).mappings().all()
        return int(total or 0), list(rows)

    async def delete(self, pid: str) -> None:
        """Remove a person: the row, then the gallery face (entries stay)."""
        row = await self.get_row(pid)
        async with self.db.begin() as conn:
            await conn.execute(persons.delete().where(persons.c.pid == pid))
        await self._drop_face(row["face_id"])
        log.info("persons: person %s deleted", pid)

    async def _drop_face(self, face_id: int) -> None:
        try:
            await self.gallery.delete(face_id)
        except SFApiRemoteError as exc:
            if exc.code not in ("NOT_FOUND", "FACE_NOT_FOUND"):
                raise
        except SFApiMalformedResponseError as exc:
            log.warning("persons: gallery face %d not removed: %s", face_id, exc)

    @staticmethod
    def to_json(row: Any) -> dict[str, Any]:
        """The wire form of a person."""
        return {"pid": row["pid"], "face_id": str(row["face_id"]), "source_id": row["source_id"],
                "entry_id": None if row["entry_id"] is None else str(row["entry_id"]),
                "created": from_ms(row["created_ms"]), "updated": from_ms(row["updated_ms"])}
