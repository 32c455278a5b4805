"""``archive``: add every face to a gallery, so "where was this person seen" is a gallery search.

Each face is stored with id ``event_id`` and meta ``cam_id`` (string), ``ts`` (int, Unix seconds of
the frame), ``bs_type`` (string) and the chosen labels (strings). At start the gallery is created
with that meta schema if it does not exist yet. Config (``archive:`` section)::

    archive:
      gallery: archive          # gallery name
      features: [gender, age]   # stored with the face besides the facen
      labels: [site]            # label keys kept as meta (each a string)
      retention_days: 30        # faces older than this (by their frame's ts) are removed; 0: never

Retention runs every ``retention_interval_s`` (and once at start): faces whose ``ts`` is older than
``retention_days`` are deleted from the gallery, a page at a time.

Find where a person was seen (a detection of their face, ``det``)::

    hits = await sfapi["archive"].list(
        filters=[filters.Detection(det, 0.7), filters.Meta("ts").gte(since)], limit=100)
    places = [(h.meta["cam_id"], h.meta["ts"], h.confidence) for h in hits]
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest
from sfapi.client import SFApiError, SFApiRemoteError, filters

log = logging.getLogger(__name__)

RESERVED_META = ("cam_id", "ts", "bs_type")


class ArchiveConfig(BaseModel):
    """The ``archive:`` section."""

    model_config = ConfigDict(extra="forbid")

    gallery: str = Field("archive", min_length=1)
    features: list[Literal["gender", "age", "emotions"]] = []
    labels: list[str] = []
    #: create the gallery (with the meta schema) at start when it is missing
    create_gallery: bool = True
    #: days a face is kept, by its frame's ``ts`` (0: forever)
    retention_days: int = Field(0, ge=0, le=36500)
    retention_interval_s: float = Field(3600.0, gt=0)

    @field_validator("labels")
    @classmethod
    def _not_reserved(cls, value: list[str]) -> list[str]:
        for key in value:
            if key in RESERVED_META:
                raise ValueError(f"label {key!r} clashes with the meta key of the same name")
        return value


config_model = ArchiveConfig


class Archive:
    """Adds each face to the configured gallery (plugin object made by :func:`activate`)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.config: ArchiveConfig = ctx.config
        self.gallery = ctx.sfapi[self.config.gallery]
        self._ready = not self.config.create_gallery
        self._lock = asyncio.Lock()
        self._retention: asyncio.Task[None] | None = None
        #: faces removed by retention since start
        self.expired = 0

    def meta_schema(self) -> dict[str, str]:
        """Meta keys and types of the gallery."""
        schema = {"cam_id": "string", "ts": "int", "bs_type": "string"}
        schema.update({key: "string" for key in self.config.labels})
        return schema

    async def ensure_gallery(self) -> None:
        """Create the gallery with its meta schema unless it exists (once per process)."""
        async with self._lock:
            if self._ready:
                return
            await self.gallery.create(timeout=5.0, meta_schema=self.meta_schema(), exist_ok=True)
            log.info("archive: gallery %s ready", self.config.gallery)
            self._ready = True

    async def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Every face: facen plus the configured features."""
        return ("facen", *self.config.features)

    async def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]],
                      event_id: int, detection: DetectFace) -> None:
        """Store the face under ``event_id`` with its meta."""
        if not self._ready:
            await self.ensure_gallery()
        params = request.params
        meta: dict[str, Any] = {"cam_id": params.cam_id, "ts": int(params.timestamp.timestamp()),
                                "bs_type": params.bs_type}
        meta.update({key: params.labels[key] for key in self.config.labels if key in params.labels})
        await self.gallery.add(event_id, detection, meta=meta)

    def start_retention(self) -> None:
        """Start the periodic retention task (with ``retention_days``)."""
        if self.config.retention_days and self._retention is None:
            self._retention = asyncio.create_task(self._retention_loop(), name="archive-retention")

    async def _retention_loop(self) -> None:
        while True:
            try:
                removed = await self.expire_once()
                if removed:
                    log.info("archive: retention removed %d face(s)", removed)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed pass must not stop the job
                log.exception("archive: retention pass failed")
            await asyncio.sleep(self.config.retention_interval_s)

    async def expire_once(self, now: float | None = None) -> int:
        """Delete the faces older than ``retention_days``; returns how many."""
        if not self.config.retention_days:
            return 0
        cutoff = int((time.time() if now is None else now) - self.config.retention_days * 86400)
        removed = 0
        while True:
            try:
                hits = await self.gallery.list(filters=[filters.Meta("ts").lte(cutoff - 1)], limit=1000)
            except SFApiRemoteError as exc:
                if exc.code in ("NOT_FOUND", "GALLERY_NOT_FOUND"):
                    return removed
                raise
            if not hits:
                return removed
            for hit in hits:
                try:
                    await self.gallery.delete(hit.id.face)
                    removed += 1
                except SFApiRemoteError as exc:
                    if exc.code not in ("NOT_FOUND", "FACE_NOT_FOUND"):
                        raise
            self.expired += len(hits)

    async def shutdown(self) -> None:
        """Stop retention (the sfapi client belongs to the router)."""
        if self._retention is not None:
            self._retention.cancel()
            await asyncio.gather(self._retention, return_exceptions=True)


async def activate(app: Any, ctx: Any, plugin_name: str, plugin_source: str) -> Archive:
    """Build the plugin and try to create its gallery (retried at the first face if sfapi is down)."""
    plugin = Archive(ctx)
    if not plugin._ready:
        try:
            await plugin.ensure_gallery()
        except SFApiError as exc:
            log.warning("archive: cannot create gallery %s yet (%s); will retry at the first face",
                        ctx.config.gallery, exc)
    plugin.start_retention()
    return plugin
