"""The worker's camera jobs: create or replace, list, get, delete, restart; persisted.

Jobs come from two places: ``jobs:`` in the config file, and the job API. API jobs read back at
start are checked against the source policy again (:mod:`video_worker.policy`); one it refuses now
is logged and not started. What the API does is
written to ``<state_dir>/jobs.json`` (atomically), so jobs created, replaced or deleted over the
API stay that way after a restart: an API job replaces a config job of the same id, and deleting a
config job over the API keeps it deleted (a tombstone) until the config changes its definition.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from video_worker.analysis import CameraAnalyzer
from video_worker.config import JobSpec, WorkerConfig
from video_worker.delivery import Outbox
from video_worker.detector import SharedDetector
from video_worker.errors import BadJob, JobNotFound, SpoolError, VideoWorkerError
from video_worker.job import CameraJob
from video_worker.metrics import WorkerMetrics
from video_worker.policy import SourcePolicy
from video_worker.posts import PostBuilder
from video_worker.spool import Spool

__all__ = ["JobManager"]

log = logging.getLogger(__name__)

_STATE_FILE = "jobs.json"


class JobManager:
    """Owns the running :class:`CameraJob` s."""

    def __init__(self, cfg: WorkerConfig, detector: SharedDetector, http: aiohttp.ClientSession,
                 metrics: WorkerMetrics, policy: SourcePolicy | None = None) -> None:
        self.cfg = cfg
        self.policy = policy
        self.detector = detector
        self.http = http
        self.metrics = metrics
        self.jobs: dict[str, CameraJob] = {}
        self._api_jobs: dict[str, dict[str, Any]] = {}
        self._deleted: dict[str, dict[str, Any]] = {}  # config job id -> its definition when deleted
        self._lock = asyncio.Lock()
        self.state_dir = Path(cfg.state_dir)

    # --- start / stop --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the config's jobs and the persisted API jobs."""
        await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
        self._load_state()
        specs: dict[str, JobSpec] = {}
        for job in self.cfg.jobs:
            if self._deleted.get(job.id) == job.model_dump(mode="json"):
                continue
            specs[job.id] = job
        for job_id, data in self._api_jobs.items():
            try:
                specs[job_id] = spec = JobSpec.model_validate(data)
                self.cfg.camera_settings(spec)
                if self.policy is not None:  # the policy may have changed since it was accepted
                    await self.policy.check(spec.stream_url, spec.router_url, spec.settings)
            except (ValueError, BadJob) as exc:
                log.error("persisted job %s is no longer valid, not started: %s", job_id, exc)
                specs.pop(job_id, None)
        async with self._lock:
            for spec in specs.values():
                await self._start_job(spec)
        log.info("%d camera jobs started", len(self.jobs))

    async def close(self) -> None:
        """Stop every job (their live tracks are posted or spooled)."""
        async with self._lock:
            await asyncio.gather(*(job.stop() for job in self.jobs.values()))
            self.jobs.clear()

    # --- API operations ------------------------------------------------------------------------
    async def put(self, spec: JobSpec) -> tuple[CameraJob, bool]:
        """Create or replace a job; returns it and whether it is new."""
        async with self._lock:
            old = self.jobs.pop(spec.id, None)
            if old is not None:
                await old.stop()
            self._api_jobs[spec.id] = spec.model_dump(mode="json")
            self._deleted.pop(spec.id, None)
            await self._save_state()
            job = await self._start_job(spec)
            return job, old is None

    async def delete(self, job_id: str) -> None:
        """Stop and forget a job; its undelivered posts are discarded with its spool."""
        async with self._lock:
            job = self._get(job_id)
            await job.stop()
            del self.jobs[job_id]
            self._api_jobs.pop(job_id, None)
            for cfg_job in self.cfg.jobs:
                if cfg_job.id == job_id:
                    self._deleted[job_id] = cfg_job.model_dump(mode="json")
            await self._save_state()
            if job.outbox.pending:
                log.warning("job %s deleted with %d posts undelivered", job_id, job.outbox.pending)
            await asyncio.to_thread(shutil.rmtree, self._spool_dir(job_id), True)
            self.metrics.forget(job_id)

    async def restart(self, job_id: str) -> CameraJob:
        """Stop and start a job again with the same definition (counters start over)."""
        async with self._lock:
            job = self._get(job_id)
            await job.stop()
            return await self._start_job(job.spec)

    def get(self, job_id: str) -> CameraJob:
        """The job ``job_id``; raises :class:`JobNotFound`."""
        return self._get(job_id)

    # --- internals -----------------------------------------------------------------------------
    def _get(self, job_id: str) -> CameraJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        return job

    def _spool_dir(self, job_id: str) -> Path:
        return self.state_dir / "spool" / job_id

    async def _start_job(self, spec: JobSpec) -> CameraJob:
        cfg = self.cfg
        settings = cfg.camera_settings(spec)
        router = cfg.router_of(spec)
        try:
            spool = await asyncio.to_thread(Spool, self._spool_dir(spec.id), cfg.delivery.spool_max_bytes)
        except SpoolError as exc:
            raise VideoWorkerError(f"job {spec.id}: {exc}") from exc
        run_id = uuid.uuid4().hex  # this run's posts' idempotency keys: unique across restarts
        builder = PostBuilder(spec.id, spec.labels, settings, cfg.worker_id,
                              cfg.detector.normalized_size, cfg.detector.normalized_padding, run_id)
        analyzer = CameraAnalyzer(self.detector, settings, builder)
        outbox = Outbox(spec.id, router, self.http, spool, cfg.delivery, self.metrics)
        job = CameraJob(spec, settings, router, cfg.source, self.detector, outbox, analyzer, self.metrics)
        outbox.on_result = job.on_post_result
        self.jobs[spec.id] = job
        job.start()
        log.info("job %s started (run %s): %s -> %s", spec.id, run_id, spec.stream_url, router)
        return job

    def _load_state(self) -> None:
        path = self.state_dir / _STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s); starting with the config's jobs only", path, exc)
            return
        self._api_jobs = dict(data.get("jobs", {}))
        self._deleted = dict(data.get("deleted", {}))

    async def _save_state(self) -> None:
        path = self.state_dir / _STATE_FILE
        text = json.dumps({"jobs": self._api_jobs, "deleted": self._deleted}, indent=1, sort_keys=True)

        def write() -> None:
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

        await asyncio.to_thread(write)
