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
``license_id``                     the license the source is counted against, as in the
                                   reference (an id, int or string; ``license`` is the same
                                   field under the reference's other name). Stored and returned;
                                   it does not change processing
``spaces_ids``                     the spaces (ids) this source belongs to: a space groups
                                   sources, and ``spaces_ids`` on the source and entry lists
                                   selects the sources of those spaces
``image_retention_days``           days the entry images of this source are kept (null: the
                                   config's ``image_retention_days``; 0: forever; at most
                                   36500)
``entry_retention_days``           days the entries of this source (with their images) are kept
                                   (null: the config's ``entry_retention_days``; 0: forever)
=================================  ==============================================================

A stored source whose settings no longer validate (written by an older version) is loaded with
those settings at their defaults, and the problem is logged: one bad row never stops the plugin.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import (BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator,
                      model_validator)

from .errors import BadParam, Conflict, NotFound
from .storage import Database, sources

__all__ = ["SourceSettings", "Source", "SourceRepo", "validation_error"]

log = logging.getLogger(__name__)

Result = Literal["new", "reinit", "exact", "ha", "junk", "nm", "det"]
#: The longest retention a source may ask for (100 years); longer would overflow date arithmetic.
MAX_RETENTION_DAYS = 36500


class SourceSettings(BaseModel):
    """A source's settings (the body of create and update)."""

    model_config = ConfigDict(extra="forbid")

    license_id: str | None = None
    spaces_ids: list[StrictInt] = []
    image_retention_days: StrictInt | None = Field(None, ge=0, le=MAX_RETENTION_DAYS)
    entry_retention_days: StrictInt | None = Field(None, ge=0, le=MAX_RETENTION_DAYS)
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

    @field_validator("spaces_ids")
    @classmethod
    def _spaces(cls, value: list[int]) -> list[int]:
        if any(not 0 <= v < 1 << 63 for v in value):
            raise ValueError("space ids must be integers in 0..2^63-1")
        return sorted(set(value))

    @model_validator(mode="before")
    @classmethod
    def _license(cls, data: Any) -> Any:
        """``license`` (the reference's name) and ``license_id`` (its client's) are one field: an
        id, a non-negative integer or a string, kept as a string."""
        if not isinstance(data, dict) or ("license" not in data and "license_id" not in data):
            return data
        data = dict(data)
        given = {k: data.pop(k) for k in ("license", "license_id") if k in data}
        ids = {k: _license_id(k, v) for k, v in given.items()}
        if len(set(ids.values())) > 1:
            raise ValueError("license and license_id name different licenses; give one")
        data["license_id"] = next(iter(ids.values()))
        return data


def _license_id(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63:
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 255 and value.isprintable():
        return value
    raise ValueError(f"{name} must be a license id: an integer in 0..2^63-1 or a non-empty "
                     f"printable string (it is not a number of days: see image_retention_days)")


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
        settings = self.settings.model_dump()
        return {"id": self.id, "name": self.name, **settings, "license": settings["license_id"],
                "created": from_ms(self.created_ms), "updated": from_ms(self.updated_ms)}


def validation_error(exc: ValidationError, prefix: str = "") -> BadParam:
    """The first problem of a pydantic error as a BadParam naming the field."""
    err = exc.errors()[0]
    param = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix or "body"
    value = err.get("input")
    if not err["loc"] and "license" in err["msg"]:
        param, value = "license_id", None
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

    def list(self, q: str | None, limit: int, offset: int,
             spaces_ids: list[int] | None = None) -> tuple[int, list[Source]]:
        """Sources whose name contains ``q`` (case-insensitive) and, with ``spaces_ids``, that
        belong to one of those spaces, by id; the total and one page."""
        spaces = None if spaces_ids is None else set(spaces_ids)
        found = sorted((s for s in self._by_id.values()
                        if (q is None or q.lower() in s.name.lower())
                        and (spaces is None or spaces & set(s.settings.spaces_ids))),
                       key=lambda s: s.id)
        return len(found), found[offset:offset + limit]

    def in_spaces(self, spaces_ids: Any) -> list[int]:
        """The ids of the sources that belong to any of these spaces."""
        spaces = set(spaces_ids)
        return sorted(s.id for s in self._by_id.values() if spaces & set(s.settings.spaces_ids))

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
            if "license" in body or "license_id" in body:  # either name replaces the stored id
                base.pop("license_id", None)
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
    for key in ("license", "license_id"):
        if key in body:
            try:
                _license_id(key, body[key])
            except ValueError as exc:
                raise BadParam(str(exc), param=key, value=body[key]) from None
    try:
        return SourceSettings.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _source(row: Any) -> Source:
    return Source(id=row["id"], name=row["name"], settings=stored_settings(row["id"], row["settings"]),
                  created_ms=row["created_ms"], updated_ms=row["updated_ms"])


def stored_settings(source_id: int, stored: Any) -> SourceSettings:
    """The settings of a stored row; the ones that no longer validate fall back to their
    defaults (logged), so one bad row never stops loading the others."""
    data = dict(stored) if isinstance(stored, dict) else {}
    for _ in range(len(data) + 1):
        try:
            return SourceSettings.model_validate(data)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]} or \
                {k for k in ("license", "license_id") if k in data}
            bad &= set(data)
            if not bad:
                break
            log.warning("persons: source %d: stored settings %s are invalid (%s); using their "
                        "defaults", source_id, ", ".join(sorted(bad)), exc.errors()[0]["msg"])
            for key in bad:
                data.pop(key)
    return SourceSettings()


def _now_ms() -> int:
    return int(time.time() * 1000)
