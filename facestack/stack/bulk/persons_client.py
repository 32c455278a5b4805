"""The persons HTTP API (on the router's port) and sfapi's detect, as the bulk tools call them.

Every call answers ``(status, body)`` with the JSON body decoded by :func:`facestack.core.safejson.loads`
(the tools talk to their own site, but a proxy in between may answer anything); a transport failure
or a timeout raises :class:`ApiUnavailable`, which the importer retries and then reports.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from typing import Any

import aiohttp

from facestack.core import safejson
from sfapi.client import Client
from facestack.core.errors import FacestackError

__all__ = ["ApiUnavailable", "PersonsApi", "FaceCounter", "fetch_url"]

log = logging.getLogger(__name__)


class ApiUnavailable(FacestackError):
    """The API could not be reached or did not answer in time."""


class PersonsApi:
    """A session on the persons API of one router.

    ``base``: the router's URL (``http://127.0.0.1:18820``); ``prefix``: the plugin's
    ``api_prefix``; ``token``: sent as ``Authorization: Bearer`` when the router checks tokens;
    ``ssl``: how an ``https://`` router is verified (:meth:`facestack.core.tls.ClientTls.context`, e.g. a
    private CA; default: the system's CAs). Verification is never off.
    """

    def __init__(self, base: str, prefix: str = "/v1", token: str | None = None,
                 timeout_s: float = 120.0, connections: int = 16,
                 ssl: ssl.SSLContext | None = None) -> None:
        self.root = base.rstrip("/") + "/" + prefix.strip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers=self.headers,
                connector=aiohttp.TCPConnector(limit=self._connections,
                                               ssl=self._ssl if self._ssl is not None else True))
        return self._session

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """One request; ``(status, decoded JSON body or raw bytes)``."""
        try:
            async with self._http().request(method, self.root + path, **kw) as resp:
                raw = await resp.read()
                if resp.content_type == "application/json":
                    try:
                        return resp.status, safejson.loads(raw)
                    except safejson.JsonRefused as exc:
                        raise ApiUnavailable(f"{method} {path}: unreadable JSON answer "
                                             f"({exc})") from None
                return resp.status, raw
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiUnavailable(f"{method} {self.root + path}: {exc or type(exc).__name__}") \
                from None

    async def source(self, name: str) -> dict[str, Any] | None:
        """The source named ``name`` (its settings), or None when there is none."""
        status, body = await self.call("GET", "/sources", params={"q": name, "limit": "1000"})
        _expect(status, body, 200, "list sources")
        return next((s for s in body.get("results", ()) if s.get("name") == name), None)

    async def create_person(self, image: bytes, source: str, on_match: str | None = None,
                            filename: str = "photo.jpg") -> tuple[int, Any]:
        """``POST /persons`` with the photo (and ``on_match`` when given)."""
        form = aiohttp.FormData()
        form.add_field("image", image, filename=filename, content_type="image/jpeg")
        form.add_field("source", source)
        params = {"on_match": on_match} if on_match else None
        return await self.call("POST", "/persons", data=form, params=params)

    async def person_created(self, pid: str) -> float | None:
        """When person ``pid`` was created (Unix seconds), or None when there is no such person."""
        status, body = await self.call("GET", f"/persons/{pid}")
        if status == 404:
            return None
        _expect(status, body, 200, f"person {pid}")
        try:
            return datetime.datetime.fromisoformat(str(body["created"])).timestamp()
        except (KeyError, ValueError) as exc:
            raise ApiUnavailable(f"person {pid}: unreadable created time ({exc})") from None

    async def persons_page(self, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of persons (newest first): the total and the page."""
        status, body = await self.call("GET", "/persons",
                                       params={"limit": str(limit), "offset": str(offset)})
        _expect(status, body, 200, "list persons")
        return int(body["count"]), list(body["results"])

    async def open_export(self, what: str, to: str | None = None) -> str:
        """``POST /exports``: the router records who starts an export (audit log); its id."""
        body: dict[str, Any] = {"what": what}
        if to:
            body["to"] = to[:256]
        status, answer = await self.call("POST", "/exports", json=body)
        _expect(status, answer, 201, "open the export (audit log)")
        return str(answer["id"])

    async def close_export(self, export_id: str, persons: int, without_photo: int,
                           error: str | None = None) -> None:
        """``POST /exports/{id}/done``: the router records what the export wrote."""
        body: dict[str, Any] = {"persons": persons, "without_photo": without_photo}
        if error:
            body["error"] = " ".join(error.split())[:512]
        status, answer = await self.call("POST", f"/exports/{export_id}/done", json=body)
        _expect(status, answer, 200, "close the export (audit log)")

    async def entry_image(self, entry_id: str, kind: str) -> bytes | None:
        """The kept ``face`` or ``photo`` JPEG of an entry, or None when it was not kept."""
        status, body = await self.call("GET", f"/entries/{entry_id}/image/{kind}")
        if status == 404:
            return None
        _expect(status, body, 200, f"entry {entry_id} {kind} image")
        return body if isinstance(body, bytes) else None


def _expect(status: int, body: Any, want: int, what: str) -> None:
    if status != want:
        reason = body.get("reason") if isinstance(body, dict) else body[:200]
        raise ApiUnavailable(f"{what}: HTTP {status}: {reason}")


class FaceCounter:
    """Faces in a photo by sfapi's detect (the detector person enrolment uses), for the importer's
    "several faces" check: the areas of the faces found, largest first."""

    def __init__(self, sfapi_url: str, token: str | None = None, timeout_s: float = 60.0,
                 ssl: ssl.SSLContext | None = None) -> None:
        self._session = (aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl))
                         if ssl is not None else None)
        self.client = Client(sfapi_url, timeout=timeout_s, token=token, session=self._session)

    async def areas(self, image: bytes) -> list[float]:
        """Face areas (px^2), largest first. Raises SFApiError when sfapi refuses the image."""
        faces = await self.client.detect(image=image, detector="nnd")
        return sorted((max(f.bbox.width, 0) * max(f.bbox.height, 0) for f in faces),
                      reverse=True)

    async def close(self) -> None:
        await self.client.close()
        if self._session is not None:
            await self._session.close()


async def fetch_url(session: aiohttp.ClientSession, url: str, max_bytes: int,
                    timeout_s: float) -> bytes:
    """The bytes at an http(s) URL, at most ``max_bytes``; raises ValueError with the reason."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http:// and https:// URLs are fetched")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s),
                               allow_redirects=False) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            if (resp.content_length or 0) > max_bytes:
                raise ValueError(f"larger than {max_bytes} bytes")
            data = await resp.content.read(max_bytes + 1)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ValueError(f"cannot fetch: {exc or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    return data

