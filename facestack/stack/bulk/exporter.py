"""``facestack persons export``: the persons of a site with their enrolled photos and meta, as a
folder that ``facestack persons import`` reads back on another site.

Output: ``<out>/persons.csv`` (``name, photo`` and the meta columns, then ``exported_pid``,
``exported_created``) and ``<out>/photos/<name>.jpg``. The photo of a person is the kept photo of
the entry that enrolled (or last re-initialised) it, else that entry's face crop. A person whose
images are gone (not kept for the source's results, or removed by retention) has no photo to move:
it is listed in ``<out>/without_photo.csv`` instead.

The router records the export in its audit log: it is opened (``POST /exports``, with the output
folder) before the first person is read and closed (``POST /exports/{id}/done``) with the counts, or
with the error that stopped it. A router that refuses to open it stops the export.

Names and meta: the persons API keeps a pid and a face, not a name; the import's resume files
(``--state``, any number) name the persons they enrolled. Persons they do not name are exported
under their pid.
"""
from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .persons_client import PersonsApi
from .state import load_states

__all__ = ["export_persons", "ExportResult"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


@dataclass
class ExportResult:
    """Persons written with a photo, and those without one."""

    exported: int
    without_photo: int
    out: Path


def _file_name(name: str, pid: str, taken: set[str]) -> str:
    base = _UNSAFE.sub("_", name).strip(" .") or pid
    candidate = f"{base[:120]}.jpg"
    if candidate.lower() in taken:
        candidate = f"{base[:120]}_{pid[:8]}.jpg"
    taken.add(candidate.lower())
    return candidate


async def export_persons(api: PersonsApi, out: Path, states: Sequence[Path] = (),
                         concurrency: int = 4, page: int = 500) -> ExportResult:
    """Write every person of the API under ``out`` (a new or empty folder)."""
    loop = asyncio.get_running_loop()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; export into a new folder")
    names: dict[str, tuple[str, dict[str, str]]] = {}
    for name, rec in (await loop.run_in_executor(None, load_states, list(states))).items():
        if rec.get("status") == "enrolled" and isinstance(rec.get("pid"), str):
            names[rec["pid"]] = (name, dict(rec.get("meta") or {}))
    export_id = await api.open_export("persons", str(out.resolve()))
    try:
        result = await _export(api, out, names, concurrency, page)
    except BaseException as exc:
        try:
            await asyncio.shield(api.close_export(export_id, 0, 0, f"{type(exc).__name__}: {exc}"))
        except Exception as close_exc:  # noqa: BLE001 - the first error is the one to report
            log.warning("export: cannot record its failure in the audit log: %s", close_exc)
        raise
    try:
        await api.close_export(export_id, result.exported, result.without_photo)
    except Exception as exc:  # noqa: BLE001 - the export is written; its opening is on record
        log.warning("export: cannot record its end in the audit log: %s", exc)
    return result


async def _export(api: PersonsApi, out: Path, names: dict[str, tuple[str, dict[str, str]]],
                  concurrency: int, page: int) -> ExportResult:
    loop = asyncio.get_running_loop()
    persons: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        total, rows = await api.persons_page(page, offset)
        for row in rows:
            persons.setdefault(row["pid"], row)
        offset += len(rows)
        if not rows or offset >= total:
            break
    log.info("export: %d persons (%d named by the resume files)", len(persons),
             sum(pid in names for pid in persons))
    (out / "photos").mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(concurrency)
    taken: set[str] = set()

    async def one(person: dict[str, Any]) -> dict[str, Any]:
        pid = person["pid"]
        name, meta = names.get(pid, (pid, {}))
        image = None
        if person.get("entry_id"):
            async with sem:
                image = (await api.entry_image(person["entry_id"], "photo")
                         or await api.entry_image(person["entry_id"], "face"))
        row = {"name": name, "photo": "", "meta": meta, "pid": pid,
               "created": person.get("created") or ""}
        if image is not None:
            file_name = _file_name(name, pid, taken)
            await loop.run_in_executor(None, (out / "photos" / file_name).write_bytes, image)
            row["photo"] = f"photos/{file_name}"
        return row

    rows = await asyncio.gather(*(one(p) for p in persons.values()))
    with_photo = [r for r in rows if r["photo"]]
    without = [r for r in rows if not r["photo"]]
    await loop.run_in_executor(None, _write_csv, out / "persons.csv", with_photo)
    if without:
        await loop.run_in_executor(None, _write_csv, out / "without_photo.csv", without)
        log.warning("export: %d persons have no kept image and are listed in %s", len(without),
                    out / "without_photo.csv")
    log.info("export: %d persons with their photos in %s", len(with_photo), out)
    return ExportResult(len(with_photo), len(without), out)


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    meta_cols: list[str] = []
    for row in rows:
        for key in row["meta"]:
            if key not in meta_cols and key not in ("name", "photo"):
                meta_cols.append(key)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", "photo", *meta_cols, "exported_pid", "exported_created"])
    for row in sorted(rows, key=lambda r: r["name"]):
        writer.writerow([row["name"], row["photo"], *(row["meta"].get(c, "") for c in meta_cols),
                         row["pid"], row["created"]])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
