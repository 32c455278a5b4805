"""One event per post, however often it is delivered: the router's idempotency-key store.

A sender names each post with an ``Idempotency-Key`` header (the video worker does:
``<job id>:<run id>:<track>:<sequence>``). For each key the router keeps, in SQLite:

* the ``event_id`` it gave the post the first time (so every delivery of the post gets the same
  one), and
* the answer, once the post went through the plugins.

A delivery of a key whose answer is stored is answered with that answer plus ``"duplicate": true``
and never reaches the plugins again. A key seen before without an answer (the router or a plugin
failed, or the router died, while handling it) is handled again with the same ``event_id`` and
``request.redelivered`` set: a plugin that stores something should store it under ``event_id``
(e.g. as the gallery face id, or a unique column) so a redelivery does not store it twice.

Deliveries of one key are handled one at a time within a router. The store is bounded
(``idempotency.max_keys``: the oldest keys are forgotten first) and survives restarts (a file,
WAL journal). SQLite calls run on one thread of their own, never on the event loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TypeVar

from facerouter.errors import FacerouterError

__all__ = ["Claim", "EventStore", "EventStoreError"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    event_id INTEGER NOT NULL,
    answer TEXT
)
"""


class EventStoreError(FacerouterError):
    """The store cannot be read or written (answered 503: the sender retries)."""


@dataclass(frozen=True)
class Claim:
    """What the store knows of a key: its ``event_id``, the stored ``answer`` (None until the post
    went through), and whether the key was ``seen`` before this delivery."""

    event_id: int
    answer: dict[str, Any] | None
    seen: bool


class EventStore:
    """Keys seen, their event ids and answers.

    Args:
        path: the SQLite file (its directory is created); ``None``: in memory (forgotten at exit).
        max_keys: keys kept; past it (plus 10 %) the oldest are deleted.
    """

    def __init__(self, path: Path | None, max_keys: int) -> None:
        self.path = path
        self.max_keys = max_keys
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="facerouter-events")
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except sqlite3.Error as exc:
            raise EventStoreError(f"event store {self.path or ':memory:'}: {exc}") from exc

    async def open(self) -> None:
        """Open (or create) the store."""

        def open_db() -> None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path) if self.path is not None else ":memory:",
                                 check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(_SCHEMA)
            self._count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            self._db = db

        try:
            await self._run(open_db)
        except OSError as exc:
            raise EventStoreError(f"event store {self.path}: {exc}") from exc
        log.info("event store %s: %d keys", self.path or ":memory:", self._count)

    async def close(self) -> None:
        """Close the store (idempotent)."""
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)
        self._pool.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` while one delivery of it is handled (another waits its turn)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def claim(self, key: str, new_id: int) -> Claim:
        """The key's event id (``new_id`` when it is new) and its stored answer, if any."""

        def claim_db() -> Claim:
            db = self._db
            if db is None:
                raise sqlite3.ProgrammingError("the event store is closed")
            cur = db.execute("INSERT OR IGNORE INTO events (key, event_id) VALUES (?, ?)",
                             (key, new_id))
            if cur.rowcount == 1:
                self._count += 1
                if self._count > self.max_keys * 1.1:
                    self._prune(db)
                return Claim(new_id, None, False)
            event_id, answer = db.execute("SELECT event_id, answer FROM events WHERE key = ?",
                                          (key,)).fetchone()
            return Claim(int(event_id), json.loads(answer) if answer else None, True)

        return await self._run(claim_db)

    async def done(self, key: str, answer: dict[str, Any]) -> None:
        """Store the answer of ``key``: later deliveries get it without reaching the plugins."""
        text = json.dumps(answer)

        def done_db() -> None:
            if self._db is None:
                raise sqlite3.ProgrammingError("the event store is closed")
            self._db.execute("UPDATE events SET answer = ? WHERE key = ?", (text, key))

        await self._run(done_db)

    def _prune(self, db: sqlite3.Connection) -> None:
        extra = self._count - self.max_keys
        db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                   (extra,))
        self._count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        log.info("event store: %d oldest keys forgotten (max_keys %d)", extra, self.max_keys)
