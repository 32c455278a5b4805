"""The worker's camera jobs, kept in the job store the workers share (:mod:`video_worker.jobstore`).

Every worker runs the same loop: each heartbeat (``fleet.heartbeat_s``, by default a third of the
lease, at most 2 s) it renews the leases of the jobs it runs and reports their state and counters,
then claims free jobs while it has room (``fleet.capacity``). What it learns from the store:

* a job it runs now has another owner or a newer epoch (it lost the lease): it stops the job;
* a job was deleted: it stops the job and discards its spool; its definition changed, or a restart
  was asked: it restarts the job with the stored definition (a new run, a new idempotency run id).

**Placement.** A free job (never placed, or its owner's lease ran out) goes to the least loaded
live worker with room (jobs / capacity); a job no worker has room for waits (``pending``) until a
worker frees room or joins. Running jobs are not moved to a worker that joins: it takes the
waiting ones and those of workers that die. A ``single_pass`` job that read its stream to the end is
marked done in the store and never claimed again (until posted or restarted again).

**The database unreachable.** Running jobs keep running until their lease would have run out
(measured from the start of the last renewal that went through, on the worker's monotonic clock,
less a small guard), then stop: their live tracks are posted or spooled. By then the lease has run
out in the database too, so another worker may claim the job (a new epoch) without both running it.
When the store answers again the worker heartbeats and claims as usual. A write over the job API
while it is unreachable answers 503 ``STORE_UNAVAILABLE``.

**Spools and failover.** Each worker spools undelivered posts locally (``<state_dir>/spool/<job>``).
A job that stops here (lease lost, worker restarted) keeps its spool, which the worker keeps
delivering while another worker runs the job; after ``kill -9`` the spool is delivered when the
worker starts again; a worker starting under the same ``worker_id`` (unique in a fleet) first frees
what its previous run still held. Each post keeps its idempotency key, so facerouter stores it once however often
it is sent; its ``detectorParams.epoch`` says which claim produced it.

**YAML jobs.** ``jobs:`` of the config are seeded into the store at start, marked ``from_config``.
A YAML job the store lacks is added; one whose YAML definition changed since it was last seeded
replaces the stored one (even one deleted over the API); otherwise an API edit or delete wins and
stays until the YAML definition changes. A YAML job that this worker's config seeded and no longer
lists is deleted. A job id belongs in one worker's YAML (two YAMLs defining it differently each
re-seed it when their worker starts).

The jobs of ``<state_dir>/jobs.json`` (what the worker kept before the store) are imported once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, TypeVar

import aiohttp

from video_worker.analysis import CameraAnalyzer
from video_worker.config import JobSpec, WorkerConfig
from video_worker.outbox import Outbox
from video_worker.detector import SharedDetector
from video_worker.errors import BadJob, JobNotFound, SpoolError, StoreUnavailable, VideoWorkerError
from video_worker.job import CameraJob, JobStats
from video_worker.jobstore import JobRow, JobStore, Report, WorkerRow, safe_url
from video_worker.metrics import WorkerMetrics
from video_worker.policy import SourcePolicy
from video_worker.posts import PostBuilder
from video_worker.spool import Spool

__all__ = ["JobManager", "spec_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_LEGACY_STATE = "jobs.json"
_ZERO_STATS = {**{k: v for k, v in JobStats().__dict__.items()}, "posts_pending": 0, "spool_bytes": 0}


def spec_of(job: JobSpec) -> dict[str, Any]:
    """A job's definition as the store keeps it (without its id)."""
    return job.model_dump(mode="json", exclude={"id"})


@dataclass
class Lease:
    """This worker's hold on a job: the claim's epoch, the definition's version, and when it must
    stop the job unless renewed (monotonic seconds)."""

    epoch: int
    version: int
    deadline: float
    done: bool = False


class JobManager:
    """Runs the jobs this worker holds a lease on, and answers the job API for the whole fleet."""

    def __init__(self, cfg: WorkerConfig, detector: SharedDetector, http: aiohttp.ClientSession,
                 metrics: WorkerMetrics, policy: SourcePolicy | None = None,
                 store: JobStore | None = None) -> None:
        self.cfg = cfg
        self.fleet = cfg.fleet
        self.policy = policy
        self.detector = detector
        self.http = http
        self.metrics = metrics
        self.worker_id = cfg.worker_id
        self.state_dir = Path(cfg.state_dir)
        self.lease_s = self.fleet.lease_s
        self._guard = min(0.5, self.lease_s * 0.1)
        #: a heartbeat's store calls give up after the lease (a later one cannot renew anything);
        #: the API's wait longer
        self._tick_timeout = self.lease_s
        self._db_timeout = max(10.0, self.lease_s)
        self.store = store or JobStore(cfg.store_url(), timeout_s=self._db_timeout)
        #: the jobs running here (finished single_pass ones too, until deleted or restarted)
        self.jobs: dict[str, CameraJob] = {}
        self.leases: dict[str, Lease] = {}
        #: whether the last call to the store went through
        self.store_ok = True
        self.url = self.fleet.advertise_url or f"http://{cfg.host}:{cfg.port}"
        self._drains: dict[str, tuple[Outbox, asyncio.Task[None]]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        #: per local job, the version of the definition it runs
        self._versions: dict[str, int] = {}
        #: per job, the last start/stop scheduled (they run in order)
        self._actions: dict[str, asyncio.Task[None]] = {}
        self._tick_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: store calls still running (their caller may have stopped waiting): finished before close
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._closing = False

    # --- start / stop --------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, seed the YAML jobs, deliver spools left from before, claim jobs."""
        await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
        try:
            await asyncio.wait_for(self.store.open(), self._db_timeout * 3)
            await self._db(self._import_legacy())
            await self._db(self.store.seed(self.worker_id, {j.id: spec_of(j) for j in self.cfg.jobs}))
            # what a previous run of this worker held (killed: its leases still run) is free now
            freed = await self._db(self.store.release_all(self.worker_id))
            if freed:
                log.info("%d jobs held by this worker's previous run are free again", freed)
            await self._db(self._start_drains())
        except Exception as exc:  # noqa: BLE001 - any driver error
            await self.store.close()
            raise VideoWorkerError(f"job store {safe_url(self.cfg.store_url())} unusable: "
                                   f"{type(exc).__name__}: {exc}") from exc
        await self.tick()
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name="fleet-heartbeat"),
                       asyncio.create_task(self._watchdog(), name="fleet-watchdog")]
        log.info("worker %s: %d camera jobs running (capacity %d, lease %.1f s, store %s)",
                 self.worker_id, len(self.jobs), self.fleet.capacity, self.lease_s,
                 safe_url(self.cfg.store_url()))

    async def close(self) -> None:
        """Stop every job (live tracks posted or spooled), give their leases back, leave."""
        self._closing = True
        if not self.store.opened:  # it never started
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._tick_lock:
            try:  # a last report: a single_pass job that just finished is recorded as done
                await self._db(self.store.heartbeat(self.worker_id, self.url, self.fleet.capacity,
                                                    self.lease_s, self._reports()), self._tick_timeout)
            except StoreUnavailable:
                pass
            held = {i: lease.epoch for i, lease in self.leases.items()
                    if not lease.done and not (i in self.jobs and self.jobs[i].finished.is_set())}
            self.leases.clear()
            await asyncio.gather(*(self._schedule(i, self._stop_local, i) for i in list(self.jobs)))
            await asyncio.gather(*list(self._actions.values()), return_exceptions=True)
            try:
                await self._db(self.store.release(self.worker_id, held, "pending",
                                                  f"released by {self.worker_id} (stopped)"))
                await self._db(self.store.leave(self.worker_id))
            except StoreUnavailable as exc:
                log.warning("job store unreachable at shutdown (%s): the leases run out by themselves", exc)
            for job_id in list(self._drains):
                await self._stop_drain(job_id)
        if self._in_flight:  # calls the store has not answered yet end before the engine goes
            await asyncio.wait(set(self._in_flight), timeout=self._db_timeout)
        await self.store.close()

    # --- API operations (any worker, for the whole fleet) --------------------------------------
    async def put(self, spec: JobSpec) -> tuple[dict[str, Any], bool]:
        """Create or replace a job; returns its view and whether it is new."""
        created = await self._db(self.store.put(spec.id, spec_of(spec)))
        await self.tick()  # this worker claims or restarts it now when it is the place for it
        return await self.view(spec.id), created

    async def delete(self, job_id: str) -> None:
        """Delete a job: its owner stops it and discards its spool."""
        if not await self._db(self.store.delete(job_id)):
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        await self.tick()

    async def restart(self, job_id: str) -> dict[str, Any]:
        """Restart a job on its owner (a new run: counters start over; a finished one runs again)."""
        if not await self._db(self.store.restart(job_id)):
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        await self.tick()
        return await self.view(job_id)

    async def view(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it; raises :class:`JobNotFound`."""
        row = await self._db(self.store.get(job_id))
        if row is None or row.desired != "run":
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        return self._view(row)

    async def views(self) -> list[dict[str, Any]]:
        """Every job, by id."""
        return [self._view(row) for row in await self._db(self.store.list())]

    async def workers(self) -> list[dict[str, Any]]:
        """Every worker the store knows, with its load and heartbeat age."""
        rows: list[WorkerRow] = await self._db(self.store.workers())
        return [{"id": w.id, "url": w.url, "capacity": w.capacity, "load": w.load,
                 "heartbeat_age_s": round(max(w.now_ms - w.heartbeat_ms, 0) / 1000, 3),
                 "alive": w.alive(self.lease_s), "left": w.left} for w in rows]

    def get(self, job_id: str) -> CameraJob:
        """The job ``job_id`` running on this worker; raises :class:`JobNotFound`."""
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} on this worker", id=job_id)
        return job

    @property
    def load(self) -> int:
        """Jobs running here that count against the capacity (finished ones do not)."""
        return sum(1 for lease in self.leases.values() if not lease.done)

    # --- the heartbeat -------------------------------------------------------------------------
    async def tick(self, wait: bool = True) -> None:
        """One heartbeat: renew, note what changed, claim while there is room. Starting and stopping
        cameras (slow) runs in per-job tasks so that it never delays a renewal; ``wait``: until
        they are done (the API answers after its change took effect here)."""
        actions: list[asyncio.Task[None]] = []
        async with self._tick_lock:
            if self._closing:
                return
            t0 = time.monotonic()
            reports = self._reports()
            try:
                rows = await self._db(self.store.heartbeat(self.worker_id, self.url, self.fleet.capacity,
                                                           self.lease_s, reports), self._tick_timeout)
                took = time.monotonic() - t0
                if took > self.fleet.tick_s:
                    log.warning("heartbeat took %.2f s (the lease is %.1f s)", took, self.lease_s)
                actions += self._apply(reports, rows, t0)
                room = self.fleet.capacity - self.load
                if room > 0:
                    t0 = time.monotonic()
                    claimed = await self._db(self.store.claim(self.worker_id, self.fleet.capacity,
                                                              self.load, self.lease_s, room), self._tick_timeout)
                    for row in claimed:
                        self.leases[row.id] = Lease(row.epoch, row.version, t0 + self.lease_s - self._guard)
                        if row.id in self.jobs:  # an earlier run still here: a finished one restarted
                            self._schedule(row.id, self._stop_local, row.id)
                        actions.append(self._schedule(row.id, self._start_claimed, row))
            except StoreUnavailable:
                pass
        if wait and actions:
            await asyncio.gather(*actions, return_exceptions=True)

    def _reports(self) -> list[Report]:
        out = []
        for job_id, lease in self.leases.items():
            job = self.jobs.get(job_id)
            if job is None:  # being started
                out.append(Report(job_id, lease.epoch, "starting", "starting"))
                continue
            view = job.view()
            stats = view["statistic"]
            out.append(Report(job_id, lease.epoch, view["status"], view["status_msg"], stats,
                              stats.get("last_error"), done=job.finished.is_set(),
                              version=self._versions.get(job_id)))
        return out

    def _apply(self, reports: list[Report], rows: dict[str, JobRow], t0: float) -> list[asyncio.Task[None]]:
        """Extend the leases still held; schedule stops and restarts for the others."""
        actions = []
        for rep in reports:
            lease = self.leases.get(rep.id)
            if lease is None or lease.epoch != rep.epoch:
                continue  # stopped meanwhile (the watchdog)
            row = rows.get(rep.id)
            if row is None or row.owner != self.worker_id or row.epoch != rep.epoch:
                log.warning("job %s: lease lost (now %s, epoch %s): stopping it here", rep.id,
                            row.owner if row else None, row.epoch if row else None)
                del self.leases[rep.id]
                actions.append(self._schedule(rep.id, self._stop_local, rep.id, True))
            elif row.desired != "run":
                log.info("job %s deleted: stopping it", rep.id)
                del self.leases[rep.id]
                actions.append(self._schedule(rep.id, self._stop_local, rep.id, False, True))
            else:
                lease.deadline = t0 + self.lease_s - self._guard
                lease.done = row.done
                if row.version != lease.version:
                    log.info("job %s changed or restarted: starting it again", rep.id)
                    lease.version, lease.done = row.version, False
                    self._schedule(rep.id, self._stop_local, rep.id)
                    actions.append(self._schedule(rep.id, self._start_claimed, row))
        return actions

    def _schedule(self, job_id: str, action: Any, *args: Any) -> asyncio.Task[None]:
        """Run ``action(*args)`` after the actions already scheduled for ``job_id`` (per-job order;
        different jobs in parallel)."""
        before = self._actions.get(job_id)

        async def run() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            try:
                await action(*args)
            except Exception:  # a bug: the traceback in the log, the next action still runs
                log.exception("job %s: %s failed", job_id, getattr(action, "__name__", action))

        task = asyncio.create_task(run(), name=f"job-{job_id}")
        self._actions[job_id] = task
        task.add_done_callback(lambda t: self._actions.pop(job_id, None) if self._actions.get(job_id) is t
                               else None)
        return task

    async def _start_claimed(self, row: JobRow) -> None:
        lease = self.leases.get(row.id)
        if lease is None or lease.epoch != row.epoch or row.id in self.jobs:
            return  # lost or stopped before it started
        try:
            spec = JobSpec.model_validate({**row.spec, "id": row.id})
            self.cfg.camera_settings(spec)
            if self.policy is not None and not row.from_config:  # the policy may have changed
                await self.policy.check(spec.stream_url, spec.router_url, spec.settings)
            await self._stop_drain(row.id)
            await self._start_job(spec, row.epoch)
            self._versions[row.id] = row.version
        except (ValueError, BadJob, VideoWorkerError) as exc:
            log.error("job %s cannot start here: %s", row.id, exc)
            self.leases.pop(row.id, None)
            try:
                await self._db(self.store.fail(self.worker_id, row.id, row.epoch, f"not started: {exc}"))
            except StoreUnavailable:
                pass

    async def _heartbeat_loop(self) -> None:
        # ``asyncio.timeout``, not ``wait_for``: on 3.11 a cancel that meets a wake-up at the same
        # moment is swallowed by ``wait_for``, and close() then waited for this loop forever
        while not self._closing:
            try:
                async with asyncio.timeout(self.fleet.tick_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.tick(wait=False)
            except Exception:  # a bug: keep the heartbeat going, the traceback in the log
                log.exception("heartbeat failed")

    async def _watchdog(self) -> None:
        """Stops the jobs whose lease ran out (the store was unreachable for that long)."""
        step = min(0.2, self.lease_s / 20)
        while not self._closing:
            await asyncio.sleep(step)
            now = time.monotonic()
            expired = [i for i, lease in self.leases.items() if not lease.done and lease.deadline <= now]
            if expired:
                log.error("no renewal for the whole lease (job store unreachable or slow): stopping %s",
                          ", ".join(expired))
            for job_id in expired:
                del self.leases[job_id]
                self._schedule(job_id, self._stop_local, job_id, True)

    # --- local jobs ----------------------------------------------------------------------------
    def _spool_dir(self, job_id: str) -> Path:
        return self.state_dir / "spool" / job_id

    async def _start_job(self, spec: JobSpec, epoch: int) -> CameraJob:
        cfg = self.cfg
        settings = cfg.camera_settings(spec)
        router = cfg.router_of(spec)
        try:
            spool = await asyncio.to_thread(Spool, self._spool_dir(spec.id), cfg.delivery.spool_max_bytes,
                                          cfg.delivery.spool_max_age_s)
        except SpoolError as exc:
            raise VideoWorkerError(f"job {spec.id}: {exc}") from exc
        run_id = uuid.uuid4().hex  # this run's posts' idempotency keys: unique across restarts
        builder = PostBuilder(spec.id, spec.labels, settings, cfg.worker_id,
                              cfg.detector.normalized_size, cfg.detector.normalized_padding, run_id,
                              epoch=epoch)
        analyzer = CameraAnalyzer(self.detector, settings, builder)
        outbox = Outbox(spec.id, router, self.http, spool, cfg.delivery, self.metrics)
        job = CameraJob(spec, settings, router, cfg.source, self.detector, outbox, analyzer, self.metrics)
        outbox.on_result = job.on_post_result
        self.jobs[spec.id] = job
        job.start()
        self._watchers[spec.id] = asyncio.create_task(self._watch_finish(job))
        log.info("job %s started (epoch %d, run %s): %s -> %s", spec.id, epoch, run_id,
                 spec.stream_url, router)
        return job

    async def _watch_finish(self, job: CameraJob) -> None:
        await job.finished.wait()
        self._wake.set()  # record it in the store now: a single_pass job finishes once

    async def _stop_local(self, job_id: str, drain: bool = False, discard: bool = False) -> None:
        """Stop the local job; ``drain``: keep delivering its spool; ``discard``: delete it."""
        job = self.jobs.pop(job_id, None)
        self._versions.pop(job_id, None)
        watcher = self._watchers.pop(job_id, None)
        if watcher is not None:
            watcher.cancel()
        if job is not None:
            await job.stop()
        if discard:
            await self._discard(job_id)
        elif drain and job is not None and not self._closing:
            await self._drain(job_id, job.router_url)

    async def _discard(self, job_id: str) -> None:
        await self._stop_drain(job_id)
        await asyncio.to_thread(shutil.rmtree, self._spool_dir(job_id), True)
        self.metrics.forget(job_id)

    async def _drain(self, job_id: str, router_url: str) -> None:
        """Keep delivering the spool of a job that does not run here (until it is empty)."""
        if job_id in self._drains or job_id in self.jobs:
            return
        directory = self._spool_dir(job_id)
        if not await asyncio.to_thread(directory.is_dir):
            return
        try:
            spool = await asyncio.to_thread(Spool, directory, self.cfg.delivery.spool_max_bytes,
                                          self.cfg.delivery.spool_max_age_s)
        except SpoolError as exc:
            log.error("%s", exc)
            return
        if not len(spool):
            return
        log.info("job %s: delivering %d spooled posts (the job runs elsewhere)", job_id, len(spool))
        outbox = Outbox(job_id, router_url, self.http, spool, self.cfg.delivery, self.metrics)
        outbox.start()

        async def finish() -> None:
            await outbox.drained()
            await outbox.close()
            self._drains.pop(job_id, None)
            log.info("job %s: spool delivered", job_id)

        self._drains[job_id] = (outbox, asyncio.create_task(finish()))

    async def _stop_drain(self, job_id: str) -> None:
        entry = self._drains.pop(job_id, None)
        if entry is not None:
            outbox, task = entry
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await outbox.close()

    async def _start_drains(self) -> None:
        root = self.state_dir / "spool"
        names = await asyncio.to_thread(lambda: sorted(p.name for p in root.iterdir() if p.is_dir())
                                        if root.is_dir() else [])
        for job_id in names:
            row = await self.store.get(job_id)
            router = (row.spec.get("router_url") if row is not None else None) or self.cfg.router_url
            await self._drain(job_id, router.rstrip("/"))

    async def _import_legacy(self) -> None:
        path = self.state_dir / _LEGACY_STATE
        try:
            data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s); not imported", path, exc)
            return
        for job_id, spec in dict(data.get("jobs", {})).items():
            if await self.store.get(job_id) is None:
                await self.store.put(job_id, {k: v for k, v in spec.items() if k != "id"})
        await asyncio.to_thread(path.replace, path.with_suffix(".json.imported"))
        log.info("%s imported into the job store", path)

    # --- the store -----------------------------------------------------------------------------
    async def _db(self, call: Awaitable[T], timeout: float | None = None) -> T:
        """Await a store call with a deadline; any failure is :class:`StoreUnavailable`."""
        # shielded: a deadline or a cancel stops the waiting, never the call. A transaction cut off
        # half-way leaves SQLite's driver thread holding the write lock, and every later call (the
        # next start of this worker too) waits for it in vain
        task = asyncio.ensure_future(call)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        try:
            result = await asyncio.wait_for(asyncio.shield(task), timeout or self._db_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every driver has its own errors
            if self.store_ok:
                log.error("job store unreachable (%s: %s): running jobs keep running until their "
                          "leases run out (%.1f s)", type(exc).__name__, exc, self.lease_s)
            self.store_ok = False
            raise StoreUnavailable(f"job store unreachable: {type(exc).__name__}") from exc
        if not self.store_ok:
            log.warning("job store reachable again")
            self.store_ok = True
        return result

    def _view(self, row: JobRow) -> dict[str, Any]:
        spec = JobSpec.model_construct(**{**row.spec, "id": row.id})
        job, lease = self.jobs.get(row.id), self.leases.get(row.id)
        mine = (job is not None and lease is not None and row.owner == self.worker_id
                and lease.epoch == row.epoch)
        if mine:
            view = job.view()
        else:
            held = row.leased or row.done
            status, msg = row.state, row.status_msg
            if not held:
                status = "pending"
                msg = (f"waiting for a worker (the lease of {row.owner} ran out)" if row.owner
                       else "waiting for a worker with room")
            view = {"id": row.id, "stream_url": spec.stream_url, "labels": row.spec.get("labels", {}),
                    "router_url": self.cfg.router_of(spec), "single_pass": bool(row.spec.get("single_pass")),
                    "settings": row.spec.get("settings", {}), "status": status, "status_msg": msg,
                    "statistic": {**_ZERO_STATS, **(row.counters or {})}}
        view["worker_id"] = row.owner if (mine or row.leased or row.done) else None
        view["epoch"] = row.epoch
        view["from_config"] = row.from_config
        view["statistic"]["last_error"] = view["statistic"].get("last_error") or row.last_error
        return view
