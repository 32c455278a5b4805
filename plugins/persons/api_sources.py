"""HTTP: sources (CRUD, list with ``q``/``limit``/``offset``), thresholds, plugin status.

* ``GET  {prefix}/sources?q=&spaces_ids=&limit=&offset=`` -> ``{"count", "results": [source]}``
* ``POST {prefix}/sources`` ``{"name": ..., <settings>}`` -> 201 source
* ``GET | PUT | PATCH | DELETE {prefix}/sources/{id}`` (PUT resets settings left out to their
  defaults; PATCH keeps them; DELETE answers 202 under ``api_prefix``, as the reference, and 204
  under ``rich_api_prefix``)
* ``GET | PUT | PATCH {prefix}/thresholds`` ``{"exact", "ha", "junk"}`` (0-100, junk <= ha <= exact)
* ``GET {prefix}/status``: entries written per result since start, frames from unknown sources,
  refused auto-creates by gate, webhook queues
"""
from __future__ import annotations

from typing import Any

from .api_base import ApiHandler
from .params import int_item

__all__ = ["SourcesHandler", "SourceHandler", "ThresholdsHandler", "StatusHandler"]


class SourcesHandler(ApiHandler):
    """``{prefix}/sources``."""

    async def get(self) -> None:
        q = self.query(("q", "spaces_ids", "limit", "offset"))
        limit, offset = self.page(q)
        total, found = self.plugin.sources.list(q.one("q"), limit, offset,
                                                q.list("spaces_ids", int_item))
        self.send({"count": total, "results": [s.to_json() for s in found]})

    async def post(self) -> None:
        self.query(())
        src = await self.plugin.sources.create(self.body_json())
        self.send(src.to_json(), 201)


class SourceHandler(ApiHandler):
    """``{prefix}/sources/{id}``."""

    async def get(self, source_id: str) -> None:
        self.query(())
        self.send(self.plugin.sources.get(self.id_arg(source_id)).to_json())

    async def put(self, source_id: str) -> None:
        await self._update(source_id, partial=False)

    async def patch(self, source_id: str) -> None:
        await self._update(source_id, partial=True)

    async def _update(self, source_id: str, *, partial: bool) -> None:
        self.query(())
        sid = self.id_arg(source_id)
        src = await self.plugin.sources.update(sid, self.body_json(), partial=partial)
        self.send(src.to_json())

    async def delete(self, source_id: str) -> None:
        self.query(())
        await self.plugin.sources.delete(self.id_arg(source_id))
        if self.shape == "reference":
            self.set_status(202)
            self.finish()
        else:
            self.no_content()


class ThresholdsHandler(ApiHandler):
    """``{prefix}/thresholds``: later entries use the new values; stored entries keep theirs."""

    async def get(self) -> None:
        self.query(())
        self.send(self.plugin.thresholds.current.model_dump())

    async def put(self) -> None:
        self.query(())
        new = await self.plugin.thresholds.set(self.body_json())
        self.send(new.model_dump())

    patch = put


class StatusHandler(ApiHandler):
    """``{prefix}/status``."""

    async def get(self) -> None:
        self.query(())
        p = self.plugin
        body: dict[str, Any] = {"entries_by_result": dict(p.writer.by_result),
                                **p.frames.status(), "webhooks": p.webhooks.status(),
                                "images_removed_by_retention": p.retention.removed,
                                "liveness": "undetermined (no liveness model ships)"}
        self.send(body)
