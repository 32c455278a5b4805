"""Writing an entry: its images (per the source's ``store_images_for_results``), its row, its
webhooks, and the counters of ``GET /status``."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from .entries import SEXES, EntryRepo, entry_json
from .gates import LIVENESS_UNDETERMINED
from .image_store import ImageStore
from .sources import Source
from .webhooks import EntryWebhooks

__all__ = ["NewEntry", "EntryWriter", "asm_of"]

log = logging.getLogger(__name__)


@dataclass
class NewEntry:
    """An entry about to be written."""

    id: int
    source: Source
    result: str
    ts_ms: int
    pid: str | None = None
    confidence: float | None = None
    asm: dict[str, Any] = field(default_factory=dict)
    face_size: float | None = None
    bbox: list[list[float]] | None = None
    cam_id: str | None = None
    images: dict[str, bytes] = field(default_factory=dict)


def asm_of(features: dict[str, Any]) -> dict[str, Any]:
    """Age, sex (0 male, 1 female) and mood (the top emotion) from sfapi's features."""
    out: dict[str, Any] = {"age": None, "sex": None, "mood": None}
    if isinstance(features.get("age"), (int, float)):
        out["age"] = int(features["age"])
    gender = features.get("gender")
    if isinstance(gender, dict) and gender.get("gender") in SEXES:
        out["sex"] = SEXES[gender["gender"]]
    emotions = features.get("emotions")
    if isinstance(emotions, list) and emotions and isinstance(emotions[0], dict):
        top = max(emotions, key=lambda e: e.get("score", 0))
        out["mood"] = top.get("emotion")
    return out


class EntryWriter:
    """Stores entries and tells the webhooks."""

    def __init__(self, entries: EntryRepo, images: ImageStore, webhooks: EntryWebhooks,
                 image_kinds: list[str], prefix: str) -> None:
        self.entries = entries
        self.images = images
        self.webhooks = webhooks
        self.image_kinds = image_kinds
        self.prefix = prefix
        self.by_result: Counter[str] = Counter()
        #: called with each entry's wire form once written (the router's event stream)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    async def write(self, e: NewEntry) -> dict[str, Any]:
        """Write one entry; returns its wire form."""
        keep = {kind: data for kind, data in e.images.items()
                if kind in self.image_kinds and data
                and e.result in e.source.settings.store_images_for_results}
        paths = await self.images.save(e.id, e.source.id, e.ts_ms, keep) if keep else {}
        row = {
            "id": e.id, "pid": e.pid, "result": e.result, "confidence": e.confidence,
            "age": e.asm.get("age"), "sex": e.asm.get("sex"), "mood": e.asm.get("mood"),
            "liveness": LIVENESS_UNDETERMINED, "source_id": e.source.id, "ts_ms": e.ts_ms,
            "face_size": e.face_size, "bbox": e.bbox, "cam_id": e.cam_id,
            "image_face": paths.get("face"), "image_photo": paths.get("photo"),
        }
        try:
            await self.entries.insert(row)
        except BaseException:
            if paths:
                await self.images.remove(list(paths.values()))
            raise
        self.by_result[e.result] += 1
        wire = entry_json(row, self.prefix, e.source.name)
        log.debug("persons: entry %d %s pid=%s confidence=%s source=%s", e.id, e.result, e.pid,
                  e.confidence, e.source.name)
        self.webhooks.publish(wire, keep)
        for listener in self.listeners:
            try:
                listener(wire)
            except Exception:
                log.exception("persons: an entry listener failed")
        return wire
