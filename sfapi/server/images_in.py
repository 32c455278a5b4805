"""Getting the image bytes of a request: raw body, multipart ``photo`` or JSON ``{"url": ...}``."""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from sfapi.config import LimitsConfig
from sfapi.errors import BadParam, MalformedRequest, PayloadTooLarge

log = logging.getLogger(__name__)


async def read_image(request: web.Request, limits: LimitsConfig, http: aiohttp.ClientSession | None) -> bytes:
    ctype = request.content_type
    if request.content_length is not None and request.content_length > limits.max_image_bytes + 64 * 1024:
        raise PayloadTooLarge("image", request.content_length,
                              f"body of {request.content_length} bytes exceeds the limit of {limits.max_image_bytes}")
    if ctype == "multipart/form-data":
        return await _multipart_photo(request, limits)
    if ctype == "application/json":
        try:
            obj = json.loads(await request.read() or b"null")
        except ValueError as exc:
            raise MalformedRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict) or "url" not in obj:
            raise BadParam("url", None, 'JSON body must be {"url": "http(s)://..."}')
        if http is None or not limits.allow_urls:
            raise BadParam("url", obj.get("url"), "fetching images by URL is disabled in config")
        return await fetch_url(http, obj["url"], limits)
    data = await request.read()
    if len(data) > limits.max_image_bytes:
        raise PayloadTooLarge("image", len(data), f"image of {len(data)} bytes exceeds the limit of {limits.max_image_bytes}")
    return data


async def _multipart_photo(request: web.Request, limits: LimitsConfig) -> bytes:
    try:
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == "photo":
                data = bytearray()
                while chunk := await part.read_chunk(1 << 16):  # type: ignore[union-attr]
                    data += chunk
                    if len(data) > limits.max_image_bytes:
                        raise PayloadTooLarge("photo", len(data), f"photo exceeds the limit of {limits.max_image_bytes} bytes")
                return bytes(data)
    except (ValueError, AssertionError, aiohttp.ClientPayloadError) as exc:
        raise MalformedRequest(f"malformed multipart body: {exc}") from None
    raise BadParam("photo", None, "multipart body has no 'photo' part")


async def fetch_url(http: aiohttp.ClientSession, url: object, limits: LimitsConfig) -> bytes:
    if not isinstance(url, str):
        raise BadParam("url", url, "url must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadParam("url", url, "url must be an absolute http or https URL")
    try:
        async with asyncio.timeout(limits.url_timeout_s):
            async with http.get(url, allow_redirects=True, max_redirects=3) as resp:
                if resp.status != 200:
                    raise BadParam("url", url, f"fetching the url answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > limits.max_image_bytes:
                    raise PayloadTooLarge("url", url, f"url content of {resp.content_length} bytes exceeds the limit")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    data += chunk
                    if len(data) > limits.max_image_bytes:
                        raise PayloadTooLarge("url", url, f"url content exceeds the limit of {limits.max_image_bytes} bytes")
                return bytes(data)
    except TimeoutError:
        raise BadParam("url", url, f"fetching the url took longer than {limits.url_timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise BadParam("url", url, f"cannot fetch the url: {exc.__class__.__name__}: {exc}") from None
