"""HTTP: entries and statistics.

* ``GET {prefix}/entries`` with the filters of :class:`~.entries.EntryFilter`, ``limit``/``offset``
  and keyset ``id__lt``/``id__gte``: under ``api_prefix`` (the reference's shape) a JSON list of
  entries; under ``rich_api_prefix`` ``{"results": [entry], "next_page": "<id>" | null}``, where
  the next page is ``id__lt=<next_page>`` with the same filters (offset then stays 0)
* ``GET | DELETE {prefix}/entries/{id}`` (DELETE removes its images too; 204)
* ``GET {prefix}/entries/{id}/image/{face|photo}``: the kept JPEG
* ``GET {prefix}/entries/stats/pid/{pid}``: one person's counts by result and source, first and
  last seen
* ``GET {prefix}/entries/stats?group_by=result,source,hour,day_of_week`` plus the entry filters:
  counts per group over ``date_from``..``date_to`` (default: the last 30 days)
"""
from __future__ import annotations

import datetime

from .api_base import ApiHandler
from .entries import FILTER_PARAMS, EntryFilter, entry_json
from .errors import BadParam, NotFound
from .params import choice
from .stats import DEFAULT_PERIOD, GROUPS, aggregate, person_stats

__all__ = ["EntriesHandler", "EntryHandler", "EntryImageHandler", "PersonStatsHandler",
           "AggregateHandler"]


class EntriesHandler(ApiHandler):
    """``{prefix}/entries``."""

    async def get(self) -> None:
        q = self.query((*FILTER_PARAMS, "limit", "offset", "id__lt", "id__gte"))
        f = EntryFilter.from_query(q, self.shape, self.plugin.sources.in_spaces)
        limit, offset = self.page(q)
        rows = await self.plugin.entries.list(f, limit, offset)
        names = self.plugin.sources.by_id
        results = [entry_json(r, self.prefix, getattr(names(r["source_id"]), "name", None),
                              self.shape) for r in rows]
        if self.shape == "reference":
            self.send(results)
            return
        next_page = str(rows[-1]["id"]) if len(rows) == limit else None
        self.send({"results": results, "next_page": next_page})


class EntryHandler(ApiHandler):
    """``{prefix}/entries/{id}``."""

    async def get(self, entry_id: str) -> None:
        self.query(())
        row = await self.plugin.entries.get(self.id_arg(entry_id))
        src = self.plugin.sources.by_id(row["source_id"])
        self.send(entry_json(row, self.prefix, getattr(src, "name", None), self.shape))

    async def delete(self, entry_id: str) -> None:
        self.query(())
        row = await self.plugin.entries.delete(self.id_arg(entry_id))
        files = [row[k] for k in ("image_face", "image_photo") if row[k]]
        if files:
            await self.plugin.images.remove(files)
        self.no_content()


class EntryImageHandler(ApiHandler):
    """``{prefix}/entries/{id}/image/{face|photo}``."""

    async def get(self, entry_id: str, kind: str) -> None:
        self.query(())
        row = await self.plugin.entries.get(self.id_arg(entry_id))
        rel = row[f"image_{kind}"]
        data = await self.plugin.images.read(rel) if rel else None
        if data is None:
            raise NotFound(f"entry {entry_id} has no {kind} image (not kept, or removed by "
                           "retention)", param="kind", value=kind)
        self.set_header("Content-Type", "image/jpeg")
        self.finish(data)


class PersonStatsHandler(ApiHandler):
    """``{prefix}/entries/stats/pid/{pid}``."""

    async def get(self, pid: str) -> None:
        self.query(())
        self.send(await person_stats(self.plugin.db, self.pid_arg(pid)))


class AggregateHandler(ApiHandler):
    """``{prefix}/entries/stats``."""

    async def get(self) -> None:
        q = self.query((*FILTER_PARAMS, "group_by"))
        group_by = q.list("group_by", choice(GROUPS)) or ["result"]
        if len(set(group_by)) != len(group_by):
            raise BadParam("group_by names a group twice", param="group_by",
                           value=",".join(group_by))
        f = EntryFilter.from_query(q, self.shape, self.plugin.sources.in_spaces)
        if f.date_from is None and f.date_to is None:
            f.date_to = datetime.datetime.now(datetime.timezone.utc)
            f.date_from = f.date_to - DEFAULT_PERIOD
        self.send(await aggregate(self.plugin.db, f, group_by))

