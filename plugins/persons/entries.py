"""Entries: the stored result of processing one face (from a camera or an upload).

:class:`EntryFilter` is built from the query of ``GET /entries`` with every filter of the reference
(``pid``, ``result``, ``age_from``/``age_to``, ``sex`` (0 male, 1 female), ``mood``, ``liveness``,
``sources_ids``, ``date_from``/``date_to``, ``limit``/``offset``) plus keyset paging
(``id__lt`` / ``id__gte``, as LUNA's ``event_id__lt`` / ``__gte``). Entries are listed newest first
(by id, which is time-ordered); each page answers ``next_page``, the ``id__lt`` of the next page.

``spaces_ids`` selects the entries of the sources in any of those spaces (a space is a group of
sources: a source lists its spaces in its ``spaces_ids`` setting).

Moods: entries store the emotion network's labels (:data:`MOODS`). The reference-shaped routes
(``/v1``) speak the reference's vocabulary (:data:`REFERENCE_MOODS`): ``happy`` is ``happiness``,
``sad`` ``sadness``, ``angry`` ``anger``, the others keep their names; ``contempt`` is never given
(the network has no such class); an entry without a measured mood is ``det`` when its result is
``det`` (the face was only detected) and ``nm`` otherwise (not measured: the source does not ask
for age, sex and mood, or the face was not analysed).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import sqlalchemy as sa

from .config import RESULTS
from .errors import BadParam, NotFound
from .params import Query, choice, from_ms, int_item, parse_pid, to_ms
from .storage import Database, entries

__all__ = ["EntryFilter", "EntryRepo", "MOODS", "REFERENCE_MOODS", "LIVENESS", "SEXES",
           "entry_json", "reshape", "reference_mood", "FILTER_PARAMS", "Shape"]

#: Which wire shape a route speaks: ``reference`` (the NeuroIO shapes and vocabulary, ``/v1``) or
#: ``rich`` (this service's own, ``/v2``).
Shape = Literal["reference", "rich"]

#: Moods: the emotion labels of sfapi's emotion network.
MOODS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The reference's moods, by the network's label they stand for.
_TO_REFERENCE = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                 "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
_FROM_REFERENCE = {v: k for k, v in _TO_REFERENCE.items()}
#: The reference's mood vocabulary (NeuroIO ``EntryMood``).
REFERENCE_MOODS = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness",
                   "surprise", "nm", "det")
#: Liveness values as in the reference; without a liveness model every entry is ``undetermined``.
LIVENESS = ("passed", "failed", "undetermined")
#: ``sex`` values: 0 male, 1 female (the reference's coding).
SEXES = {"male": 0, "female": 1}

#: Query parameters of the entry filters (list and statistics share them).
FILTER_PARAMS = ("pid", "result", "age_from", "age_to", "sex", "mood", "liveness", "sources_ids",
                 "spaces_ids", "date_from", "date_to")
_MAX_ID = (1 << 63) - 1
#: the largest source id the database can hold (``sources.id`` is a 32-bit INTEGER)
_MAX_SOURCE_ID = (1 << 31) - 1


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
    #: moods of the reference without a stored label: ``nm`` / ``det`` (mood not measured)
    unmeasured: list[str] = field(default_factory=list)
    date_from: datetime.datetime | None = None
    date_to: datetime.datetime | None = None
    id_lt: int | None = None
    id_gte: int | None = None
    extra: list[Any] = field(default_factory=list)

    @classmethod
    def from_query(cls, q: Query, shape: Shape = "rich",
                   spaces: Callable[[Iterable[int]], list[int]] | None = None) -> EntryFilter:
        """Read and check the filter parameters of a query (``spaces`` gives the source ids of
        some spaces; ``shape`` says which mood vocabulary the query speaks)."""
        f = cls(
            pid=q.list("pid", parse_pid),
            result=q.list("result", choice(RESULTS)),
            age_from=q.int("age_from", lo=0, hi=200),
            age_to=q.int("age_to", lo=0, hi=200),
            sex=q.int("sex", lo=0, hi=1),
            liveness=q.list("liveness", choice(LIVENESS)),
            sources_ids=q.list("sources_ids", int_item),
            date_from=q.time("date_from"),
            date_to=q.time("date_to"),
        )
        if shape == "reference":
            moods = q.list("mood", choice(REFERENCE_MOODS))
            if moods is not None:
                f.mood = [_FROM_REFERENCE[m] for m in moods if m in _FROM_REFERENCE]
                f.unmeasured = [m for m in moods if m in ("nm", "det")]
        else:
            f.mood = q.list("mood", choice(MOODS))
        space_ids = q.list("spaces_ids", int_item)
        if space_ids is not None:
            in_spaces = spaces(space_ids) if spaces is not None else []
            f.sources_ids = in_spaces if f.sources_ids is None else \
                [s for s in f.sources_ids if s in in_spaces]
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
            either = [c.mood.in_(self.mood)]
            if "nm" in self.unmeasured:
                either.append(sa.and_(c.mood.is_(None), c.result != "det"))
            if "det" in self.unmeasured:
                either.append(sa.and_(c.mood.is_(None), c.result == "det"))
            out.append(sa.or_(*either))
        if self.liveness is not None:
            out.append(c.liveness.in_(self.liveness))
        if self.sources_ids is not None:  # ids past the column's range name no source
            out.append(c.source_id.in_([s for s in self.sources_ids if s <= _MAX_SOURCE_ID]))
        if self.date_from is not None:
            out.append(c.ts_ms >= to_ms(self.date_from))
        if self.date_to is not None:
            out.append(c.ts_ms <= to_ms(self.date_to))
        if self.id_lt is not None:
            out.append(c.id < self.id_lt)
        if self.id_gte is not None:
            out.append(c.id >= self.id_gte)
        return out


def reference_mood(mood: str | None, result: str) -> str:
    """A stored mood in the reference's vocabulary (``nm`` / ``det`` when none was measured)."""
    if mood is None:
        return "det" if result == "det" else "nm"
    return _TO_REFERENCE.get(mood, mood)


def entry_json(row: Any, prefix: str, source_name: str | None = None,
               shape: Shape = "rich") -> dict[str, Any]:
    """The wire form of an entry row (``shape`` ``reference``: the reference's mood names)."""
    images = {}
    for kind in ("face", "photo"):
        images[kind] = (f"{prefix}/entries/{row['id']}/image/{kind}"
                        if row[f"image_{kind}"] else None)
    return {
        "id": str(row["id"]), "pid": row["pid"], "result": row["result"],
        "confidence": None if row["confidence"] is None else round(float(row["confidence"]), 2),
        "age": row["age"], "sex": row["sex"],
        "mood": reference_mood(row["mood"], row["result"]) if shape == "reference" else row["mood"],
        "liveness": row["liveness"],
        "source": {"id": row["source_id"], "name": source_name},
        "created": from_ms(row["ts_ms"]), "face_size": row["face_size"], "bbox": row["bbox"],
        "cam_id": row["cam_id"], "images": images,
    }


def reshape(wire: dict[str, Any], prefix: str, shape: Shape) -> dict[str, Any]:
    """An entry's wire form (as :func:`entry_json` made it) for the routes under ``prefix``."""
    out = dict(wire)
    out["images"] = {kind: (None if link is None else f"{prefix}/entries/{wire['id']}/image/{kind}")
                     for kind, link in wire["images"].items()}
    if shape == "reference":
        out["mood"] = reference_mood(wire["mood"], wire["result"])
    return out


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

    async def older_than(self, source_ids: list[int], before_ms: int, limit: int = 1000,
                         exclude: bool = False) -> list[Any]:
        """Entries older than ``before_ms`` of these sources (``exclude``: of every other one)."""
        c = entries.c
        cond = [c.ts_ms < before_ms,
                c.source_id.not_in(source_ids) if exclude else c.source_id.in_(source_ids)]
        stmt = sa.select(c.id, c.image_face, c.image_photo).where(*cond).order_by(c.id).limit(limit)
        async with self.db.connect() as conn:
            return list((await conn.execute(stmt)).mappings().all())

    async def delete_ids(self, ids: list[int]) -> None:
        """Remove these entries (their files are the caller's)."""
        async with self.db.begin() as conn:
            await conn.execute(entries.delete().where(entries.c.id.in_(ids)))

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
