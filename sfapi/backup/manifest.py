"""The manifest of a backup folder: what it holds, how many of each, and a sha256 per file.

``manifest.json`` (written last, so a folder without it is an unfinished backup)::

    {"format": "facestack-backup/1", "created": "<UTC ISO time>", "tool": "sfapi gallery backup",
     "galleries": {...} | absent, "persons": {...} | absent, "consistency": {...} | absent,
     "files": {"<name>": {"bytes": n, "sha256": "<hex>"}}}

The parts are written by :mod:`sfapi.backup.gallery` and by the persons tools. :func:`verify`
checks every listed file before a restore reads it.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from facestack.core.registry_fetch import sha256_file
from sfapi.errors import SfapiError

__all__ = ["FORMAT", "BackupError", "write_manifest", "read_manifest", "verify",
           "new_backup_dir"]

FORMAT = "facestack-backup/1"
MANIFEST = "manifest.json"


class BackupError(SfapiError):
    """A backup cannot be made or restored (the message says why)."""

    status = 400
    code = "BACKUP_ERROR"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_backup_dir(out: Path) -> Path:
    """``out`` created (it must be new or empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not an empty folder; back up into a new one")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_manifest(out: Path, tool: str, parts: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """Checksum ``files`` (names in ``out``) and write ``manifest.json``; returns it."""
    manifest = {"format": FORMAT,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "tool": tool, **parts,
                "files": {name: {"bytes": (out / name).stat().st_size,
                                 "sha256": sha256_file(out / name)} for name in files}}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out / MANIFEST)
    return manifest


def read_manifest(backup: Path) -> dict[str, Any]:
    """The manifest of a backup folder (refusing an unfinished or foreign one)."""
    path = backup / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{backup} has no {MANIFEST}: not a backup, or an unfinished one") \
            from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a {FORMAT} manifest")
    return manifest


def verify(backup: Path, manifest: dict[str, Any]) -> None:
    """Check the size and sha256 of every file the manifest lists."""
    for name, want in manifest.get("files", {}).items():
        path = backup / name
        if not path.is_file():
            raise BackupError(f"{path}: missing from the backup")
        if path.stat().st_size != want["bytes"] or sha256_file(path) != want["sha256"]:
            raise BackupError(f"{path}: checksum mismatch (the file changed since the backup)")
