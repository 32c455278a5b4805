"""The router: builds the Tornado app, the sfapi client and the plugins; serves; shuts down.

Start-up order: metrics, the idempotency-key store (:mod:`facerouter.dedup`), sfapi client, Tornado application (so plugins can add routes), plugins
(in load order), listening sockets. Shutdown (SIGTERM) in reverse: stop accepting connections and
answer new frames 503, wait for the frames in flight, every plugin's ``shutdown`` (reverse load order,
each with a time limit), then close the sfapi client and its HTTP session.
"""
from __future__ import annotations

import logging
import socket

import aiohttp
import tornado.httpserver
import tornado.netutil

from facerouter.config import LoadedConfig
from facerouter.errors import Overloaded
from facerouter.console.service import Console
from facerouter.context import Context
from facerouter.dedup import EventStore
from facerouter.driver import PluginDriver
from facerouter.frames import FramePipeline
from facerouter.api import FrameHandler, HealthHandler, MetricsHandler, OpenApiHandler
from facerouter.idgen import IdGenerator
from facerouter.loader import PluginRegistry
from facerouter.metrics import RouterMetrics
from facestack.core.admission import Admission
from facestack.core.auth import Authenticator
from facestack.core.auth_tornado import AuthApplication
from facestack.core.roles import ROUTER
from sfapi.client import Client

__all__ = ["Router"]

log = logging.getLogger(__name__)


class Router:
    """One facerouter service. ``await start()``, then ``await shutdown()`` (both once)."""

    def __init__(self, config: LoadedConfig) -> None:
        self.config = config
        cfg = config.router
        self.max_inflight = cfg.max_inflight
        self.stopping = False
        self.metrics = RouterMetrics(cfg.metrics_buckets)
        #: frames in flight: past max_inflight a frame is refused (503, the worker retries)
        self.admission = Admission(
            cfg.max_inflight, lambda n, limit: Overloaded(f"{n} frames in flight (max_inflight {limit}); "
                                                          "retry later"), self.metrics.inflight.set)
        self.idgen = IdGenerator(cfg.node_id)
        self.registry = PluginRegistry()
        authenticator = Authenticator.from_config(cfg.auth, cfg.host, "facerouter", guard_writes=True)
        self.console = Console(cfg.console, authenticator, cfg.max_body_bytes)
        self.app = AuthApplication([
            (r"/v0/frame", FrameHandler, {"router": self}),
            (r"/healthz", HealthHandler, {"router": self}),
            (r"/metrics", MetricsHandler, {"router": self}),
            (r"/openapi.json", OpenApiHandler, {"router": self}),
            *self.console.routes(),
        ], authenticator, service="facerouter", table=ROUTER, max_body_bytes=cfg.max_body_bytes,
            gate=self.console if cfg.console.enabled else None,
            **({"events": self.console.events} if cfg.console.enabled else {}))
        self.driver = PluginDriver(self.registry, self.metrics, cfg.sync_workers)
        self._session: aiohttp.ClientSession | None = None
        self.sfapi: Client | None = None
        self._pipeline: FramePipeline | None = None
        self.events: EventStore | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self.ports: list[int] = []

    @property
    def pipeline(self) -> FramePipeline:
        """The frame pipeline (set by :meth:`start`)."""
        assert self._pipeline is not None, "Router.start() was not called"
        return self._pipeline

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Load the plugins and listen (on ``sockets`` if given, else on config host/port).

        Raises:
            PluginLoadError, ConfigError: start-up failed; what had started is torn down.
        """
        cfg = self.config.router
        self.events = EventStore(self.config.events_path(), cfg.idempotency.max_keys)
        await self.events.open()
        self._session = aiohttp.ClientSession(  # https to sfapi verified (sfapi_tls)
            connector=aiohttp.TCPConnector(ssl=cfg.sfapi_tls.context()),
            trace_configs=[self.metrics.trace_config()])
        self.sfapi = Client(cfg.sfapi_url, timeout=cfg.sfapi_timeout_s, session=self._session,
                            token=cfg.sfapi_token)
        self._pipeline = FramePipeline(client=self.sfapi, driver=self.driver, idgen=self.idgen,
                                       metrics=self.metrics, detector=cfg.detector,
                                       sfapi_timeout=cfg.sfapi_timeout_s, events=self.events)
        self.console.sfapi = self.sfapi
        self.console.plugins = self.registry.objects
        base_ctx = Context(sfapi=self.sfapi, idgen=self.idgen, plugins=self.registry.objects,
                           app=self.app)
        try:
            await self.registry.load_all(self.config, base_ctx)
            if sockets is None:
                sockets = tornado.netutil.bind_sockets(cfg.port, cfg.host)
        except BaseException:
            log.error("facerouter start-up failed; shutting down the plugins already loaded")
            await self._stop_plugins_and_clients()
            raise
        self._server = tornado.httpserver.HTTPServer(self.app, max_body_size=cfg.max_body_bytes,
                                                     ssl_options=cfg.tls.context())
        self._server.add_sockets(sockets)
        self.ports = sorted({s.getsockname()[1] for s in sockets})
        if self.ports:
            log.info("facerouter listening on %s port %s; sfapi %s; plugins: %s", cfg.host,
                     ",".join(map(str, self.ports)), cfg.sfapi_url,
                     ", ".join(self.registry.names()) or "none")
        else:
            log.info("facerouter started without listening; plugins: %s",
                     ", ".join(self.registry.names()) or "none")

    @property
    def inflight(self) -> int:
        """Frames being handled now."""
        return self.admission.inflight

    async def shutdown(self) -> None:
        """Stop accepting, finish the frames in flight, shut plugins down, close clients."""
        if self.stopping:
            return
        self.stopping = True
        cfg = self.config.router
        if self._server is not None:
            self._server.stop()
        log.info("facerouter stopping: %d frame(s) in flight", self.inflight)
        if not await self.admission.drained(cfg.drain_timeout_s):
            log.warning("facerouter stopping: %d frame(s) still in flight after %.1f s",
                        self.inflight, cfg.drain_timeout_s)
        await self.console.close()
        await self._stop_plugins_and_clients()
        if self._server is not None:
            await self._server.close_all_connections()
        log.info("facerouter stopped")

    async def _stop_plugins_and_clients(self) -> None:
        failed = await self.driver.shutdown(self.config.router.shutdown_timeout_s)
        if failed:
            log.warning("plugins whose shutdown failed: %s", ", ".join(failed))
        self.driver.close()
        if self.sfapi is not None:
            await self.sfapi.close()
        if self._session is not None:
            await self._session.close()
        if self.events is not None:
            await self.events.close()
