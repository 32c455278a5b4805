"""HTTP: persons.

* ``POST {prefix}/persons`` multipart ``image`` (photo) + ``source`` (name or id): 201
  ``{"pid", "entry"}``; 409 ``CONFLICT`` with ``pid`` and ``entry`` when the face matches a person
  (exact, or ha/junk unless the source's ``manual_create_on_*`` allows it)
* ``GET {prefix}/persons?limit=&offset=`` -> ``{"count", "results": [person]}``
* ``GET | DELETE {prefix}/persons/{pid}`` (DELETE removes the gallery face too; 204)
* ``POST {prefix}/persons/{pid}/reinit`` multipart ``image`` + ``source`` -> ``{"pid", "entry"}``
* ``POST {prefix}/persons/reinit/{entry_id}`` (optional ``?pid=``: default the entry's person)
  -> ``{"pid", "entry"}``
"""
from __future__ import annotations

from .api_base import ApiHandler
from .params import parse_uuid

__all__ = ["PersonsHandler", "PersonHandler", "ReinitPhotoHandler", "ReinitEntryHandler"]


class PersonsHandler(ApiHandler):
    """``{prefix}/persons``."""

    async def get(self) -> None:
        q = self.query(("limit", "offset"))
        limit, offset = self.page(q)
        total, rows = await self.plugin.persons.list(limit, offset)
        self.send({"count": total, "results": [self.plugin.persons.to_json(r) for r in rows]})

    async def post(self) -> None:
        self.query(())
        image, src = self.photo_and_source()
        pid, entry = await self.plugin.uploads.create(image, src)
        self.send({"pid": pid, "entry": entry}, 201)


class PersonHandler(ApiHandler):
    """``{prefix}/persons/{pid}``."""

    async def get(self, pid: str) -> None:
        self.query(())
        row = await self.plugin.persons.get_row(self.pid_arg(pid))
        self.send(self.plugin.persons.to_json(row))

    async def delete(self, pid: str) -> None:
        self.query(())
        await self.plugin.persons.delete(self.pid_arg(pid))
        self.no_content()


class ReinitPhotoHandler(ApiHandler):
    """``{prefix}/persons/{pid}/reinit``: from an uploaded photo."""

    async def post(self, pid: str) -> None:
        self.query(())
        person = self.pid_arg(pid)
        image, src = self.photo_and_source()
        entry = await self.plugin.uploads.reinit_from_photo(person, image, src)
        self.send({"pid": person, "entry": entry})


class ReinitEntryHandler(ApiHandler):
    """``{prefix}/persons/reinit/{entry_id}``: from a stored entry's image."""

    async def post(self, entry_id: str) -> None:
        q = self.query(("pid",))
        pid_text = q.one("pid")
        pid = None if pid_text is None else parse_uuid(pid_text, "pid")
        entry = await self.plugin.uploads.reinit_from_entry(
            self.id_arg(entry_id, "entry_id"), self.plugin.sources.by_id, pid)
        self.send({"pid": entry["pid"], "entry": entry})
