"""The importer's resume file: one JSON line per event, appended and flushed as it happens.

A line is ``{"name", "status", ...}`` with status ``sending`` (a photo is on its way), ``enrolled``,
``refused`` or ``error``, plus ``reason``, ``detail``, ``pid``, ``matched_pid``, ``photo``, ``meta``
and ``ts``. The last line of a name is where that person stands. A second run skips the names whose
last status is final (``enrolled``, and ``refused`` unless asked to retry them) and retries the
rest. A name left at ``sending`` was interrupted between the request and its answer: if its photo
now matches a person created after that request was sent, that person is the one the interrupted
request created, and it is recorded as enrolled instead of refused. (With ``--on-match create``
the photo is simply enrolled again: the API cannot tell the two apart.)

The file is also the only place that knows the names and meta of the persons (the persons API keeps
a pid and a face, no name): ``facestack persons export`` reads it to name what it exports.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable

from .outcome import Outcome

__all__ = ["StateFile", "FINAL", "load_states"]

log = logging.getLogger(__name__)

FINAL = ("enrolled", "refused")


def load_states(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """The last record of each name over the given state files (later files win)."""
    last: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        with path.open("r", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    # a line cut short by a crash: the lines before it still count
                    log.warning("%s:%d: unreadable line skipped", path, number)
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                    last[rec["name"]] = rec
    return last


class StateFile:
    """Appends records to the resume file; ``last`` holds where each name stands."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = load_states([path])
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def is_done(self, name: str, retry_refused: bool) -> bool:
        """Whether a previous run settled this name."""
        status = self.last.get(name, {}).get("status")
        return status == "enrolled" or (status == "refused" and not retry_refused)

    def was_sending(self, name: str) -> bool:
        """Whether a previous run was stopped while this name's request was in flight."""
        return self.last.get(name, {}).get("status") == "sending"

    def record(self, name: str, status: str, *, photo: str = "", meta: dict[str, str] | None = None,
               outcome: Outcome | None = None) -> dict[str, Any]:
        """Append one record (flushed to the OS at once) and return it."""
        rec: dict[str, Any] = {"name": name, "status": status, "photo": photo,
                               "meta": meta or {}, "ts": round(time.time(), 3)}
        if outcome is not None:
            rec.update(reason=outcome.reason, detail=outcome.detail, pid=outcome.pid,
                       matched_pid=outcome.matched_pid)
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.last[name] = rec
        return rec

    def close(self) -> None:
        """Flush to disk and close."""
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
