"""The gallery proxy of the sfapi client (the documented ``ntech.sfapi_client.gallery.Gallery``).

A :class:`Gallery` is only a name bound to a client: making one sends nothing, and the gallery need
not exist on the service until :meth:`Gallery.create` is called.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Callable, Iterable, Mapping, Union

from sfapi.client import filters as _filters
from sfapi.client.client import Client, parse, path_segment
from sfapi.client.errors import SFApiRemoteError
from sfapi.client.objects import DetectFace, Face, FaceId, ListResponse

__all__ = ["Gallery", "DEFAULT_REGENERATE_ATTEMPTS", "SORT_ORDERS"]

log = logging.getLogger(__name__)

#: How many times :meth:`Gallery.add` asks a callable ``new_id`` for another id after a CONFLICT
#: when ``regenerate_attempts`` is ``None`` (so at most 1 + 3 requests).
DEFAULT_REGENERATE_ATTEMPTS = 3
#: Accepted values of ``sort`` in :meth:`Gallery.list` (``''``: the service's default order).
SORT_ORDERS = ("", "id", "-id", "-confidence")

MetaValue = Union[int, str, list[str]]
FaceRef = Union[Face, FaceId, int, str]
NewId = Union[int, Callable[[], Union[int, Awaitable[int]]]]


class Gallery:
    """A gallery of faces on the service, addressed by name.

    Get one from :meth:`Client.gallery` (or ``client['name']``). Every method takes ``timeout``
    (seconds; ``None`` = the client's default) and an optional keyword ``request_id``.
    """

    __slots__ = ("_client", "_name")

    def __init__(self, client: Client, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"gallery name must be a non-empty str, got {name!r}")
        self._client = client
        self._name = name

    @property
    def name(self) -> str:
        """The gallery's name."""
        return self._name

    @property
    def client(self) -> Client:
        """The client this proxy sends its requests through."""
        return self._client

    def __repr__(self) -> str:
        return f"Gallery({self._name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gallery):
            return NotImplemented
        return self._client is other._client and self._name == other._name

    def __hash__(self) -> int:
        return hash((id(self._client), self._name))

    def _path(self, *rest: object) -> str:
        return "/".join(["/v2/galleries", path_segment(self._name),
                         *(path_segment(part) for part in rest)])

    def _face_number(self, face: FaceRef) -> int:
        """The face id within this gallery of a Face, FaceId, int or str reference."""
        if isinstance(face, Face):
            face = face.id
        if isinstance(face, str):
            face = int(face) if face.isdigit() else FaceId.parse(face)
        if isinstance(face, FaceId):
            if face.gallery != self._name:
                raise ValueError(f"face {face.gallery}/{face.face} is not in gallery {self._name!r}")
            face = face.face
        if isinstance(face, bool) or not isinstance(face, int):
            raise TypeError(f"face must be a Face, a FaceId or an int id, got {face!r}")
        return face

    # --- gallery -----------------------------------------------------------------------------

    async def create(self, timeout: float | None = None, *, request_id: str | None = None,
                     meta_schema: Mapping[str, str] | None = None, exist_ok: bool = False) -> None:
        """Create the gallery on the service.

        Args:
            meta_schema: meta keys and their types (``int``, ``string``, ``strings``); without it the
                service applies the schema its config declares for this name.
            exist_ok: an existing gallery is not an error (its schema is left as it is).

        Raises:
            SFApiRemoteError: ``CONFLICT`` if it exists already (unless ``exist_ok``).
        """
        body = {"meta_schema": dict(meta_schema)} if meta_schema is not None else {}
        try:
            await self._client.request("POST", self._path(), json_body=body, timeout=timeout,
                                       request_id=request_id)
        except SFApiRemoteError as exc:
            if not (exist_ok and exc.code == "CONFLICT"):
                raise

    async def drop(self, timeout: float | None = None, *, request_id: str | None = None) -> None:
        """Remove the gallery and all its faces from the service.

        Raises:
            SFApiRemoteError: ``GALLERY_NOT_FOUND`` if there is no such gallery.
        """
        await self._client.request("DELETE", self._path(), timeout=timeout, request_id=request_id)

    # --- faces -------------------------------------------------------------------------------

    async def list(self, *, filters: Iterable[_filters.Filter] | None = None, limit: int = 1000,
                   sort: str = "", page: str | None = None, ignore_errors: bool = False,
                   timeout: float | None = None, request_id: str | None = None) -> ListResponse:
        """List the faces that match every filter, one page at a time.

        Args:
            filters: :mod:`~sfapi.client.filters` objects, all of which must match.
            limit: maximum number of faces returned.
            sort: ``'id'``, ``'-id'`` or ``'-confidence'`` (the latter with a look-alike filter);
                ``''`` for the service default (``id`` without a look-alike filter, else
                ``-confidence``).
            page: the ``next_page`` cursor of the previous page; ``None`` for the first page.
            ignore_errors: answer from the storage shards that are available instead of failing.
            timeout: timeout of this call in seconds (``None``: the client default).
            request_id: sent as ``X-Request-Id``.

        Returns:
            the faces, with ``next_page`` (``None`` on the last page).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        if sort not in SORT_ORDERS:
            raise ValueError(f"sort must be one of {SORT_ORDERS}, got {sort!r}")
        if page is not None and not isinstance(page, str):
            raise TypeError(f"page must be a str cursor or None, got {page!r}")
        body: dict[str, Any] = {
            "filters": _filters.serialize(filters, gallery=self._name),
            "limit": limit,
            "page": page,
            "ignore_errors": bool(ignore_errors),
        }
        if sort:
            body["sort"] = sort
        data = await self._client.request("POST", self._path("faces", "search"), json_body=body,
                                          timeout=timeout, request_id=request_id)
        return parse(ListResponse.from_json, data)

    async def add(self, new_id: NewId, source: DetectFace | Face | FaceId | str, *,
                  meta: Mapping[str, MetaValue] | None = None,
                  regenerate_attempts: int | None = None, timeout: float | None = None,
                  request_id: str | None = None) -> Face:
        """Create a face in the gallery from a detection or from another stored face.

        Args:
            new_id: the new face's id, or a (sync or async) callable returning one, such as
                ``ctx.idgen``.
            source: a :class:`DetectFace` (detected with ``facen=True``), a :class:`Face` or
                :class:`FaceId` of a stored face, or a string: a detection id, or an explicit
                ``'detection:<id>'`` / ``'face:<gallery>/<id>'``.
            meta: the face's meta data (str keys; int, str or list-of-str values).
            regenerate_attempts: when ``new_id`` is callable and the service answers ``CONFLICT``
                (the id is taken), call it again and retry at most this many times; ``None`` means
                :data:`DEFAULT_REGENERATE_ATTEMPTS`. With an int ``new_id`` a ``CONFLICT`` is raised
                at once.
            timeout: timeout of each request in seconds (``None``: the client default).
            request_id: sent as ``X-Request-Id``.

        Returns:
            the new face.

        Raises:
            SFApiRemoteError: ``CONFLICT`` (id taken, retries exhausted), ``SOURCE_NOT_FOUND``,
                ``SOURCE_GALLERY_NOT_FOUND``, ``GALLERY_NOT_FOUND``, ``BAD_PARAM`` ...
        """
        if regenerate_attempts is None:
            regenerate_attempts = DEFAULT_REGENERATE_ATTEMPTS
        if isinstance(regenerate_attempts, bool) or not isinstance(regenerate_attempts, int) \
                or regenerate_attempts < 0:
            raise ValueError(f"regenerate_attempts must be an int >= 0, got {regenerate_attempts!r}")
        body: dict[str, Any] = {"from": source_ref(source),
                                "meta": dict(meta) if meta is not None else {}}
        retries = regenerate_attempts if callable(new_id) else 0
        attempt = 0
        while True:
            face_id = await _resolve_id(new_id)
            try:
                data = await self._client.request("POST", self._path("faces", face_id),
                                                  json_body=body, timeout=timeout,
                                                  request_id=request_id)
            except SFApiRemoteError as exc:
                if exc.code != "CONFLICT" or attempt >= retries:
                    raise
                attempt += 1
                log.info("face id %d is taken in gallery %s; new id, retry %d of %d", face_id,
                         self._name, attempt, retries)
                continue
            return parse(Face.from_json, data)

    async def get(self, face: FaceRef, timeout: float | None = None, *,
                  request_id: str | None = None) -> Face:
        """Read one face of the gallery (a :class:`Face`, a :class:`FaceId` or an int id).

        Raises:
            SFApiRemoteError: ``NOT_FOUND`` or ``GALLERY_NOT_FOUND``.
        """
        data = await self._client.request("GET", self._path("faces", self._face_number(face)),
                                          timeout=timeout, request_id=request_id)
        return parse(Face.from_json, data)

    async def update(self, face: FaceRef, *, meta: Mapping[str, MetaValue | None] | None = None,
                     timeout: float | None = None, request_id: str | None = None) -> Face:
        """Update a face's meta data; keys left out, or given as ``None``, keep their value.

        Returns:
            the face as updated.
        """
        body = {"meta": dict(meta) if meta is not None else {}}
        data = await self._client.request("PATCH", self._path("faces", self._face_number(face)),
                                          json_body=body, timeout=timeout, request_id=request_id)
        return parse(Face.from_json, data)

    async def delete(self, face: FaceRef, timeout: float | None = None, *,
                     request_id: str | None = None) -> None:
        """Remove a face from the gallery (a :class:`Face`, a :class:`FaceId` or an int id).

        Raises:
            SFApiRemoteError: ``NOT_FOUND`` or ``GALLERY_NOT_FOUND``.
        """
        await self._client.request("DELETE", self._path("faces", self._face_number(face)),
                                   timeout=timeout, request_id=request_id)


def source_ref(source: DetectFace | Face | FaceId | str) -> str:
    """The ``from`` value of an add request: ``'detection:<id>'`` or ``'face:<gallery>/<id>'``."""
    if isinstance(source, DetectFace):
        if source.id is None:
            raise ValueError("this DetectFace has no id: detect with facen=True to add it")
        return f"detection:{source.id}"
    if isinstance(source, Face):
        source = source.id
    if isinstance(source, FaceId):
        return f"face:{source.gallery}/{source.face}"
    if isinstance(source, str) and source:
        if source.startswith(("detection:", "face:")):
            return source
        return f"detection:{source}"
    raise TypeError(f"source must be a DetectFace, a Face, a FaceId or a str, got {source!r}")


async def _resolve_id(new_id: NewId) -> int:
    value: Any = new_id() if callable(new_id) else new_id
    if inspect.isawaitable(value):
        value = await value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"new face id must be an int, got {value!r}")
    return value
