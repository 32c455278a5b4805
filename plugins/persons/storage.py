"""The database: table definitions and the async engine (SQLite or PostgreSQL, one code path).

SQLAlchemy Core with its asyncio extension: ``sqlite+aiosqlite://`` (default; WAL mode, a busy
timeout so concurrent writers wait instead of failing) or ``postgresql+asyncpg://``. The tables are
created at start when missing (no migrations yet: the schema is version 1, recorded in ``settings``).

Times are stored as integer Unix milliseconds (``*_ms``) so that both databases compare and group
them the same way; each entry also keeps its UTC ``hour`` and ``dow`` (0 = Monday) for statistics.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from facestack.core.audit_store import audit as _audit_table

__all__ = ["metadata", "sources", "persons", "entries", "settings", "tokens", "audit", "Database", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

metadata = sa.MetaData()

sources = sa.Table(
    "persons_sources", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

persons = sa.Table(
    "persons_persons", metadata,
    sa.Column("pid", sa.String(36), primary_key=True),
    sa.Column("face_id", sa.BigInteger, nullable=False),
    sa.Column("source_id", sa.Integer, nullable=True),
    sa.Column("entry_id", sa.BigInteger, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_persons_persons_created", "created_ms"),
)

entries = sa.Table(
    "persons_entries", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("pid", sa.String(36), nullable=True),
    sa.Column("result", sa.String(8), nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("age", sa.Integer, nullable=True),
    sa.Column("sex", sa.SmallInteger, nullable=True),
    sa.Column("mood", sa.String(16), nullable=True),
    sa.Column("liveness", sa.String(16), nullable=False),
    sa.Column("source_id", sa.Integer, nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("hour", sa.SmallInteger, nullable=False),
    sa.Column("dow", sa.SmallInteger, nullable=False),
    sa.Column("face_size", sa.Float, nullable=True),
    sa.Column("bbox", sa.JSON, nullable=True),
    sa.Column("cam_id", sa.String(1024), nullable=True),
    sa.Column("image_face", sa.String(512), nullable=True),
    sa.Column("image_photo", sa.String(512), nullable=True),
    sa.Index("ix_persons_entries_pid", "pid", "id"),
    sa.Index("ix_persons_entries_source_ts", "source_id", "ts_ms"),
    sa.Index("ix_persons_entries_ts", "ts_ms"),
    sa.Index("ix_persons_entries_result", "result", "id"),
)

#: API tokens (``facestack token``): only the SHA-256 of each secret is kept
tokens = sa.Table(
    "persons_tokens", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=True),
    sa.Column("revoked_ms", sa.BigInteger, nullable=True),
)

#: the audit log (:mod:`facestack.core.audit_store`; sfapi and the video worker may write here too)
audit = _audit_table.to_metadata(metadata)

settings = sa.Table(
    "persons_settings", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
)


class Database:
    """The engine and schema set-up. ``await open()`` once, ``await close()`` at shutdown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = url.split("+", 1)[0]
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (set by :meth:`open`)."""
        assert self._engine is not None, "Database.open() was not called"
        return self._engine

    async def open(self) -> None:
        """Create the engine and the tables that are missing."""
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self._engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await _record_version(conn)
        log.info("persons: database %s ready", _safe_url(self.url))

    def connect(self) -> Any:
        """``async with db.connect() as conn`` (no transaction)."""
        return self.engine.connect()

    def begin(self) -> Any:
        """``async with db.begin() as conn``: one transaction, committed on success."""
        return self.engine.begin()

    async def close(self) -> None:
        """Dispose of the connection pool."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def _record_version(conn: AsyncConnection) -> None:
    found = (await conn.execute(sa.select(settings.c.value).where(
        settings.c.key == "schema_version"))).scalar_one_or_none()
    if found is None:
        await conn.execute(settings.insert().values(key="schema_version", value=SCHEMA_VERSION))
    elif found != SCHEMA_VERSION:
        raise RuntimeError(f"persons database has schema version {found}; this code needs "
                           f"{SCHEMA_VERSION}")


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a log line
        return url.split("@")[-1]
