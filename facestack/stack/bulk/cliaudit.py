"""Audit records of the operator's tools that work on the stores directly, not through an API.

``facestack persons backup|restore`` and ``facestack backup|restore`` copy every person's data
without a request any service could audit, so the tool writes its own record: a JSON line on the
``facestack.audit`` logger (:mod:`facestack.core.audit`) and a row in the persons database's audit table,
where ``GET /v1/audit?service=facestack`` shows it. The record names the local user and host
(``token`` ``local:<user>@<host>``; database access is an admin's), the command (``route``), the
backup folder (``path``), ``method`` ``BACKUP`` or ``RESTORE``, status 200 or 500 (failed, with the
error as ``detail``). A restore's record goes into the restored database, after its check; a
failed restore gets the JSON line only (a row would make the database look not empty to the next
try).
"""
from __future__ import annotations

import getpass
import logging
import socket
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from facestack.core.audit import Auditor
from facestack.core.audit_store import audit, audit_metadata
from facestack.core.auth import Principal

__all__ = ["record_store_operation", "SERVICE"]

log = logging.getLogger(__name__)

#: the ``service`` column of these records
SERVICE = "facestack"


def _who() -> Principal:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return Principal(f"local:{user}@{socket.gethostname()}"[:128], "admin")


async def record_store_operation(database_url: str | None, method: str, command: str,
                                 folder: Path, ok: bool, detail: str) -> bool:
    """Record one backup or restore: the JSON line, and the row in ``database_url`` unless None.
    False (and a logged error) when the row could not be stored."""
    rec = Auditor(SERVICE).record(_who(), method, command, str(folder), None, 200 if ok else 500,
                                  " ".join(detail.split())[:1024])
    if database_url is None:
        return True
    kwargs = {"connect_args": {"timeout": 30}} if database_url.startswith("sqlite") else {}
    engine = create_async_engine(database_url, **kwargs)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(audit_metadata.create_all)
            await conn.execute(audit.insert(), [dict(rec.__dict__)])
        return True
    except Exception as exc:  # noqa: BLE001 - the backup itself is done; say the record is missing
        log.error("the audit record of %s %s could not be stored in the persons database: %s",
                  command, folder, exc)
        return False
    finally:
        await engine.dispose()
