"""The audit log: every write (any method but GET, HEAD, OPTIONS) on every service, as one record.

A record holds the time, the service, the token's name and role, the method, the route (its
template, e.g. ``/v1/persons/{pid}``), the path, the object id (the route's last parameter), the
HTTP status and, where the handler gives one, a short detail. Each record is written as one JSON
line to the ``facestack.audit`` logger (route it to its own file with ordinary logging config);
the router with the persons plugin also stores it in the persons database, where ``GET /v1/audit``
(admins) reads it. Nothing in any API edits or deletes a record.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from facestack.core.auth import READ_METHODS, Principal

__all__ = ["AuditRecord", "Auditor", "is_write", "object_id"]

audit_log = logging.getLogger("facestack.audit")


@dataclass(frozen=True)
class AuditRecord:
    ts_ms: int
    service: str
    token: str
    role: str
    method: str
    route: str
    path: str
    object_id: str | None
    status: int
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = datetime.fromtimestamp(self.ts_ms / 1000, timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        return out


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


def object_id(params: Mapping[str, str] | list[str] | tuple[str, ...]) -> str | None:
    """The id of the object a route acts on: its last path parameter (None for none)."""
    values = list(params.values()) if isinstance(params, Mapping) else list(params)
    values = [v for v in values if v]
    return values[-1][:256] if values else None


Sink = Callable[[AuditRecord], None]


class Auditor:
    """Writes records as JSON log lines and hands them to the sinks (the persons database)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.sinks: list[Sink] = []

    def record(self, who: Principal | None, method: str, route: str, path: str,
               obj: str | None, status: int, detail: str | None = None) -> AuditRecord:
        who = who or Principal("anonymous", "none")
        rec = AuditRecord(int(time.time() * 1000), self.service, who.name, who.role, method.upper(),
                          route, path[:1024], obj, status, detail)
        audit_log.info("%s", json.dumps(rec.to_json(), sort_keys=True))
        for sink in self.sinks:
            try:
                sink(rec)
            except Exception:  # noqa: BLE001 - a failing sink never fails the request
                audit_log.exception("audit sink failed for %s %s", method, path)
        return rec
