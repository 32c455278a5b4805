"""Persons from uploaded photos: create (the source's ``manual_*`` settings apply) and reinit.

The enrolment contract (the HTTP API, the bulk import and the console all go through
:meth:`Uploads.create`):

* sfapi detects faces on the photo (``detector=nnd``) and the largest one is used; no face is 400
  ``NO_FACE`` (param ``image``); a face smaller than ``manual_create_facesize_threshold`` (or the
  upload's ``facesize``) is 400 ``BAD_PARAM`` naming ``image``.
* The face is identified against the persons. It *matches* a person when its score reaches the
  ``exact`` threshold, or lies in the ``ha`` / ``junk`` band and the source's
  ``manual_create_on_ha`` / ``manual_create_on_junk`` (or the upload's ``create_on_ha`` /
  ``create_on_junk``) does not allow creating there.
* No match: a person is created, entry ``new`` (201).
* A match, by ``on_match``:

  - ``refuse`` (default): :class:`~.errors.Conflict` (409 ``CONFLICT``, param ``image``, value the
    band) whose body names the matched ``pid``, its ``result`` band and ``confidence``; nothing is
    stored (no entry, no person);
  - ``create``: a new person anyway, entry ``new`` (201);
  - ``reinit``: the matched person's face is replaced by this one, entry ``reinit`` (200).

So an upload only ever writes ``new`` or ``reinit`` entries, as in the reference. Age, sex and mood
with ``manual_identify_asm`` (or the upload's ``identify_asm``).

Reinit: a person's face is replaced by the face of an uploaded photo or of a stored entry (from its
kept face image, else its photo); the entry written has result ``reinit``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from sfapi.client import Client, SFApiError, SFApiRemoteError
from sfapi.client.objects import DetectFace

from .entries import EntryRepo
from .errors import BadParam, Conflict, NoFace
from .image_store import ImageStore
from .persons import PersonService, face_area, upload_error
from .sources import Source
from .writer import EntryWriter, NewEntry, asm_of

__all__ = ["Uploads", "Overrides", "Outcome", "ON_MATCH", "OnMatch"]

log = logging.getLogger(__name__)

OnMatch = Literal["refuse", "create", "reinit"]
#: What an upload matching a person does (see the module's doc).
ON_MATCH: tuple[str, ...] = ("refuse", "create", "reinit")


@dataclass(frozen=True)
class Overrides:
    """An upload's own values for the source's ``manual_*`` settings (``None``: the source's)."""

    facesize: int | None = None
    create_on_ha: bool | None = None
    create_on_junk: bool | None = None
    identify_asm: bool | None = None


@dataclass(frozen=True)
class Outcome:
    """What an enrolment did: ``created`` a new person (201) or re-initialised ``pid`` (200)."""

    pid: str
    entry: dict[str, Any]
    created: bool


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
        except SFApiRemoteError as exc:
            # an sfapi that fails computing age/sex/mood for zero faces (a bug of older versions)
            # must not make a photo without a face a 503: ask again for the face alone
            if not asm or (exc.status or 500) < 500:
                raise upload_error(exc, param) from exc
            try:
                bare = await self.sfapi.detect(image=image, detector=detector)
            except SFApiError:
                raise upload_error(exc, param) from exc
            if bare:
                raise upload_error(exc, param) from exc
            faces = bare
        except SFApiError as exc:
            raise upload_error(exc, param) from exc
        if not faces:
            raise NoFace(f"no face found in {param}", param=param, value=None)
        return max(faces, key=lambda f: face_area(f.bbox))

    async def create(self, image: bytes, src: Source, on_match: OnMatch | str = "refuse",
                     over: Overrides = Overrides()) -> Outcome:
        """Enrol a person from a photo, by the contract of this module's doc.

        Raises:
            Conflict: the face matches a person and ``on_match`` is ``refuse``.
            NoFace, BadParam: no face, a face too small, an unknown ``on_match``.
        """
        if on_match not in ON_MATCH:
            raise BadParam(f"on_match must be one of {', '.join(ON_MATCH)}", param="on_match",
                           value=on_match)
        s = src.settings
        asm = s.manual_identify_asm if over.identify_asm is None else over.identify_asm
        det = await self._detect(image, asm, "image")
        area = face_area(det.bbox)
        least = s.manual_create_facesize_threshold if over.facesize is None else over.facesize
        if area < least:
            raise BadParam(f"the face is {area:.0f} px^2, below the least face size {least} "
                           "(the source's manual_create_facesize_threshold, or facesize)",
                           param="image", value=area)
        try:
            match = await self.persons.identify(det)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        on_ha = s.manual_create_on_ha if over.create_on_ha is None else over.create_on_ha
        on_junk = s.manual_create_on_junk if over.create_on_junk is None else over.create_on_junk
        matched = match.pid is not None and not (
            match.result == "nm" or (match.result == "ha" and on_ha)
            or (match.result == "junk" and on_junk))
        entry = self._entry(src, det, image, area, asm)
        if matched and on_match == "refuse":
            raise Conflict(f"the face matches person {match.pid} ({match.result}, confidence "
                           f"{match.score}); no person created. Send on_match=create to create "
                           "one anyway or on_match=reinit to re-initialise that person",
                           param="image", value=match.result,
                           extra={"pid": match.pid, "result": match.result,
                                  "confidence": match.score})
        if matched and on_match == "reinit":
            assert match.pid is not None
            return Outcome(match.pid, await self._reinit(match.pid, det, entry), created=False)
        try:
            pid = await self.persons.create(det, src.id, entry.id)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        entry.result, entry.pid = "new", pid
        return Outcome(pid, await self.writer.write(entry), created=True)

    async def reinit_from_photo(self, pid: str, image: bytes, src: Source,
                                over: Overrides = Overrides()) -> dict[str, Any]:
        """Replace a person's face by the largest face of a photo; returns the entry."""
        await self.persons.get_row(pid)
        s = src.settings
        asm = s.manual_identify_asm if over.identify_asm is None else over.identify_asm
        det = await self._detect(image, asm, "image")
        area = face_area(det.bbox)
        if over.facesize is not None and area < over.facesize:
            raise BadParam(f"the face is {area:.0f} px^2, below facesize {over.facesize}",
                           param="image", value=area)
        return await self._reinit(pid, det, self._entry(src, det, image, area, asm))

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
        entry = self._entry(src, det, b"", row["face_size"], asm)
        return await self._reinit(pid, det, entry)

    async def _reinit(self, pid: str, det: DetectFace, entry: NewEntry) -> dict[str, Any]:
        try:
            await self.persons.reinit(pid, det, entry.id)
        except SFApiError as exc:
            raise upload_error(exc, "image") from exc
        entry.result, entry.pid = "reinit", pid
        return await self.writer.write(entry)

    def _entry(self, src: Source, det: DetectFace, image: bytes, area: float | None,
               asm: bool) -> NewEntry:
        return NewEntry(id=self.idgen(), source=src, result="new", ts_ms=int(time.time() * 1000),
                        face_size=area, bbox=[det.bbox.as_list()],
                        asm=asm_of(det.features) if asm else {},
                        images={"photo": image} if image else {})
