"""Entry images on disk, and the periodic job that removes them after their retention time.

Files are ``<images_dir>/<source id>/<YYYY-MM-DD>/<entry id>_<face|photo>.jpg`` (UTC date of the
entry); the entry row keeps the path relative to ``images_dir``. Every file operation runs in the
default executor, never on the event loop.

Retention: a source's ``image_retention_days`` is the number of days its entries keep their
images; without it, the config's ``image_retention_days`` applies; 0 keeps them forever. (The
source's ``license`` / ``license_id`` is the reference's license id and plays no part.) The job runs
every ``retention_interval_s`` (and once at start), deleting the files and clearing the entry's
image paths. A source's ``entry_retention_days`` (else the config's, 0: forever) removes whole
entries, with their images, in the same pass. Each source is expired on its own: a failure with one
(logged with its id) does not stop the pass for the others.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import time
from pathlib import Path
from typing import Any, Callable

from .entries import EntryRepo
from .sources import SourceRepo

__all__ = ["ImageStore", "RetentionJob"]

log = logging.getLogger(__name__)
_DAY_MS = 86_400_000


def _cutoff(now_ms: int, days: int) -> int:
    """Unix ms before which images expire (never before the epoch, whatever ``days`` is)."""
    return max(now_ms - int(days) * _DAY_MS, 0)


class ImageStore:
    """Reads and writes entry images under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def save(self, entry_id: int, source_id: int, ts_ms: int,
                   parts: dict[str, bytes]) -> dict[str, str]:
        """Write the images of one entry; returns kind -> path relative to the root."""
        day = datetime.datetime.fromtimestamp(ts_ms / 1000, datetime.timezone.utc).date()
        rel_dir = Path(str(source_id)) / day.isoformat()
        paths = {kind: str(rel_dir / f"{entry_id}_{kind}.jpg") for kind in parts}
        await self._run(self._write, rel_dir, {paths[k]: data for k, data in parts.items()})
        return paths

    def _write(self, rel_dir: Path, files: dict[str, bytes]) -> None:
        (self.root / rel_dir).mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            tmp = self.root / (rel + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.root / rel)

    def _path(self, rel: str) -> Path:
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"image path {rel!r} leaves the images directory")
        return path

    async def read(self, rel: str) -> bytes | None:
        """The bytes of an image, or ``None`` when its file is gone."""
        def read() -> bytes | None:
            try:
                return self._path(rel).read_bytes()
            except FileNotFoundError:
                return None
        result: bytes | None = await self._run(read)
        return result

    async def remove(self, rels: list[str]) -> int:
        """Delete image files (missing ones are skipped) and empty day folders; returns count."""
        def remove() -> int:
            removed = 0
            parents = set()
            for rel in rels:
                path = self._path(rel)
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                parents.add(path.parent)
            for parent in parents:
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    pass
            return removed
        count: int = await self._run(remove)
        return count


class RetentionJob:
    """Removes expired entry images, periodically, as a background task."""

    def __init__(self, images: ImageStore, entries: EntryRepo, sources: SourceRepo,
                 default_days: int, interval_s: float, default_entry_days: int = 0) -> None:
        self.default_entry_days = default_entry_days
        #: entries removed (all passes)
        self.entries_removed = 0
        self.images = images
        self.entries = entries
        self.sources = sources
        self.default_days = default_days
        self.interval_s = interval_s
        self.removed = 0
        #: sources whose expiry failed in the last pass
        self.failed_sources: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the periodic task."""
        self._task = asyncio.create_task(self._loop(), name="persons-retention")

    async def stop(self) -> None:
        """Stop the periodic task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                removed = await self.run_once()
                self.removed += removed
                if removed:
                    log.info("persons: retention removed %d image file(s)", removed)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed run must not stop the job
                log.exception("persons: image retention run failed")
            await asyncio.sleep(self.interval_s)

    async def run_once(self, now_ms: int | None = None) -> int:
        """One pass over every source; returns the number of files removed."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        explicit = [s for s in self.sources.all() if s.settings.image_retention_days is not None]
        removed = 0
        self.failed_sources = []
        for src in explicit:
            days = src.settings.image_retention_days
            if not days:
                continue
            try:
                removed += await self._expire([src.id], _cutoff(now_ms, days), exclude=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one source's failure must not stop the others
                self.failed_sources.append(src.id)
                log.exception("persons: image retention failed for source %d", src.id)
        if self.default_days:
            removed += await self._expire([s.id for s in explicit],
                                          _cutoff(now_ms, self.default_days), exclude=True)
        removed += await self._expire_entries(now_ms)
        return removed

    async def _expire_entries(self, now_ms: int) -> int:
        """Whole entries past their source's ``entry_retention_days``; returns files removed."""
        explicit = [s for s in self.sources.all() if s.settings.entry_retention_days is not None]
        plan = [([s.id], s.settings.entry_retention_days, False) for s in explicit]
        plan.append(([s.id for s in explicit], self.default_entry_days, True))
        removed = 0
        for ids, days, exclude in plan:
            if not days:
                continue
            try:
                while True:
                    rows = await self.entries.older_than(ids, _cutoff(now_ms, days), exclude=exclude)
                    if not rows:
                        break
                    removed += await self.images.remove(
                        [r[k] for r in rows for k in ("image_face", "image_photo") if r[k]])
                    await self.entries.delete_ids([r["id"] for r in rows])
                    self.entries_removed += len(rows)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one source's failure must not stop the others
                self.failed_sources.extend(ids if not exclude else [])
                log.exception("persons: entry retention failed for sources %s%s", ids,
                              " (all but these)" if exclude else "")
        return removed

    async def _expire(self, source_ids: list[int], before_ms: int, *, exclude: bool) -> int:
        removed = 0
        while True:
            rows = await self.entries.with_images_before(source_ids, before_ms, exclude=exclude)
            if not rows:
                return removed
            rels = [r[k] for r in rows for k in ("image_face", "image_photo") if r[k]]
            removed += await self.images.remove(rels)
            await self.entries.clear_images([r["id"] for r in rows])
