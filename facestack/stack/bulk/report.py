"""The import report: one row per person of the input, CSV or JSON by the file's suffix.

Columns: ``name, status, reason, detail, pid, matched_pid, photo`` and then the meta columns of the
input. ``status`` is ``enrolled``, ``refused`` (``reason`` says why, see
:mod:`.outcome`), ``error`` (a transient failure: run again) or ``pending`` (the run was stopped
before this person). The report covers every run over the same resume file, so after a resumed
run it describes the whole input. The JSON form is ``{"summary": {status: count, reasons:
{reason: count}}, "persons": [row]}``.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .items import Item

__all__ = ["build_rows", "summarize", "write_report", "COLUMNS"]

COLUMNS = ("name", "status", "reason", "detail", "pid", "matched_pid", "photo")


def build_rows(items: Sequence[Item], last: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows of ``items`` from the resume file's last records."""
    rows = []
    for item in items:
        rec = last.get(item.name, {})
        status = rec.get("status", "pending")
        if status == "sending":
            status = "pending"
        rows.append({"name": item.name, "status": status, "reason": rec.get("reason") or "",
                     "detail": rec.get("detail") or "", "pid": rec.get("pid") or "",
                     "matched_pid": rec.get("matched_pid") or "",
                     "photo": rec.get("photo") or "", "meta": dict(item.meta)})
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status and by refusal reason."""
    by_status = Counter(r["status"] for r in rows)
    reasons = Counter(r["reason"] for r in rows if r["status"] == "refused")
    return {**{s: by_status.get(s, 0) for s in ("enrolled", "refused", "error", "pending")},
            "total": len(rows), "reasons": dict(sorted(reasons.items()))}


def write_report(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the report atomically (a temporary file renamed over the old one)."""
    if path.suffix.lower() == ".json":
        text = json.dumps({"summary": summarize(rows), "persons": list(rows)}, indent=1,
                          ensure_ascii=False) + "\n"
    else:
        meta_cols: list[str] = []
        for row in rows:
            for key in row["meta"]:
                if key not in meta_cols and key not in COLUMNS:
                    meta_cols.append(key)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*COLUMNS, *meta_cols])
        for row in rows:
            writer.writerow([row[c] for c in COLUMNS] + [row["meta"].get(c, "") for c in meta_cols])
        text = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
