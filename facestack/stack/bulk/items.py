"""What to enrol: a folder of photos or a CSV, read into one :class:`Item` per person.

Folder: each sub-folder is a person named after it, whose photos (``*.jpg``, ``*.jpeg``, ``*.png``,
``*.webp``, ``*.bmp``; sorted by name) are tried in order until one enrols; a photo directly in the
folder is a person named after the file (``Jane Doe.jpg``). Hidden files are ignored.

CSV (UTF-8, a header row): a ``name`` column, a ``photo`` column (``image``, ``path`` or ``url``
also accepted) holding a file path (relative to the CSV's folder) or an ``http(s)://`` URL, and any
other columns, which become the person's meta. Rows with the same name are one person with several
candidate photos, in file order; their meta is the first row's.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from facestack.core.errors import FacestackError

__all__ = ["Item", "ItemsError", "read_items", "PHOTO_SUFFIXES"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
PHOTO_COLUMNS = ("photo", "image", "path", "url")
#: longest person name accepted (a report and a file name must hold it)
MAX_NAME = 255


class ItemsError(FacestackError):
    """The input cannot be read (a missing folder, a CSV without the needed columns)."""


@dataclass
class Item:
    """One person to enrol: a name, candidate photos (paths or URLs) and meta."""

    name: str
    photos: list[str]
    meta: dict[str, str] = field(default_factory=dict)


def read_items(source: Path) -> list[Item]:
    """The persons of a folder or a CSV file, in a stable order."""
    if source.is_dir():
        return _from_folder(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_csv(source)
    if not source.exists():
        raise ItemsError(f"{source}: no such file or folder")
    raise ItemsError(f"{source}: give a folder of photos or a .csv file")


def _check_name(name: str, where: str) -> str:
    name = name.strip()
    if not name:
        raise ItemsError(f"{where}: empty person name")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ItemsError(f"{where}: the person name {name[:40]!r} is too long or has control "
                         "characters")
    return name


def _photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in PHOTO_SUFFIXES)


def _from_folder(root: Path) -> list[Item]:
    items: dict[str, Item] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            photos = _photos_in(entry)
            if photos:
                name = _check_name(entry.name, str(entry))
                items.setdefault(name, Item(name, [])).photos.extend(str(p) for p in photos)
        elif entry.is_file() and entry.suffix.lower() in PHOTO_SUFFIXES:
            name = _check_name(entry.stem, str(entry))
            items.setdefault(name, Item(name, [])).photos.append(str(entry))
    return list(items.values())


def _from_csv(path: Path) -> list[Item]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemsError(f"{path}: cannot read the CSV: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or ()]
    lower = {c.lower(): c for c in columns}
    if "name" not in lower:
        raise ItemsError(f"{path}: the CSV needs a 'name' column (found: {', '.join(columns)})")
    photo_col = next((lower[c] for c in PHOTO_COLUMNS if c in lower), None)
    if photo_col is None:
        raise ItemsError(f"{path}: the CSV needs a photo column, one of "
                         f"{', '.join(PHOTO_COLUMNS)} (found: {', '.join(columns)})")
    name_col = lower["name"]
    meta_cols = [c for c in columns if c not in (name_col, photo_col) and c]
    items: dict[str, Item] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
        name = _check_name(row.get(name_col, ""), f"{path}:{line}")
        photo = row.get(photo_col, "").strip()
        if not photo:
            raise ItemsError(f"{path}:{line}: empty {photo_col!r} for {name!r}")
        if not photo.startswith(("http://", "https://")):
            photo = str((path.parent / photo).resolve()) if not Path(photo).is_absolute() \
                else photo
        item = items.get(name)
        if item is None:
            items[name] = Item(name, [photo], {c: row.get(c, "") for c in meta_cols})
        else:
            item.photos.append(photo)
    return list(items.values())
