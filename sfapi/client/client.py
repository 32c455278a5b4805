"""The async sfapi client: :class:`Client` (detection, galleries) and its HTTP plumbing.

Public names and signatures follow the documented ``ntech.sfapi_client.client.Client``::

    async with Client("http://127.0.0.1:18411") as sfapi:
        faces = await sfapi.detect(image=jpeg, facen=True, gender=True)
        await sfapi.gallery("staff").add(ctx.idgen, faces[0], meta={"name": "Ann"})

Every method takes ``timeout`` (seconds; ``None`` = the client's default) and, beyond the documented
signature, an optional keyword ``request_id`` sent as the ``X-Request-Id`` header.
"""
from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from yarl import URL

from sfapi.client.errors import SFApiMalformedResponseError, SFApiRemoteError, SFApiTimeoutError
from sfapi.client.objects import DetectFace, DetectResponse, GalleryListItem

if TYPE_CHECKING:
    from sfapi.client.gallery import Gallery

__all__ = ["Client", "DEFAULT_URL", "DEFAULT_TIMEOUT"]

log = logging.getLogger(__name__)

#: Where the service listens by default.
DEFAULT_URL = "http://127.0.0.1:18411"
#: Default per-call timeout in seconds (the whole call: connect, send, read the answer).
DEFAULT_TIMEOUT = 15.0

_T = TypeVar("_T")
_NO_BODY_STATUSES = (204, 205)


def path_segment(value: object) -> str:
    """Percent-encode ``value`` as one URL path segment (a ``/`` inside it is encoded too)."""
    return quote(str(value), safe="")


class Client:
    """Async client of the sfapi HTTP service (``ntech.sfapi_client.Client``).

    Args:
        url: base URL of the service, e.g. ``http://127.0.0.1:18411`` (a path prefix is kept).
        timeout: default timeout of a call in seconds, used when a call passes ``timeout=None``;
            ``None`` here means no timeout at all.
        session: an ``aiohttp.ClientSession`` to use instead of one of the client's own. The caller
            owns it: :meth:`close` leaves it open.
        headers: extra headers sent with every request.
        token: an API token of the service (sent as ``Authorization: Bearer <token>``).

    The client's own session is created on the first request (so the client can be built outside an
    event loop) and closed by :meth:`close` or on leaving ``async with``. A closed client refuses
    new calls with :class:`RuntimeError`.
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float | None = DEFAULT_TIMEOUT,
                 session: aiohttp.ClientSession | None = None,
                 headers: Mapping[str, str] | None = None, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"sfapi url must be http(s)://host[:port][/prefix], got {url!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        self._base = url.rstrip("/")
        self._timeout = timeout
        self._headers = dict(headers or {})
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session = session
        self._owns_session = session is None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL of the service (without a trailing slash)."""
        return self._base

    @property
    def timeout(self) -> float | None:
        """The default timeout of a call, in seconds (``None``: no timeout)."""
        return self._timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def close(self) -> None:
        """Close the client's own HTTP session (idempotent; a session passed in is left open)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Client({self._base!r}, timeout={self._timeout!r})"

    # --- API ---------------------------------------------------------------------------------

    def gallery(self, name: str) -> Gallery:
        """A :class:`Gallery` proxy for gallery ``name`` (no request is made)."""
        from sfapi.client.gallery import Gallery  # gallery.py imports this module

        return Gallery(self, name)

    def __getitem__(self, name: str) -> Gallery:
        """``client['name']`` is ``client.gallery('name')``."""
        return self.gallery(name)

    async def detect(self, *, url: str | None = None, image: bytes | None = None,
                     facen: bool = False, gender: bool = False, age: bool = False,
                     emotions: bool = False, return_facen: bool = False, autorotate: bool = False,
                     detector: str | None = None, timeout: float | None = None,
                     request_id: str | None = None) -> DetectResponse:
        """Detect faces in an image and optionally extract their features.

        Args:
            url: URL of the image, fetched by the service (give ``url`` or ``image``, not both).
            image: the image file itself (JPEG, PNG, WEBP ... bytes).
            facen: extract the biometric sample; the detection is then cached by the service and
                each face has an ``id`` usable with :meth:`Gallery.add` and search filters.
            gender: recognize gender (``features['gender']``).
            age: estimate age (``features['age']``).
            emotions: recognize emotions (``features['emotions']``).
            return_facen: return the facen itself (``DetectFace.facen``).
            autorotate: also try the image in 4 orientations, merging overlapping detections.
            detector: ``'nnd'`` (any image) or ``'normalized'`` (a normalized face crop, as the
                video worker sends); ``None`` for the service default.
            timeout: timeout of this call in seconds (``None``: the client default).
            request_id: sent as ``X-Request-Id``.

        Returns:
            the faces found, with the image's EXIF ``orientation``.

        Raises:
            ValueError: neither or both of ``url`` and ``image``.
            SFApiRemoteError: the service refused (``BAD_PARAM``, ``EXTRACTION_ERROR`` ...).
            SFApiMalformedResponseError: network failure, timeout or unreadable answer.
        """
        if (url is None) == (image is None):
            raise ValueError("detect needs exactly one of url= or image=")
        if detector is not None and not isinstance(detector, str):
            raise TypeError(f"detector must be a str ('nnd' or 'normalized'), got {detector!r}")
        flags = {"facen": facen, "gender": gender, "age": age, "emotions": emotions,
                 "return_facen": return_facen, "autorotate": autorotate}
        params = {name: "true" for name, on in flags.items() if on}
        if detector is not None:
            params["detector"] = detector
        if image is not None:
            if not isinstance(image, (bytes, bytearray, memoryview)):
                raise TypeError(f"image must be bytes, got {type(image).__name__}")
            data = await self.request("POST", "/v2/detect", params=params, body=bytes(image),
                                      content_type="application/octet-stream", timeout=timeout,
                                      request_id=request_id)
        else:
            if not isinstance(url, str):
                raise TypeError(f"url must be a str, got {type(url).__name__}")
            data = await self.request("POST", "/v2/detect", params=params, json_body={"url": url},
                                      timeout=timeout, request_id=request_id)
        return parse(DetectResponse.from_json, data)

    async def get_detection(self, id: str | DetectFace, *, timeout: float | None = None,
                            request_id: str | None = None) -> DetectFace:
        """Read a cached detection back by its id (``GET /v2/detect/{id}``).

        An extension of the documented API. Raises :class:`SFApiRemoteError` with ``NOT_FOUND``
        once the detection has left the service's cache.
        """
        if isinstance(id, DetectFace):
            if id.id is None:
                raise ValueError("this DetectFace has no id (detect with facen=True)")
            id = id.id
        if not isinstance(id, str) or not id:
            raise TypeError(f"detection id must be a non-empty str, got {id!r}")
        data = await self.request("GET", f"/v2/detect/{path_segment(id)}", timeout=timeout,
                                  request_id=request_id)
        return parse(DetectFace.from_json, data)

    async def list_galleries(self, timeout: float | None = None, *,
                             request_id: str | None = None) -> list[GalleryListItem]:
        """The galleries of the service, each with its ``name`` and ``number`` of faces."""
        data = await self.request("GET", "/v2/galleries", timeout=timeout, request_id=request_id)

        def build(body: Any) -> list[GalleryListItem]:
            if not isinstance(body, Mapping) or not isinstance(body.get("galleries"), list):
                raise ValueError("gallery list: expected {'galleries': [...]}")
            return [GalleryListItem.from_json(item) for item in body["galleries"]]

        return parse(build, data)

    # --- HTTP plumbing (used by Gallery too) -------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the sfapi client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      json_body: Any = None, body: bytes | None = None,
                      content_type: str | None = None, timeout: float | None = None,
                      request_id: str | None = None) -> Any:
        """Make one request and return its decoded JSON answer (``None`` for an empty answer).

        Low-level: the typed methods are built on it. ``path`` must already be percent-encoded
        (see :func:`path_segment`).

        Raises:
            SFApiRemoteError: a non-2xx answer with a JSON error body.
            SFApiTimeoutError: the call took longer than its timeout.
            SFApiMalformedResponseError: any other failure to get a readable answer.
        """
        target = self._base + path
        if params:
            target += "?" + urlencode(params)
        headers = dict(self._headers)
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        if json_body is not None:
            body = json.dumps(json_body, allow_nan=False).encode("utf-8")
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        seconds = self._timeout if timeout is None else timeout
        session = self._get_session()
        log.debug("sfapi %s %s (request id %s)", method, target, request_id)
        try:
            async with session.request(method, URL(target, encoded=True), data=body,
                                       headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=seconds)) as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError as exc:  # asyncio.TimeoutError, aiohttp.ServerTimeoutError
            raise SFApiTimeoutError(f"{method} {path}: no answer within {seconds} s") from exc
        except aiohttp.ClientError as exc:
            raise SFApiMalformedResponseError(f"{method} {path}: request failed: {exc!r}") from exc
        return _decode(method, path, status, raw)


def _decode(method: str, path: str, status: int, raw: bytes) -> Any:
    """Turn one answer into JSON data or the matching error."""
    ok = 200 <= status < 300
    if ok and (status in _NO_BODY_STATUSES or not raw.strip()):
        return None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SFApiMalformedResponseError(
            f"{method} {path}: HTTP {status} with a body that is not JSON", status=status, body=raw,
        ) from exc
    if ok:
        return data
    if (isinstance(data, dict) and isinstance(data.get("code"), str)
            and isinstance(data.get("reason"), str)):
        log.debug("sfapi %s %s: HTTP %d %s", method, path, status, data["code"])
        raise SFApiRemoteError(data["code"], data["reason"], data.get("param"), data.get("value"),
                               status)
    raise SFApiMalformedResponseError(
        f"{method} {path}: HTTP {status} without a {{code, reason}} error body", status=status,
        body=raw)


def parse(builder: Callable[[Any], _T], data: Any) -> _T:
    """Apply a ``from_json`` builder; a body of the wrong shape becomes a malformed-response error."""
    try:
        return builder(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SFApiMalformedResponseError(f"unexpected answer from sfapi: {exc}") from exc
