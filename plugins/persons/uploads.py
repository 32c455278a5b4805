"""Persons from uploaded photos: create (the source's ``manual_*`` settings apply) and reinit.

Create: sfapi detects faces on the photo (``detector=nnd``) and the largest one is used. Its bbox
area must reach ``manual_create_facesize_threshold`` (else 400 naming ``image``). It is identified
first: an ``exact`` match, or ``ha`` / ``junk`` without ``manual_create_on_ha`` /
``manual_create_on_junk``, answers 409 with the matching ``pid`` and the entry written for it;
otherwise a person is created (entry ``new``). Age, sex and mood with ``manual_identify_asm``.

Reinit: a person's face is replaced by the face of an uploaded photo or of a stored entry (from its
kept face image, else its photo); the entry written has result ``reinit``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from sfapi.client import Client, SFApiError
from sfapi.client.objects import DetectFace

from .entries import EntryRepo
from .errors import BadParam, Conflict
from .images import ImageStore
from .persons import PersonService, face_area, upload_error
from .sources import Source
from .writer import EntryWriter, NewEntry, asm_of

__all__ = ["Uploads"]

log = logging.getLogger(__name__)


class Uploads:
    """Create and reinit persons from images."""

    def __init__(self, sfapi: Client, persons: PersonService, writer: EntryWriter,
                 entries: EntryRepo, images: ImageStore, idgen: Callable[[], int]) -> None:
        self.sfapi = sfapi
        self.persons = persons
        self.writer = writer
        self.entries = entries
        self.images = images
        self.idgen = idgen

    async def _detect(self, image: bytes, asm: bool, param: str,
                      detector: str = "nnd") -> DetectFace:
        try:
            faces = await self.sfapi.detect(image=image, facen=True, gender=asm, age=asm,
                                            emotions=asm, detector=detector)
        except SFApiError as exc:
            raise upload_error(exc, param) from exc
        if not faces:
            raise BadParam(f"no face found in {param}", param=param, value=None)
        return max(faces, key=lambda f: face_area(f.bbox))

    async def create(self, image: bytes, src: Source) -> tuple[str, dict[str, Any]]:
        """A new person from a photo; returns (pid, entry). Raises Conflict on a match."""
        s = src.settings
        det = await self._detect(image, s.manual_identify_asm, "image")
        area = face_area(det.bbox)
        if area < s.manual_create_facesize_threshold:
            raise BadParam(f"the face is {area:.0f} px^2, below the source's "
                           f"manual_create_facesize_threshold {s.manual_create_facesize_threshold}",
                           param="image", value=area)
        entry = self._entry(src, det, image, area)
        try:
            match = await self.persons.identify(det)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        allowed = (match.result == "nm" or (match.result == "ha" and s.manual_create_on_ha)
                   or (match.result == "junk" and s.manual_create_on_junk))
        if not allowed:
            entry.result, entry.pid, entry.confidence = match.result, match.pid, match.score
            wire = await self.writer.write(entry)
            raise Conflict(f"the face matches person {match.pid} ({match.result}, "
                           f"{match.score}); no person created", param="image", value=match.result,
                           extra={"pid": match.pid, "entry": wire})
        try:
            pid = await self.persons.create(det, src.id, entry.id)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        entry.result, entry.pid = "new", pid
        return pid, await self.writer.write(entry)

    async def reinit_from_photo(self, pid: str, image: bytes, src: Source) -> dict[str, Any]:
        """Replace a person's face by the largest face of a photo; returns the entry."""
        await self.persons.get_row(pid)
        det = await self._detect(image, src.settings.manual_identify_asm, "image")
        return await self._reinit(pid, det, self._entry(src, det, image, face_area(det.bbox)))

    async def reinit_from_entry(self, entry_id: int, src_of: Callable[[int], Source | None],
                                pid: str | None) -> dict[str, Any]:
        """Replace the person of an entry (or ``pid``) by the entry's face; returns the entry."""
        row = await self.entries.get(entry_id)
        pid = pid or row["pid"]
        if pid is None:
            raise BadParam(f"entry {entry_id} names no person; give pid", param="pid", value=None)
        await self.persons.get_row(pid)
        src = src_of(row["source_id"])
        if src is None:
            raise BadParam(f"the source {row['source_id']} of entry {entry_id} was deleted",
                           param="entry_id", value=str(entry_id))
        asm = src.settings.manual_identify_asm
        if row["image_face"]:
            data = await self.images.read(row["image_face"])
            det = await self._detect(data, asm, "entry_id", "normalized") if data else None
        else:
            det = None
        if det is None and row["image_photo"]:
            data = await self.images.read(row["image_photo"])
            det = await self._detect(data, asm, "entry_id") if data else None
        if det is None:
            raise BadParam(f"entry {entry_id} has no stored image to reinit from (see "
                           "store_images_for_results and retention)", param="entry_id",
                           value=str(entry_id))
        entry = self._entry(src, det, b"", row["face_size"])
        return await self._reinit(pid, det, entry)

    async def _reinit(self, pid: str, det: DetectFace, entry: NewEntry) -> dict[str, Any]:
        try:
            await self.persons.reinit(pid, det, entry.id)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        entry.result, entry.pid = "reinit", pid
        return await self.writer.write(entry)

    def _entry(self, src: Source, det: DetectFace, image: bytes, area: float | None) -> NewEntry:
        asm = asm_of(det.features) if src.settings.manual_identify_asm else {}
        return NewEntry(id=self.idgen(), source=src, result="new", ts_ms=int(time.time() * 1000),
                        face_size=area, bbox=[det.bbox.as_list()], asm=asm,
                        images={"photo": image} if image else {})
