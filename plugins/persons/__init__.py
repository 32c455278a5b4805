"""``persons``: identification of every face against a persons gallery, with sources, entries
(new / reinit / exact / ha / junk / nm / det), thresholds, statistics, webhooks and an HTTP API.

The semantics follow the reference platform (NeuroIO entries and sources); the statistics follow
LUNA's event filters and ``/events/stats``. See ``docs/persons.rst`` for the API, the config and the
calibration of the thresholds. Modules:

* :mod:`.config` the ``persons:`` section; :mod:`.storage` tables and engine (SQLite/PostgreSQL);
* :mod:`.sources`, :mod:`.thresholds`, :mod:`.entries`, :mod:`.stats`, :mod:`.persons` the data;
* :mod:`.identify` the frame hooks; :mod:`.uploads` persons from photos; :mod:`.gates` auto-create
  checks; :mod:`.writer` entries with images and webhooks; :mod:`.image_store` files and retention;
  :mod:`.webhooks` delivery (reusing the built-in ``webhook`` plugin);
* :mod:`.api_base`, :mod:`.api_sources`, :mod:`.api_persons`, :mod:`.api_entries`,
  :mod:`.api_security`, :mod:`.api_exports` the HTTP API.

The plugin does nothing unless its section says ``enabled: true``.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping

import tornado.web

from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest, Plugin
from sfapi.client import SFApiError

from .api_entries import (AggregateHandler, EntriesHandler, EntryHandler, EntryImageHandler,
                          PersonStatsHandler)
from .api_exports import ExportDoneHandler, ExportsHandler
from .api_security import AuditHandler, TokenHandler, TokensHandler
from .api_persons import PersonHandler, PersonsHandler, ReinitEntryHandler, ReinitPhotoHandler
from .api_sources import SourceHandler, SourcesHandler, StatusHandler, ThresholdsHandler
from .config import PersonsConfig
from .entries import EntryRepo, entry_json
from .errors import NotFound
from .identify import FrameProcessor
from .image_store import ImageStore, RetentionJob
from .persons import PersonService
from .security import AuditRepo, TokenRefresher, TokenRepo
from .sources import SourceRepo
from .storage import Database
from .thresholds import ThresholdStore
from .uploads import Uploads
from .webhooks import EntryWebhooks
from .writer import EntryWriter

__all__ = ["PersonsPlugin", "InertPlugin", "activate", "config_model"]

log = logging.getLogger(__name__)

config_model = PersonsConfig


class InertPlugin(Plugin):
    """What ``activate`` returns with ``enabled: false``: every hook is the base class's no-op, so
    the router never calls it."""


class PersonsPlugin:
    """The enabled plugin: owns the database, the services, the routes' state and the jobs."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx = ctx
        self.name = name
        cfg: PersonsConfig = ctx.config
        self.config = cfg
        self.db = Database(cfg.resolved_database_url())
        self.sources = SourceRepo(self.db)
        self.thresholds = ThresholdStore(self.db, cfg.thresholds)
        self.entries = EntryRepo(self.db)
        self.images = ImageStore(cfg.resolved_images_dir())
        self.webhooks = EntryWebhooks(name, cfg.webhooks)
        self.writer = EntryWriter(self.entries, self.images, self.webhooks, cfg.store_images,
                                  cfg.rich_api_prefix)
        self.persons = PersonService(ctx.sfapi, cfg.gallery, self.db, self.thresholds, ctx.idgen,
                                     cfg.create_gallery)
        self.frames = FrameProcessor(cfg, self.sources, self.persons, self.writer)
        self.uploads = Uploads(ctx.sfapi, self.persons, self.writer, self.entries, self.images,
                               ctx.idgen)
        self.tokens = TokenRepo(self.db)
        self.audit = AuditRepo(self.db)
        #: exports opened and not yet closed (:mod:`.api_exports`), oldest first
        self.open_exports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.token_refresher: TokenRefresher | None = None
        self.retention = RetentionJob(self.images, self.entries, self.sources,
                                      cfg.image_retention_days, cfg.retention_interval_s,
                                      cfg.entry_retention_days)

    async def start(self) -> None:
        """Open the database, load sources and thresholds, create the gallery, start retention."""
        await self.db.open()
        try:
            await self.sources.load()
            await self.thresholds.load()
        except BaseException:
            await self.db.close()
            raise
        try:
            await self.persons.ensure_gallery()
        except SFApiError as exc:
            log.warning("%s: cannot create gallery %s yet (%s); will retry at the first face",
                        self.name, self.config.gallery, exc)
        self.retention.start()

    async def attach_security(self, app: tornado.web.Application) -> None:
        """Store the router's audit records; serve the database's tokens when ``auth`` says so."""
        auditor = getattr(app, "auditor", None)
        if auditor is not None:
            self.audit.start()
            auditor.sinks.append(self.audit.sink)
        auth = getattr(app, "authenticator", None)
        if auth is not None:
            self.token_refresher = TokenRefresher(self.tokens, auth)
            if auth.database_tokens:
                await self.token_refresher.start()

    def openapi(self) -> dict[str, Any]:
        """The API's OpenAPI fragment, both prefixes (facerouter merges it into its
        ``/openapi.json``)."""
        from .openapi import fragment
        cfg = self.config
        return fragment(cfg.api_prefix, cfg.rich_api_prefix, max_limit=cfg.max_limit,
                        default_limit=cfg.default_limit)

    def routes(self) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
        """The API routes: under ``api_prefix`` in the reference's shapes, under
        ``rich_api_prefix`` in the richer ones; every path also with a trailing slash."""
        out: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = []
        for p, shape in ((self.config.api_prefix, "reference"),
                         (self.config.rich_api_prefix, "rich")):
            kw = {"plugin": self, "shape": shape, "prefix": p}
            out += [(rf"{p}/{path}/?", handler, kw) for path, handler in (
                ("sources", SourcesHandler),
                ("sources/([^/]+)", SourceHandler),
                ("thresholds", ThresholdsHandler),
                ("status", StatusHandler),
                ("persons", PersonsHandler),
                ("persons/reinit", ReinitEntryHandler),
                ("persons/reinit/([^/]+)", ReinitEntryHandler),
                ("persons/([^/]+)/reinit", ReinitPhotoHandler),
                ("persons/([^/]+)", PersonHandler),
                ("entries", EntriesHandler),
                ("entries/stats", AggregateHandler),
                ("entries/stats/pid/([^/]+)", PersonStatsHandler),
                ("entries/([^/]+)/image/(face|photo)", EntryImageHandler),
                ("entries/([^/]+)", EntryHandler),
                ("tokens", TokensHandler),
                ("tokens/([^/]+)", TokenHandler),
                ("audit", AuditHandler),
                ("exports", ExportsHandler),
                ("exports/([^/]+)/done", ExportDoneHandler),
            )]
        return out

    async def entry_wire(self, entry_id: int) -> dict[str, Any] | None:
        """An entry's wire form in the richer shape, or None when there is no such entry (for
        the operator console's search results)."""
        try:
            row = await self.entries.get(entry_id)
        except NotFound:
            return None
        src = self.sources.by_id(row["source_id"])
        return entry_json(row, self.config.rich_api_prefix, getattr(src, "name", None))

    async def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """See :meth:`.identify.FrameProcessor.preprocess`."""
        return await self.frames.preprocess(request, labels)

    async def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]],
                      event_id: int, detection: DetectFace) -> None:
        """See :meth:`.identify.FrameProcessor.process`."""
        await self.frames.process(request, photo, bbox, event_id, detection)

    async def shutdown(self) -> None:
        """Stop retention, drain webhooks, close the database."""
        try:
            await self.retention.stop()
            await self.webhooks.shutdown()
            if self.token_refresher is not None:
                await self.token_refresher.stop()
            await self.audit.stop()
        finally:
            self.frames.close()
            await self.db.close()


async def activate(app: tornado.web.Application, ctx: Any, plugin_name: str,
                   plugin_source: str) -> PersonsPlugin | InertPlugin:
    """Build and start the plugin and add its routes (an inert plugin when not enabled)."""
    if not ctx.config.enabled:
        log.info("%s: disabled (set %s.enabled: true to use it)", plugin_name, plugin_name)
        return InertPlugin(ctx)
    plugin = PersonsPlugin(ctx, plugin_name)
    await plugin.start()
    await plugin.attach_security(app)
    app.add_handlers(r".*", plugin.routes())
    events = app.settings.get("events")  # the router's entry stream (facerouter.console.events)
    if events is not None:
        plugin.writer.listeners.append(events.publish)
    log.info("%s: API under %s, database %s", plugin_name, ctx.config.api_prefix,
             ctx.config.resolved_database_url().split("@")[-1])
    return plugin
