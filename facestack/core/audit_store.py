"""The audit log in a database: one table (``persons_audit``) that every service can write to.

The router with the persons plugin writes to the persons database. sfapi and the video worker write
there too when their config says so (``audit: {database_url: <the persons database URL>}``), so
``GET /v1/audit`` shows the writes of all three services (column ``service``). Records are queued
by the request path (never awaited there) and inserted in order, in batches, by one task; rows are
only ever inserted.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

import sqlalchemy as sa
from aiohttp import web
from pydantic import field_validator
from sqlalchemy.ext.asyncio import create_async_engine

from facestack.core.audit import AuditRecord, Auditor
from facestack.core.configfile import StrictModel

__all__ = ["AuditStoreConfig", "AuditWriter", "audit", "audit_metadata", "attach"]

log = logging.getLogger(__name__)

audit_metadata = sa.MetaData()

audit = sa.Table(
    "persons_audit", audit_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("service", sa.String(32), nullable=False),
    sa.Column("token", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("route", sa.String(512), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("object_id", sa.String(256), nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.String(1024), nullable=True),
    sa.Index("ix_persons_audit_ts", "ts_ms"),
)


class AuditStoreConfig(StrictModel):
    """``audit`` section of sfapi and the video worker: where audit records are also stored."""

    #: SQLAlchemy async URL of the persons database (sqlite+aiosqlite:/// or postgresql+asyncpg://);
    #: empty: JSON log lines only
    database_url: str = ""

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


def _row(rec: AuditRecord) -> dict[str, Any]:
    return {k: v for k, v in rec.__dict__.items()}


class AuditWriter:
    """Queues records (:meth:`sink`, sync) and inserts them from one task. ``db`` has ``begin()``
    and ``connect()`` (an AsyncEngine, or the persons plugin's Database)."""

    def __init__(self, db: Any, queue_size: int = 10000) -> None:
        self.db = db
        self.queue: asyncio.Queue[AuditRecord] = asyncio.Queue(queue_size)
        self.lost = 0
        self._task: asyncio.Task[None] | None = None

    def sink(self, rec: AuditRecord) -> None:
        """The :class:`facestack.core.audit.Auditor` sink (on the event loop)."""
        try:
            self.queue.put_nowait(rec)
        except asyncio.QueueFull:
            self.lost += 1
            log.error("audit queue full; record of %s %s kept in the log only", rec.method, rec.path)

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="audit-writer")

    async def _writer(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 500:
                batch.append(self.queue.get_nowait())
            try:
                async with self.db.begin() as conn:
                    await conn.execute(audit.insert(), [_row(r) for r in batch])
            except Exception:  # noqa: BLE001 - the JSON log lines still have them
                self.lost += len(batch)
                log.exception("%d audit record(s) not stored", len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def flush(self) -> None:
        """Wait until every queued record is stored."""
        if self._task is not None:
            await self.queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            try:
                await asyncio.wait_for(self.queue.join(), 5)
            except TimeoutError:
                log.warning("%d audit record(s) not stored at shutdown", self.queue.qsize())
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def query(self, filters: dict[str, Any], since_ms: int | None, until_ms: int | None,
                    after_id: int | None, limit: int) -> list[dict[str, Any]]:
        """Records, oldest first, matching every filter (keyset paging by ``after_id``)."""
        await self.flush()
        q = sa.select(audit).order_by(audit.c.id).limit(limit)
        for key, value in filters.items():
            q = q.where(audit.c[key] == value)
        if since_ms is not None:
            q = q.where(audit.c.ts_ms >= since_ms)
        if until_ms is not None:
            q = q.where(audit.c.ts_ms < until_ms)
        if after_id is not None:
            q = q.where(audit.c.id > after_id)
        async with self.db.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [dict(r._mapping) for r in rows]


def attach(app: web.Application, auditor: Auditor, cfg: AuditStoreConfig) -> None:
    """Store ``auditor``'s records in ``cfg.database_url`` for the life of the aiohttp ``app``."""
    if not cfg.database_url:
        return

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        kwargs: dict[str, Any] = ({"connect_args": {"timeout": 30}}
                                  if cfg.database_url.startswith("sqlite") else {"pool_pre_ping": True})
        engine = create_async_engine(cfg.database_url, **kwargs)
        async with engine.begin() as conn:
            await conn.run_sync(audit_metadata.create_all)
        writer = AuditWriter(engine)
        writer.start()
        auditor.sinks.append(writer.sink)
        try:
            yield
        finally:
            auditor.sinks.remove(writer.sink)
            await writer.stop()
            await engine.dispose()

    app.cleanup_ctx.append(lifecycle)
