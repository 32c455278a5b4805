"""Entries: the stored result of processing one face (from a camera or an upload).

:class:`EntryFilter` is built from the query of ``GET /entries`` with every filter of the reference
(``pid``, ``result``, ``age_from``/``age_to``, ``sex`` (0 male, 1 female), ``mood``, ``liveness``,
``sources_ids``, ``date_from``/``date_to``, ``limit``/``offset``) plus keyset paging
(``id__lt`` / ``id__gte``, as LUNA's ``event_id__lt`` / ``__gte``). Entries are listed newest first
(by id, which is time-ordered); each page answers ``next_page``, the ``id__lt`` of the next page.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .config import RESULTS
from .errors import BadParam, NotFound
from .params import Query, choice, from_ms, int_item, parse_uuid, to_ms
from .storage import Database, entries

__all__ = ["EntryFilter", "EntryRepo", "MOODS", "LIVENESS", "SEXES", "entry_json", "FILTER_PARAMS"]

#: Moods: the emotion labels of sfapi's emotion network.
MOODS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Liveness values as in the reference; without a liveness model every entry is ``undetermined``.
LIVENESS = ("passed", "failed", "undetermined")
#: ``sex`` values: 0 male, 1 female (the reference's coding).
SEXES = {"male": 0, "female": 1}

#: Query parameters of the entry filters (list and statistics share them).
FILTER_PARAMS = ("pid", "result", "age_from", "age_to", "sex", "mood", "liveness", "sources_ids",
                 "date_from", "date_to")
_MAX_ID = (1 << 63) - 1


@dataclass
class EntryFilter:
    """Entry filters; ``None`` means "any"."""

    pid: list[str] | None = None
    result: list[str] | None = None
    age_from: int | None = None
    age_to: int | None = None
    sex: int | None = None
    mood: list[str] | None = None
    liveness: list[str] | None = None
    sources_ids: list[int] | None = None
    date_from: datetime.datetime | None = None
    date_to: datetime.datetime | None = None
    id_lt: int | None = None
    id_gte: int | None = None
    extra: list[Any] = field(default_factory=list)

    @classmethod
    def from_query(cls, q: Query) -> EntryFilter:
        """Read and check the filter parameters of a query."""
        f = cls(
            pid=q.list("pid", parse_uuid),
            result=q.list("result", choice(RESULTS)),
            age_from=q.int("age_from", lo=0, hi=200),
            age_to=q.int("age_to", lo=0, hi=200),
            sex=q.int("sex", lo=0, hi=1),
            mood=q.list("mood", choice(MOODS)),
            liveness=q.list("liveness", choice(LIVENESS)),
            sources_ids=q.list("sources_ids", int_item),
            date_from=q.time("date_from"),
            date_to=q.time("date_to"),
        )
        if q.has("id__lt") or q.has("id__gte"):
            f.id_lt = q.int("id__lt", lo=0, hi=_MAX_ID)
            f.id_gte = q.int("id__gte", lo=0, hi=_MAX_ID)
        if f.age_from is not None and f.age_to is not None and f.age_from > f.age_to:
            raise BadParam("age_from must not exceed age_to", param="age_from", value=f.age_from)
        if f.date_from is not None and f.date_to is not None and f.date_from > f.date_to:
            raise BadParam("date_from must not be after date_to", param="date_from",
                           value=f.date_from.isoformat())
        return f

    def where(self) -> list[Any]:
        """The SQL conditions."""
        c = entries.c
        out: list[Any] = list(self.extra)
        if self.pid is not None:
            out.append(c.pid.in_(self.pid))
        if self.result is not None:
            out.append(c.result.in_(self.result))
        if self.age_from is not None:
            out.append(c.age >= self.age_from)
        if self.age_to is not None:
            out.append(c.age <= self.age_to)
        if self.sex is not None:
            out.append(c.sex == self.sex)
        if self.mood is not None:
            out.append(c.mood.in_(self.mood))
        if self.liveness is not None:
            out.append(c.liveness.in_(self.liveness))
        if self.sources_ids is not None:
            out.append(c.source_id.in_(self.sources_ids))
        if self.date_from is not None:
            out.append(c.ts_ms >= to_ms(self.date_from))
        if self.date_to is not None:
            out.append(c.ts_ms <= to_ms(self.date_to))
        if self.id_lt is not None:
            out.append(c.id < self.id_lt)
        if self.id_gte is not None:
            out.append(c.id >= self.id_gte)
        return out


def entry_json(row: Any, prefix: str, source_name: str | None = None) -> dict[str, Any]:
    """The wire form of an entry row."""
    images = {}
    for kind in ("face", "photo"):
        images[kind] = (f"{prefix}/entries/{row['id']}/image/{kind}"
                        if row[f"image_{kind}"] else None)
    return {
        "id": str(row["id"]), "pid": row["pid"], "result": row["result"],
        "confidence": None if row["confidence"] is None else round(float(row["confidence"]), 2),
        "age": row["age"], "sex": row["sex"], "mood": row["mood"], "liveness": row["liveness"],
        "source": {"id": row["source_id"], "name": source_name},
        "created": from_ms(row["ts_ms"]), "face_size": row["face_size"], "bbox": row["bbox"],
        "cam_id": row["cam_id"], "images": images,
    }


class EntryRepo:
    """Entries in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, values: dict[str, Any]) -> None:
        """Store one entry (``values`` has every column)."""
        when = datetime.datetime.fromtimestamp(values["ts_ms"] / 1000, datetime.timezone.utc)
        row = {**values, "hour": when.hour, "dow": when.weekday()}
        async with self.db.begin() as conn:
            await conn.execute(entries.insert().values(**row))

    async def list(self, f: EntryFilter, limit: int, offset: int) -> list[Any]:
        """One page of entries matching ``f``, newest first."""
        stmt = (sa.select(entries).where(*f.where()).order_by(entries.c.id.desc())
                .limit(limit).offset(offset))
        async with self.db.connect() as conn:
            return list((await conn.execute(stmt)).mappings().all())

    async def get(self, entry_id: int) -> Any:
        """One entry row, or :class:`NotFound`."""
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(entries).where(entries.c.id == entry_id))
                   ).mappings().first()
        if row is None:
            raise NotFound(f"entry {entry_id} not found", param="id", value=str(entry_id))
        return row

    async def delete(self, entry_id: int) -> Any:
        """Remove one entry; returns its row (for its image files)."""
        row = await self.get(entry_id)
        async with self.db.begin() as conn:
            await conn.execute(entries.delete().where(entries.c.id == entry_id))
        return row

    async def clear_images(self, ids: list[int]) -> None:
        """Forget the image paths of these entries (their files were removed)."""
        if not ids:
            return
        async with self.db.begin() as conn:
            await conn.execute(entries.update().where(entries.c.id.in_(ids)).values(
                image_face=None, image_photo=None))

    async def with_images_before(self, source_ids: list[int] | None, before_ms: int,
                                 limit: int = 1000, exclude: bool = False) -> list[Any]:
        """Entries older than ``before_ms`` that still have images (for retention).

        ``source_ids`` selects the sources (``exclude``: every source but these; ``None``: all).
        """
        c = entries.c
        cond = [c.ts_ms < before_ms, sa.or_(c.image_face.is_not(None), c.image_photo.is_not(None))]
        if source_ids is not None:
            cond.append(c.source_id.not_in(source_ids) if exclude else c.source_id.in_(source_ids))
        stmt = sa.select(c.id, c.image_face, c.image_photo).where(*cond).order_by(c.id).limit(limit)
        async with self.db.connect() as conn:
            return list((await conn.execute(stmt)).mappings().all())
