"""The job store: camera jobs and the workers running them, in a database the workers share.

One small interface, two engines through SQLAlchemy Core's asyncio extension: SQLite
(``sqlite+aiosqlite:///<state_dir>/jobs.db``, the default: one worker) or PostgreSQL
(``postgresql+asyncpg://...``: a fleet of workers on any number of machines). No consensus code of
our own: the database's row locks and its clock are the only arbiter.

* ``vw_jobs``: the job's definition (``spec``: stream_url, labels, router_url, single_pass,
  settings), its desired state (``run`` or ``deleted``: a tombstone, see the YAML rule in
  :mod:`video_worker.manager`), ``version`` (bumped by every change of the definition and every
  restart request), where it comes from (``from_config``, ``config_def``: the hash of the YAML
  definition last seeded, ``seeded_by``), its lease (``owner``, ``epoch``, ``lease_ms``) and what
  its owner last reported (``state``, ``status_msg``, ``counters``, ``last_error``; ``done`` once a
  ``single_pass`` job read its stream to the end).
* ``vw_workers``: each worker's id, API address, capacity (max cameras) and last heartbeat.

Leases: a worker claims a job whose lease is free (no owner, or expired) in one transaction
(PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers never wait on or take the same
row; SQLite: ``BEGIN IMMEDIATE``, one writer at a time). Every claim bumps the job's ``epoch`` (the
fencing token) and sets ``lease_ms`` to the database's clock plus the lease. The owner renews its
leases with every heartbeat (``owner`` and ``epoch`` must still match); a renewal that matches
nothing means another worker holds the job now. Times are the database's clock in Unix
milliseconds, so the workers' clocks never need to agree.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["JobStore", "JobRow", "WorkerRow", "Report", "spec_hash", "safe_url"]

log = logging.getLogger(__name__)

metadata = sa.MetaData()

jobs_t = sa.Table(
    "vw_jobs", metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("desired", sa.String(8), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("from_config", sa.Boolean, nullable=False),
    sa.Column("config_def", sa.String(64), nullable=True),
    sa.Column("seeded_by", sa.String(128), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("lease_ms", sa.BigInteger, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status_msg", sa.Text, nullable=False),
    sa.Column("counters", sa.JSON, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_vw_jobs_owner", "owner"),
)

workers_t = sa.Table(
    "vw_workers", metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("url", sa.String(1024), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("left", sa.Boolean, nullable=False),
)


def spec_hash(spec: dict[str, Any]) -> str:
    """A stable hash of a job definition (the YAML rule compares them)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def safe_url(url: str) -> str:
    """``url`` without its password (for logs)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the engine itself
        return "<job store url>"


@dataclass
class JobRow:
    """One row of ``vw_jobs``."""

    id: str
    spec: dict[str, Any]
    desired: str
    version: int
    from_config: bool
    config_def: str | None
    seeded_by: str | None
    owner: str | None
    epoch: int
    lease_ms: int
    done: bool
    state: str
    status_msg: str
    counters: dict[str, Any] | None
    last_error: str | None
    updated_ms: int
    #: the database's clock when the row was read
    now_ms: int = 0

    @property
    def leased(self) -> bool:
        """Whether a worker holds the job now."""
        return self.owner is not None and self.lease_ms >= self.now_ms


@dataclass
class WorkerRow:
    """One row of ``vw_workers`` with its load (jobs it holds a lease on, finished ones aside)."""

    id: str
    url: str
    capacity: int
    heartbeat_ms: int
    started_ms: int
    left: bool
    load: int = 0
    now_ms: int = 0

    def alive(self, lease_s: float) -> bool:
        return not self.left and self.now_ms - self.heartbeat_ms <= lease_s * 1000


@dataclass
class Report:
    """What an owner tells the store about one of its jobs at each heartbeat."""

    id: str
    epoch: int
    state: str
    status_msg: str
    counters: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    done: bool = False
    #: the job version the reporting run was started from: a run's end does not mark a later
    #: version (a restart or an edit that came meanwhile) as done. None: any version
    version: int | None = None


class JobStore:
    """The shared job store. ``await open()`` once, ``await close()`` at shutdown. Every method is
    one transaction; a database error propagates (SQLAlchemy's, ``OSError``, ``TimeoutError``)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.dialect = sa.engine.make_url(url).get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"job store: {self.dialect} is not supported (sqlite or postgresql)")
        self.timeout_s = timeout_s
        self._engine: AsyncEngine | None = None
        if self.dialect == "sqlite":
            self._now: Any = sa.literal_column(
                "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)", sa.BigInteger)
        else:
            self._now = sa.literal_column(
                "CAST(extract(epoch from clock_timestamp()) * 1000 AS BIGINT)", sa.BigInteger)

    # --- set-up --------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the engine and the tables that are missing."""
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = sa.engine.make_url(self.url).database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # a connection that fails is thrown away (pre-ping), a dead server fails fast
            kwargs.update(pool_pre_ping=True, pool_size=4, max_overflow=4, pool_timeout=self.timeout_s,
                          connect_args={"timeout": self.timeout_s, "command_timeout": self.timeout_s})
        self._engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_connect)
            sa.event.listen(self._engine.sync_engine, "begin", _sqlite_begin)
        async with self._engine.begin() as conn:
            if self.dialect == "postgresql":  # workers starting together create the tables once
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7306482651)"))
            await conn.run_sync(metadata.create_all)
        log.info("job store %s ready", safe_url(self.url))

    @property
    def opened(self) -> bool:
        return self._engine is not None

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _begin(self) -> Any:
        assert self._engine is not None, "JobStore.open() was not called"
        return self._engine.begin()

    async def _now_ms(self, conn: AsyncConnection) -> int:
        return int((await conn.execute(sa.select(self._now))).scalar_one())

    # --- job definitions -----------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRow | None:
        """The job ``job_id`` (tombstones too), or None."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            row = (await conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id))).mappings().first()
            return _job(row, now) if row is not None else None

    async def list(self) -> list[JobRow]:
        """Every job that is not deleted, by id."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            rows = (await conn.execute(sa.select(jobs_t).where(jobs_t.c.desired == "run")
                                       .order_by(jobs_t.c.id))).mappings().all()
            return [_job(r, now) for r in rows]

    async def put(self, job_id: str, spec: dict[str, Any]) -> bool:
        """Create or replace a job from the API (it runs again, even if it had finished); returns
        whether it is new (a deleted job posted again is new)."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            old = (await conn.execute(sa.select(jobs_t.c.desired).where(jobs_t.c.id == job_id)
                                      .with_for_update())).first()
            if old is None:
                await conn.execute(jobs_t.insert().values(**_new_job(job_id, spec, now), from_config=False))
                return True
            await conn.execute(jobs_t.update().where(jobs_t.c.id == job_id).values(
                spec=spec, desired="run", done=False, from_config=False, version=jobs_t.c.version + 1,
                state="pending", status_msg="", updated_ms=now,
                lease_ms=sa.case((jobs_t.c.done.is_(True), 0), else_=jobs_t.c.lease_ms)))
            return old.desired != "run"

    async def delete(self, job_id: str) -> bool:
        """Mark a job deleted (its owner stops it at its next heartbeat); False if there is none."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            result = await conn.execute(jobs_t.update().where(
                jobs_t.c.id == job_id, jobs_t.c.desired == "run").values(
                desired="deleted", version=jobs_t.c.version + 1, updated_ms=now))
            return bool(result.rowcount)

    async def restart(self, job_id: str) -> bool:
        """Ask the owner to restart the job (a finished one runs again); False if there is none."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            result = await conn.execute(jobs_t.update().where(
                jobs_t.c.id == job_id, jobs_t.c.desired == "run").values(
                version=jobs_t.c.version + 1, done=False, updated_ms=now,
                # a finished job runs nowhere: any worker may claim it at once
                lease_ms=sa.case((jobs_t.c.done.is_(True), 0), else_=jobs_t.c.lease_ms)))
            return bool(result.rowcount)

    async def seed(self, worker_id: str, jobs: dict[str, dict[str, Any]]) -> None:
        """Seed the YAML jobs of ``worker_id`` (id -> definition): a job the store lacks is added;
        one whose YAML definition changed since it was last seeded is replaced by it (and runs again,
        even if it was deleted over the API); one the API changed or deleted since stays as the API
        left it while the YAML definition stays the same. A job this worker's YAML seeded before
        and no longer lists is deleted."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            for job_id, spec in jobs.items():
                digest = spec_hash(spec)
                old = (await conn.execute(sa.select(jobs_t.c.config_def).where(jobs_t.c.id == job_id)
                                          .with_for_update())).first()
                if old is None:
                    await conn.execute(jobs_t.insert().values(
                        **_new_job(job_id, spec, now), from_config=True, config_def=digest,
                        seeded_by=worker_id))
                elif old.config_def != digest:
                    await conn.execute(jobs_t.update().where(jobs_t.c.id == job_id).values(
                        spec=spec, desired="run", done=False, from_config=True, config_def=digest,
                        seeded_by=worker_id, version=jobs_t.c.version + 1, updated_ms=now))
            await conn.execute(jobs_t.update().where(
                jobs_t.c.seeded_by == worker_id, jobs_t.c.from_config.is_(True), jobs_t.c.desired == "run",
                jobs_t.c.id.not_in(list(jobs) or [""])).values(
                desired="deleted", version=jobs_t.c.version + 1, updated_ms=now))

    # --- workers and leases --------------------------------------------------------------------
    async def heartbeat(self, worker_id: str, url: str, capacity: int, lease_s: float,
                        reports: list[Report]) -> dict[str, JobRow]:
        """Record the worker's heartbeat, renew the leases of the jobs it reports (where it is still
        the owner at that epoch) with their state and counters; answer the current rows of those
        jobs (the caller compares owner, epoch, desired state and version)."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            updated = await conn.execute(workers_t.update().where(workers_t.c.id == worker_id).values(
                url=url, capacity=capacity, heartbeat_ms=now, left=False))
            if not updated.rowcount:
                await conn.execute(workers_t.insert().values(
                    id=worker_id, url=url, capacity=capacity, heartbeat_ms=now, started_ms=now, left=False))
            for r in reports:
                done: Any = jobs_t.c.done
                if r.done:
                    done = sa.true() if r.version is None else sa.or_(done, jobs_t.c.version == r.version)
                await conn.execute(jobs_t.update().where(
                    jobs_t.c.id == r.id, jobs_t.c.owner == worker_id, jobs_t.c.epoch == r.epoch).values(
                    lease_ms=now + int(lease_s * 1000), state=r.state, status_msg=r.status_msg[:2000],
                    counters=r.counters, last_error=r.last_error, done=done, updated_ms=now))
            if not reports:
                return {}
            rows = (await conn.execute(sa.select(jobs_t).where(
                jobs_t.c.id.in_([r.id for r in reports])))).mappings().all()
            return {r["id"]: _job(r, now) for r in rows}

    async def claim(self, worker_id: str, capacity: int, running: int, lease_s: float,
                    limit: int) -> list[JobRow]:
        """Claim up to ``limit`` free jobs (no owner, or an expired lease; not deleted, not done)
        that the placement gives to this worker: each free job goes to the least loaded live worker
        with room (load / capacity, then load, then id); this worker takes the ones that fall to it,
        the others are left for their workers' next heartbeat. Each claim bumps the epoch."""
        if limit <= 0:
            return []
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            free_q = (sa.select(jobs_t.c.id).where(
                jobs_t.c.desired == "run", jobs_t.c.done.is_(False),
                sa.or_(jobs_t.c.owner.is_(None), jobs_t.c.lease_ms < now))
                .order_by(jobs_t.c.id).limit(1000).with_for_update(skip_locked=True))
            free = [r.id for r in (await conn.execute(free_q)).all()]
            if not free:
                return []
            live = {w.id: w for w in await self._workers(conn, now) if w.alive(lease_s)}
            load = {w: live[w].load for w in live}
            cap = {w: live[w].capacity for w in live}
            load[worker_id], cap[worker_id] = max(load.get(worker_id, 0), running), capacity
            taken: list[str] = []
            for job_id in free:
                room = [w for w in load if load[w] < cap[w]]
                if not room or len(taken) >= limit:
                    break
                best = min(room, key=lambda w: (load[w] / max(cap[w], 1), load[w], w))
                load[best] += 1
                if best == worker_id:
                    taken.append(job_id)
            if not taken:
                return []
            await conn.execute(jobs_t.update().where(jobs_t.c.id.in_(taken)).values(
                owner=worker_id, epoch=jobs_t.c.epoch + 1, lease_ms=now + int(lease_s * 1000),
                state="starting", status_msg=f"claimed by {worker_id}", updated_ms=now))
            rows = (await conn.execute(sa.select(jobs_t).where(jobs_t.c.id.in_(taken))
                                       .order_by(jobs_t.c.id))).mappings().all()
            return [_job(r, now) for r in rows]

    async def release(self, worker_id: str, leases: dict[str, int], state: str = "pending",
                      msg: str = "") -> None:
        """Give up the leases ``{job id: epoch}`` this worker still holds (others may claim them at
        once)."""
        if not leases:
            return
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            for job_id, epoch in leases.items():
                await conn.execute(jobs_t.update().where(
                    jobs_t.c.id == job_id, jobs_t.c.owner == worker_id, jobs_t.c.epoch == epoch).values(
                    owner=None, lease_ms=0, state=state, status_msg=msg, updated_ms=now))

    async def release_all(self, worker_id: str) -> int:
        """Give up every lease held under ``worker_id`` (a worker starting again: what its previous
        run held is free at once); returns how many."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            result = await conn.execute(jobs_t.update().where(
                jobs_t.c.owner == worker_id, jobs_t.c.lease_ms >= now, jobs_t.c.done.is_(False)).values(
                lease_ms=0, updated_ms=now))
            return int(result.rowcount)

    async def fail(self, worker_id: str, job_id: str, epoch: int, error: str) -> None:
        """Mark a job this worker claimed but cannot start (its definition or the source policy
        refuse it now): it is not retried until it is posted or restarted again."""
        async with self._begin() as conn:
            now = await self._now_ms(conn)
            await conn.execute(jobs_t.update().where(
                jobs_t.c.id == job_id, jobs_t.c.owner == worker_id, jobs_t.c.epoch == epoch).values(
                done=True, state="failed", status_msg=error[:2000], last_error=error[:2000],
                updated_ms=now))

    async def leave(self, worker_id: str) -> None:
        """Mark the worker gone (a clean shutdown)."""
        async with self._begin() as conn:
            await conn.execute(workers_t.update().where(workers_t.c.id == worker_id).values(left=True))

    async def workers(self) -> list[WorkerRow]:
        """Every worker that ever registered, by id, with its load."""
        async with self._begin() as conn:
            return await self._workers(conn, await self._now_ms(conn))

    async def _workers(self, conn: AsyncConnection, now: int) -> list[WorkerRow]:
        loads = dict((await conn.execute(
            sa.select(jobs_t.c.owner, sa.func.count()).where(
                jobs_t.c.owner.is_not(None), jobs_t.c.lease_ms >= now, jobs_t.c.desired == "run",
                jobs_t.c.done.is_(False)).group_by(jobs_t.c.owner))).all())
        rows = (await conn.execute(sa.select(workers_t).order_by(workers_t.c.id))).mappings().all()
        return [WorkerRow(**r, load=int(loads.get(r["id"], 0)), now_ms=now) for r in rows]


def _new_job(job_id: str, spec: dict[str, Any], now: int) -> dict[str, Any]:
    return {"id": job_id, "spec": spec, "desired": "run", "version": 1, "owner": None, "epoch": 0,
            "lease_ms": 0, "done": False, "state": "pending", "status_msg": "", "counters": None,
            "last_error": None, "updated_ms": now}


def _job(row: Any, now: int) -> JobRow:
    return JobRow(**dict(row), now_ms=now)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (below): the driver must not start transactions on its own
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # one writer at a time: a claim is never half-seen
