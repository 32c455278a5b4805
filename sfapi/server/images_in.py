"""Getting the image bytes of a request: raw body, multipart ``photo`` or JSON ``{"url": ...}``."""
from __future__ import annotations

import logging

import aiohttp
from aiohttp import http_exceptions, web

from sfapi.config import LimitsConfig
from sfapi.errors import BadParam, MalformedRequest, PayloadTooLarge
from sfapi.server.params import json_body
from sfapi.server.url_fetch import UrlFetcher

log = logging.getLogger(__name__)


async def read_image(request: web.Request, limits: LimitsConfig, fetcher: UrlFetcher | None) -> bytes:
    ctype = request.content_type
    if request.content_length is not None and request.content_length > limits.max_image_bytes + 64 * 1024:
        raise PayloadTooLarge("image", request.content_length,
                              f"body of {request.content_length} bytes exceeds the limit of {limits.max_image_bytes}")
    if ctype == "multipart/form-data":
        return await _multipart_photo(request, limits)
    if ctype == "application/json":
        obj = await json_body(request)
        if not isinstance(obj, dict) or "url" not in obj:
            raise BadParam("url", None, 'JSON body must be {"url": "http(s)://..."}')
        if set(obj) - {"url"}:
            key = sorted(set(obj) - {"url"})[0]
            raise BadParam(key, obj[key], f'unknown field {key!r}; the JSON body is {{"url": "http(s)://..."}}')
        if fetcher is None or not limits.allow_urls:
            raise BadParam("url", obj.get("url"), "fetching images by URL is disabled in config")
        return await fetcher.fetch(obj["url"])
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
    except (ValueError, AssertionError, aiohttp.ClientPayloadError, http_exceptions.HttpProcessingError) as exc:
        raise MalformedRequest(f"malformed multipart body: {str(exc)[:200]}") from None
    raise BadParam("photo", None, "multipart body has no 'photo' part")
