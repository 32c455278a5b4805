"""``sfapi gallery backup OUT`` and ``sfapi gallery restore BACKUP``: the parsers and what they run.

Backup works while sfapi runs (the embedded store is copied online; Milvus is exported up to a
watermark). Restore goes into an empty store with sfapi stopped (the embedded store is loaded into
memory at start, so a running sfapi would not see what a restore writes).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from sfapi.config import SfapiConfig

__all__ = ["add_parsers", "run"]

log = logging.getLogger(__name__)


def add_parsers(gsub: argparse._SubParsersAction) -> None:
    """Add ``backup`` and ``restore`` to the ``sfapi gallery`` sub-commands."""
    backup = gsub.add_parser("backup", help="back up the gallery store (online) into a new folder")
    backup.add_argument("out", type=Path, help="a new folder: galleries.db + manifest.json")
    backup.add_argument("--gallery", action="append", help="only this gallery (repeatable)")
    backup.add_argument("--config", type=Path, help="sfapi YAML config: the gallery store")
    backup.add_argument("--log-level", default="INFO")
    restore = gsub.add_parser("restore", help="restore a backup into an empty store (sfapi stopped)")
    restore.add_argument("backup", type=Path, help="a folder made by sfapi gallery backup")
    restore.add_argument("--sample", type=int, default=200,
                         help="faces whose vectors are compared after the restore (default 200)")
    restore.add_argument("--config", type=Path, help="sfapi YAML config: the gallery store")
    restore.add_argument("--log-level", default="INFO")


async def _backup(cfg: SfapiConfig, out: Path, galleries: list[str] | None) -> None:
    from sfapi.backup.gallery import backup_galleries
    from sfapi.backup.manifest import new_backup_dir, write_manifest

    new_backup_dir(out)
    part = await backup_galleries(cfg.gallery, out, galleries)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: write_manifest(out, "sfapi gallery backup",
                                                            {"galleries": part}, [part["file"]]))
    sys.stdout.write(f"backup of {len(part['galleries'])} galleries in {out}"
                     f"{'' if part['point_in_time'] else ' (up to watermarks: see the manifest)'}\n")


async def _restore(cfg: SfapiConfig, backup: Path, sample: int) -> bool:
    from sfapi.backup.gallery import restore_galleries
    from sfapi.backup.manifest import BackupError, read_manifest, verify

    loop = asyncio.get_running_loop()
    manifest = await loop.run_in_executor(None, read_manifest, backup)
    if "galleries" not in manifest:
        raise BackupError(f"{backup} holds no gallery backup")
    await loop.run_in_executor(None, verify, backup, manifest)
    result = await restore_galleries(backup, manifest["galleries"], cfg.gallery, sample=sample)
    for name, r in result["galleries"].items():
        sys.stdout.write(f"gallery {name}: {r['restored']}/{r['faces']} faces, {r['sampled']} "
                         f"sampled, {len(r['mismatched'])} mismatched\n")
    return bool(result["ok"])


def run(args: argparse.Namespace, cfg: SfapiConfig) -> int:
    """Run ``sfapi gallery backup`` or ``restore``; the exit status."""
    from sfapi.errors import SfapiError

    try:
        if args.gallery_command == "backup":
            asyncio.run(_backup(cfg, args.out, args.gallery))
            return 0
        return 0 if asyncio.run(_restore(cfg, args.backup, args.sample)) else 1
    except SfapiError as exc:
        sys.stderr.write(f"sfapi gallery {args.gallery_command}: {exc.reason}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"sfapi gallery {args.gallery_command}: {exc}\n")
        return 1
