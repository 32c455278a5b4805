"""HTTP: exports of person data leave a trace in the audit log.

An export (``facestack persons export``) reads persons and their images through the ordinary read
routes; reads are not audited, so the export declares itself around them:

* ``POST {prefix}/exports`` ``{"what": "persons", "to"?: "<where it goes, free text>"}`` -> 201
  ``{"id", "what", "to", "started", "token"}``: the audit record (``route`` ``{prefix}/exports``,
  ``object_id`` the export's id) says who opened which export, when, and where to
* ``POST {prefix}/exports/{id}/done`` ``{"persons": n, "without_photo": n, "error"?: "..."}`` -> 200:
  the closing record (same ``object_id``) says how much left and whether it failed

An admin finds both with ``GET {prefix}/audit?route={prefix}/exports`` (and
``route={prefix}/exports/{id}/done``). Any token that may read persons may open an export (it could
read them anyway); only the token that opened an export may close it. Open exports are kept in
memory (the newest :data:`MAX_OPEN`); closing one the router no longer knows (it restarted) is 404,
and the opening record stays in the log either way.
"""
from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

from facestack.core.auth_tornado import audit_info, principal

from .api_base import ApiHandler
from .errors import BadParam, NotFound
from .params import from_ms

__all__ = ["ExportsHandler", "ExportDoneHandler", "MAX_OPEN", "EXPORT_KINDS"]

#: exports kept open at once (the oldest is forgotten past it)
MAX_OPEN = 1000
#: what can be exported
EXPORT_KINDS = ("persons",)


def _open(plugin: Any) -> OrderedDict[str, dict[str, Any]]:
    table: OrderedDict[str, dict[str, Any]] = plugin.open_exports
    return table


def _fields(body: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise BadParam(f"unknown field {unknown[0]!r}; known: {', '.join(known)}",
                       param=unknown[0], value=None)


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\r\n\0"):
        raise BadParam(f"{name} must be one line of text, at most {limit} characters",
                       param=name, value=value if isinstance(value, str) else None)
    return value


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
        raise BadParam(f"{name} must be a whole number >= 0", param=name, value=value)
    return value


class _ExportBase(ApiHandler):
    auth_roles = {"POST": "read"}

    def _token(self) -> str | None:
        who = principal(self)
        return who.name if who is not None else None

    def _audit_object(self, export_id: str) -> None:
        info = audit_info(self)
        if info is not None:
            info.obj = export_id


class ExportsHandler(_ExportBase):
    """``{prefix}/exports``: open an export."""

    async def post(self) -> None:
        self.query(())
        body = self.body_json()
        _fields(body, ("what", "to"))
        what = body.get("what", "persons")
        if what not in EXPORT_KINDS:
            raise BadParam(f"what must be one of {', '.join(EXPORT_KINDS)}", param="what",
                           value=what if isinstance(what, str) else None)
        to = _text(body, "to", 256)
        export_id = uuid.uuid4().hex
        started = from_ms(int(time.time() * 1000))
        record = {"id": export_id, "what": what, "to": to, "started": started,
                  "token": self._token()}
        table = _open(self.plugin)
        table[export_id] = record
        while len(table) > MAX_OPEN:
            table.popitem(last=False)
        self._audit_object(export_id)
        self.audit_detail = f"export of {what} opened" + (f" to {to}" if to else "")
        self.send(record, 201)


class ExportDoneHandler(_ExportBase):
    """``{prefix}/exports/{id}/done``: close an export with what it wrote."""

    async def post(self, export_id: str) -> None:
        self.query(())
        body = self.body_json()
        _fields(body, ("persons", "without_photo", "error"))
        persons, without = _count(body, "persons"), _count(body, "without_photo")
        error = _text(body, "error", 512)
        record = _open(self.plugin).get(export_id)
        if record is None or record["token"] != self._token():
            raise NotFound(f"no open export {export_id!r} of this token", param="id",
                           value=export_id)
        del _open(self.plugin)[export_id]
        outcome = f"failed: {error}" if error else "finished"
        self.audit_detail = (f"export of {record['what']} {outcome}: {persons} persons with their "
                             f"photo, {without} without")
        self.send({**record, "persons": persons, "without_photo": without, "error": error,
                   "finished": from_ms(int(time.time() * 1000))})
