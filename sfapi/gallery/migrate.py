"""Copy a gallery from one gallery backend to another (embedded -> Milvus and back).

The copy reads the source in id order, one page of ``batch`` faces at a time, and writes each page
to the target in one bulk add. It can be interrupted and run again: the gallery is created on the
target only when missing (with the same meta schema, else it stops), and faces already there are
skipped, so a second run finishes the copy. Faces added to the source while it runs are copied
when their id is past the page being read; a final run catches the rest. Progress goes to a
callback (the ``sfapi gallery migrate`` command logs it).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from sfapi.config import GalleryConfig
from sfapi.errors import BadParam, GalleryNotFound
from sfapi.gallery.backend import GalleryBackend
from sfapi.gallery.types import MAX_LIMIT, Cursor, FaceRecord, IdFilter, Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """Where a copy stands: faces read from the source, written to the target, skipped (already
    there), the source's size when the copy started, and seconds since it started."""

    gallery: str
    read: int
    written: int
    skipped: int
    total: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.read / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressFn = Callable[[Progress], None]


def log_progress(p: Progress) -> None:
    """The default progress report: one log line per batch."""
    pct = 100.0 * p.read / p.total if p.total else 100.0
    log.info("gallery %s: %d/%d faces read (%.1f%%), %d written, %d already there, %.0f faces/s",
             p.gallery, p.read, p.total, pct, p.written, p.skipped, p.rate)


async def migrate_gallery(source: GalleryBackend, target: GalleryBackend, gallery: str, *,
                          batch: int = 1000, progress: ProgressFn | None = log_progress) -> Progress:
    """Copy ``gallery`` from ``source`` to ``target`` (both open); returns the final progress."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_LIMIT:
        raise BadParam("batch", batch, f"batch is an integer in 1..{MAX_LIMIT}")
    schema = await source.schema(gallery)
    total = next((g.number for g in await source.list_galleries() if g.name == gallery), 0)
    try:
        have = await target.schema(gallery)
    except GalleryNotFound:
        await target.create_gallery(gallery, schema)
        log.info("gallery %s: created on the target with schema %s", gallery, schema)
    else:
        if have != schema:
            raise BadParam("schema", have, f"gallery {gallery!r} exists on the target with another meta schema "
                           f"({have} != {schema})")
    start = time.monotonic()
    read = written = skipped = 0
    after: Cursor | None = None
    while True:
        res = await source.search(gallery, Query(sort="id", limit=batch, after=after))
        records = [h.record for h in res.hits]
        if records:
            fresh = await _missing(target, gallery, records)
            if fresh:
                await _add_all(target, gallery, fresh)
            read += len(records)
            written += len(fresh)
            skipped += len(records) - len(fresh)
            state = Progress(gallery, read, written, skipped, max(total, read), time.monotonic() - start)
            if progress is not None:
                progress(state)
        if res.next_page is None:
            flush = getattr(target, "flush", None)
            if flush is not None and written:  # index what was copied (Milvus)
                await flush(gallery)
            return Progress(gallery, read, written, skipped, max(total, read), time.monotonic() - start)
        after = res.next_page


async def _missing(target: GalleryBackend, gallery: str, records: Sequence[FaceRecord]) -> list[FaceRecord]:
    """The records whose ids the target gallery does not hold yet."""
    ids = tuple(r.id for r in records)
    res = await target.search(gallery, Query(ids=(IdFilter("oneof", ids),), limit=len(ids)))
    present = {h.record.id for h in res.hits}
    return [r for r in records if r.id not in present]


async def _add_all(target: GalleryBackend, gallery: str, records: list[FaceRecord]) -> None:
    """One bulk write where the backend has one (``add_many``), else concurrent adds."""
    add_many = getattr(target, "add_many", None)
    if add_many is not None:
        await add_many(gallery, records)
        return
    await asyncio.gather(*(target.add(gallery, r) for r in records))


async def run_migration(cfg: GalleryConfig, source: str, target: str, galleries: Sequence[str], *,
                        batch: int = 1000, progress: ProgressFn | None = log_progress) -> list[Progress]:
    """Open the ``source`` and ``target`` backends (``embedded`` | ``milvus``) configured by
    ``cfg``, copy each gallery, close both. What ``sfapi gallery migrate`` runs."""
    from sfapi.gallery.factory import create_backend

    src = create_backend(cfg.model_copy(update={"backend": source}))
    dst = create_backend(cfg.model_copy(update={"backend": target}))
    await src.open()
    try:
        await dst.open()
        try:
            out = []
            for name in galleries:
                done = await migrate_gallery(src, dst, name, batch=batch, progress=progress)
                log.info("gallery %s: copied from %s to %s: %d faces written, %d already there, %.1f s",
                         name, source, target, done.written, done.skipped, done.elapsed_s)
                out.append(done)
            return out
        finally:
            await dst.close()
    finally:
        await src.close()
