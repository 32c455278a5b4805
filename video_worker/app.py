"""The worker service: detector, HTTP client, jobs, API; set up in order, torn down in reverse.

The jobs live in the job store (``fleet.store``: SQLite in the state folder for one worker,
PostgreSQL shared by a fleet); a worker that cannot open it does not start
(:class:`~video_worker.errors.VideoWorkerError`).

The job API's token check is built first, so a worker that must check tokens and has none fails
before it loads anything (:class:`~video_worker.errors.ConfigError`, as the config loader says it).
The HTTP client sends ``router_token`` with every request, i.e. every frame posted to facerouter.
"""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from video_worker.api import build_app
from video_worker.config import WorkerConfig, authenticator
from video_worker.detector import SharedDetector
from video_worker.manager import JobManager
from video_worker.metrics import WorkerMetrics
from video_worker.policy import Resolver, SourcePolicy

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """One video worker. ``detector`` may be given (shared by tests); otherwise it is built from
    the config and owned (closed at shutdown). ``resolver`` resolves host names for the source
    policy (default: the system's; tests pass a stub)."""

    def __init__(self, cfg: WorkerConfig, detector: SharedDetector | None = None,
                 resolver: Resolver | None = None) -> None:
        self.cfg = cfg
        self.policy = SourcePolicy(cfg.source, cfg.router_url, resolver)
        self.metrics = WorkerMetrics()
        self._own_detector = detector is None
        self._detector = detector
        self.http: aiohttp.ClientSession | None = None
        self.manager: JobManager | None = None  # type: ignore[assignment]
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.stopping = False

    async def start(self, host: str | None = None, port: int | None = None, *, serve: bool = True) -> None:
        """Load the detector, start the jobs, then listen (port 0: any free port). Raises
        :class:`~video_worker.errors.ConfigError` when the API must check tokens and has none."""
        auth = authenticator(self.cfg, host or self.cfg.host) if serve else None
        if self._detector is None:
            self._detector = await asyncio.to_thread(SharedDetector, self.cfg.models, self.cfg.detector)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ssl=self.cfg.router_tls.context())
        self.http = aiohttp.ClientSession(connector=connector, headers=self.cfg.router_headers())
        self.manager = JobManager(self.cfg, self._detector, self.http, self.metrics, self.policy)
        await self.manager.start()
        if not serve:
            return
        self.runner = web.AppRunner(build_app(self, auth), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host or self.cfg.host, self.cfg.port if port is None else port,
                           ssl_context=self.cfg.tls.context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.cfg.fleet.advertise_url is None:  # the address the other workers show for this one
            self.manager.url = f"http://{host or self.cfg.host}:{self.port}"
        log.info("video worker %s listening on %s:%d (API tokens %s)", self.cfg.worker_id,
                 host or self.cfg.host, self.port, "checked" if auth is not None and auth.enabled else "off")

    async def shutdown(self) -> None:
        """Stop the API, the jobs (posting or spooling what they hold), the client, the detector."""
        self.stopping = True
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.manager is not None:
            await self.manager.close()
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self._own_detector and self._detector is not None:
            await asyncio.to_thread(self._detector.close)
            self._detector = None
