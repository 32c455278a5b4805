"""Sources: named origins of faces (cameras, API clients) and their processing settings.

The settings carry the reference's names (NeuroIO sources) and do what their names say:

=================================  ==============================================================
``identify_facesize_threshold``    faces with a smaller bbox area (px^2) are not identified:
                                   entry result ``det``
``use_pps_time``                   the entry time is the frame's timestamp, not its arrival time
``manual_create_facesize_threshold``  least face area for creating a person from an upload
``manual_create_on_ha``            an upload matching a person in the ``ha`` band still creates one
``manual_create_on_junk``          the same for the ``junk`` band
``manual_identify_asm``            age, sex and mood on uploads
``auto_create_persons``            a face from this source that matches nobody creates a person
``auto_create_facesize_threshold`` least face area for that
``auto_create_check_blur``         ... and only when the face is sharp enough
``auto_create_check_exposure``     ... and neither too dark nor too bright
``auto_create_on_ha``              ... also on an ``ha`` result (not only ``nm``)
``auto_create_on_junk``            ... also on a ``junk`` result
``auto_check_face_angle``          ... and only when yaw/roll are within the configured limits
``auto_check_liveness``            check liveness (no model ships: always ``undetermined``)
``auto_create_liveness_only``      auto-create only from faces that passed liveness (so never,
                                   until a liveness model ships)
``auto_identify_asm``              age, sex and mood on faces from cameras
``store_images_for_results``       the results whose entries keep their images on disk
``license``                        days the entry images of this source are kept (null: the
                                   config's ``image_retention_days``)
=================================  ==============================================================
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import BadParam, Conflict, NotFound
from .storage import Database, sources

__all__ = ["SourceSettings", "Source", "SourceRepo", "validation_error"]

log = logging.getLogger(__name__)

Result = Literal["new", "reinit", "exact", "ha", "junk", "nm", "det"]


class SourceSettings(BaseModel):
    """A source's settings (the body of create and update)."""

    model_config = ConfigDict(extra="forbid")

    license: int | None = Field(None, ge=0)
    identify_facesize_threshold: int = Field(7000, ge=0)
    use_pps_time: bool = False
    manual_create_facesize_threshold: int = Field(25000, ge=0)
    manual_create_on_ha: bool = False
    manual_create_on_junk: bool = False
    manual_identify_asm: bool = True
    auto_create_persons: bool = False
    auto_create_facesize_threshold: int = Field(25000, ge=0)
    auto_create_check_blur: bool = True
    auto_create_check_exposure: bool = True
    auto_create_on_ha: bool = False
    auto_create_on_junk: bool = False
    auto_check_face_angle: bool = True
    auto_check_liveness: bool = False
    auto_create_liveness_only: bool = False
    auto_identify_asm: bool = True
    store_images_for_results: list[Result] = ["new", "reinit", "exact", "ha", "junk", "nm",
                                              "det"]

    @field_validator("store_images_for_results")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Source(BaseModel):
    """A stored source."""

    id: int
    name: str
    settings: SourceSettings
    created_ms: int
    updated_ms: int

    def to_json(self) -> dict[str, Any]:
        """The wire form: id, name and every setting at the top level (as the reference)."""
        from .params import from_ms
        return {"id": self.id, "name": self.name, **self.settings.model_dump(),
                "created": from_ms(self.created_ms), "updated": from_ms(self.updated_ms)}


def validation_error(exc: ValidationError, prefix: str = "") -> BadParam:
    """The first problem of a pydantic error as a BadParam naming the field."""
    err = exc.errors()[0]
    param = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix or "body"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        return BadParam(f"unknown setting {param!r}", param=param, value=value)
    return BadParam(f"{param}: {err['msg']}", param=param, value=value)


def check_name(value: Any) -> str:
    """A source name: a non-empty printable string of at most 255 characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255 \
            or not value.isprintable():
        raise BadParam("name must be a non-empty printable string of at most 255 characters",
                       param="name", value=value)
    return value


class SourceRepo:
    """Sources in the database, with an in-memory copy for the per-frame lookup by name."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_name: dict[str, Source] = {}
        self._by_id: dict[int, Source] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Read every source into memory (at start)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(sa.select(sources))).mappings().all()
        self._by_name = {}
        self._by_id = {}
        for row in rows:
            self._remember(_source(row))
        log.info("persons: %d source(s) loaded", len(self._by_id))

    def _remember(self, src: Source) -> None:
        self._by_name[src.name] = src
        self._by_id[src.id] = src

    def by_name(self, name: str) -> Source | None:
        """The source called ``name`` (from memory; no I/O)."""
        return self._by_name.get(name)

    def by_id(self, source_id: int) -> Source | None:
        """The source with this id (from memory)."""
        return self._by_id.get(source_id)

    def get(self, source_id: int) -> Source:
        """The source with this id, or :class:`NotFound`."""
        src = self._by_id.get(source_id)
        if src is None:
            raise NotFound(f"source {source_id} not found", param="id", value=source_id)
        return src

    def resolve(self, ref: Any, param: str = "source") -> Source:
        """A source named by id (int or digits) or by name."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            src = self._by_id.get(ref)
        elif isinstance(ref, str) and ref:
            src = self._by_name.get(ref) or (self._by_id.get(int(ref)) if ref.isdigit() else None)
        else:
            raise BadParam(f"{param} must be a source name or id", param=param, value=ref)
        if src is None:
            raise BadParam(f"unknown source {ref!r}: create it first (POST /sources)",
                           param=param, value=ref)
        return src

    def list(self, q: str | None, limit: int, offset: int) -> tuple[int, list[Source]]:
        """Sources whose name contains ``q`` (case-insensitive), by id; the total and one page."""
        found = sorted((s for s in self._by_id.values()
                        if q is None or q.lower() in s.name.lower()), key=lambda s: s.id)
        return len(found), found[offset:offset + limit]

    async def create(self, body: dict[str, Any]) -> Source:
        """Create a source from a JSON body ``{"name": ..., <settings>}``."""
        body = dict(body)
        name = check_name(body.pop("name", None))
        settings = _settings(body)
        now = _now_ms()
        async with self._lock:
            if name in self._by_name:
                raise Conflict(f"a source named {name!r} exists", param="name", value=name)
            async with self.db.begin() as conn:
                result = await conn.execute(sources.insert().values(
                    name=name, settings=settings.model_dump(), created_ms=now, updated_ms=now))
                new_id = int(result.inserted_primary_key[0])
            src = Source(id=new_id, name=name, settings=settings, created_ms=now, updated_ms=now)
            self._remember(src)
        log.info("persons: source %d %r created", src.id, name)
        return src

    async def update(self, source_id: int, body: dict[str, Any], *, partial: bool) -> Source:
        """Change a source's name and/or settings (``partial``: keys left out keep their value)."""
        async with self._lock:
            old = self.get(source_id)
            body = dict(body)
            name = check_name(body.pop("name")) if "name" in body else old.name
            base = old.settings.model_dump() if partial else {}
            settings = _settings({**base, **body})
            if name != old.name and name in self._by_name:
                raise Conflict(f"a source named {name!r} exists", param="name", value=name)
            now = _now_ms()
            async with self.db.begin() as conn:
                await conn.execute(sources.update().where(sources.c.id == source_id).values(
                    name=name, settings=settings.model_dump(), updated_ms=now))
            del self._by_name[old.name]
            src = Source(id=source_id, name=name, settings=settings, created_ms=old.created_ms,
                         updated_ms=now)
            self._remember(src)
        return src

    async def delete(self, source_id: int) -> None:
        """Remove a source (its entries stay, still naming its id)."""
        async with self._lock:
            old = self.get(source_id)
            async with self.db.begin() as conn:
                await conn.execute(sources.delete().where(sources.c.id == source_id))
            del self._by_name[old.name]
            del self._by_id[source_id]
        log.info("persons: source %d %r deleted", source_id, old.name)

    def all(self) -> list[Source]:
        """Every source."""
        return list(self._by_id.values())


def _settings(body: dict[str, Any]) -> SourceSettings:
    try:
        return SourceSettings.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _source(row: Any) -> Source:
    return Source(id=row["id"], name=row["name"], settings=SourceSettings.model_validate(
        row["settings"]), created_ms=row["created_ms"], updated_ms=row["updated_ms"])


def _now_ms() -> int:
    return int(time.time() * 1000)
