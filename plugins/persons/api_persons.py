"""HTTP: persons.

* ``POST {prefix}/persons`` multipart ``image`` (photo) + ``source`` (name or id), optional
  ``on_match`` (``refuse`` | ``create`` | ``reinit``), ``facesize``, ``create_on_ha``,
  ``create_on_junk``, ``identify_asm`` (the reference client's overrides of the source's
  ``manual_*`` settings): see :mod:`.uploads` for the enrolment contract. 201 ``{"pid", "entry"}``
  (a new person); with ``on_match=reinit`` and a match, 200 ``{"pid", "entry"}`` (the matched
  person, re-initialised); with ``on_match=refuse`` (the default) and a match, 409 ``CONFLICT``
  naming the matched ``pid``, and nothing is stored
* ``GET {prefix}/persons?limit=&offset=`` -> ``{"count", "results": [person]}``
* ``GET | DELETE {prefix}/persons/{pid}`` (DELETE removes the gallery face too; 204)
* ``POST {prefix}/persons/{pid}/reinit`` or ``POST {prefix}/persons/reinit/{pid}`` (the reference
  client's path) multipart ``image`` + ``source`` (optional ``facesize``, ``identify_asm``,
  ``result``) -> ``{"pid", "entry"}``
* ``POST {prefix}/persons/reinit/{entry_id}`` (optional ``?pid=``: default the entry's person), or
  ``POST {prefix}/persons/reinit`` with the JSON body ``{"id": <entry id>}`` (the reference
  client's form) -> ``{"pid", "entry"}``
"""
from __future__ import annotations

from typing import Any

from .api_base import ApiHandler
from .config import RESULTS
from .errors import BadParam
from .params import check_int, choice, parse_bool, parse_pid
from .uploads import ON_MATCH, Overrides

__all__ = ["PersonsHandler", "PersonHandler", "ReinitPhotoHandler", "ReinitEntryHandler"]

#: Optional text parts of a create upload.
CREATE_PARTS = ("on_match", "facesize", "create_on_ha", "create_on_junk", "identify_asm")
#: Optional text parts of a reinit upload.
REINIT_PARTS = ("facesize", "identify_asm", "result")


def overrides(fields: dict[str, str]) -> Overrides:
    """The per-upload overrides of the source's ``manual_*`` settings."""
    def flag(name: str) -> bool | None:
        return parse_bool(fields[name], name) if name in fields else None
    if "result" in fields:
        choice(RESULTS)(fields["result"], "result")
    return Overrides(
        facesize=check_int(fields["facesize"], "facesize", 0, 1 << 40) if "facesize" in fields
        else None,
        create_on_ha=flag("create_on_ha"), create_on_junk=flag("create_on_junk"),
        identify_asm=flag("identify_asm"))


class PersonsHandler(ApiHandler):
    """``{prefix}/persons``."""

    auth_roles = {"GET": "read", "POST": "operator"}  # enrolment is the operator's

    async def get(self) -> None:
        q = self.query(("limit", "offset"))
        limit, offset = self.page(q)
        total, rows = await self.plugin.persons.list(limit, offset)
        self.send({"count": total, "results": [self.plugin.persons.to_json(r) for r in rows]})

    async def post(self) -> None:
        q = self.query(("on_match",))
        image, src, fields = self.photo_and_source(CREATE_PARTS)
        on_match = fields.get("on_match") or q.one("on_match") or "refuse"
        if on_match not in ON_MATCH:
            raise BadParam(f"on_match must be one of {', '.join(ON_MATCH)}", param="on_match",
                           value=on_match)
        outcome = await self.plugin.uploads.create(image, src, on_match, overrides(fields))
        self.send({"pid": outcome.pid, "entry": self.entry(outcome.entry)},
                  201 if outcome.created else 200)


class PersonHandler(ApiHandler):
    """``{prefix}/persons/{pid}``."""

    async def get(self, pid: str) -> None:
        self.query(())
        row = await self.plugin.persons.get_row(self.pid_arg(pid))
        self.send(self.plugin.persons.to_json(row))

    async def delete(self, pid: str) -> None:
        q = self.query(("erase",))
        if q.bool("erase"):  # everything of the person, with a report (plugins/persons/erasure.py)
            from .erasure import erase_person
            report = await erase_person(self.plugin, self.pid_arg(pid))
            self.audit_detail = (f"erased: {report['entries']} entries, {report['images']} images, "
                                 f"archive {report['archive_faces']}")
            self.send(report)
            return
        await self.plugin.persons.delete(self.pid_arg(pid))
        self.no_content()


class ReinitPhotoHandler(ApiHandler):
    """``{prefix}/persons/{pid}/reinit``: from an uploaded photo."""

    auth_roles = {"POST": "operator"}

    async def post(self, pid: str) -> None:
        self.query(())
        await self.reinit_photo(self.pid_arg(pid))

    async def reinit_photo(self, person: str) -> None:
        image, src, fields = self.photo_and_source(REINIT_PARTS)
        entry = await self.plugin.uploads.reinit_from_photo(person, image, src, overrides(fields))
        self.send({"pid": person, "entry": self.entry(entry)})


class ReinitEntryHandler(ReinitPhotoHandler):
    """``{prefix}/persons/reinit[/{entry_id | pid}]``: from a stored entry's image (an entry id
    in the path or the JSON body ``{"id": ...}``), or from an uploaded photo (a pid in the path)."""

    async def post(self, ref: str | None = None) -> None:  # type: ignore[override]
        if ref is None:
            self.query(())
            body: dict[str, Any] = self.body_json()
            unknown = set(body) - {"id", "pid"}
            if unknown:
                raise BadParam(f"unknown field {sorted(unknown)[0]!r}; known: id, pid",
                               param=sorted(unknown)[0], value=None)
            if "id" not in body:
                raise BadParam("the body must give the entry id: {\"id\": <entry id>}",
                               param="id", value=None)
            entry_id = check_int(body["id"], "id", 0, (1 << 63) - 1)
            pid = None if body.get("pid") is None else parse_pid(body["pid"], "pid")
        elif not ref.isdigit():
            self.query(())
            await self.reinit_photo(self.pid_arg(ref))
            return
        else:
            q = self.query(("pid",))
            pid_text = q.one("pid")
            pid = None if pid_text is None else parse_pid(pid_text, "pid")
            entry_id = self.id_arg(ref, "entry_id")
        entry = await self.plugin.uploads.reinit_from_entry(entry_id, self.plugin.sources.by_id,
                                                            pid)
        self.send({"pid": entry["pid"], "entry": self.entry(entry)})
