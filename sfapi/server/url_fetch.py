"""Fetching an image named by ``{"url": ...}`` under the outbound address policy (no SSRF).

Every hop (the URL and each redirect, followed here, not by aiohttp) is parsed, its host resolved
once and checked by :mod:`sfapi.netpolicy`; the connection then goes to exactly the checked address:
aiohttp gets a resolver that answers only that address for that host (so the Host header and TLS
SNI still carry the name). Errors name the URL the caller sent, never a resolved address or port.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from sfapi.config import LimitsConfig, UrlFetchConfig
from sfapi.errors import BadParam, PayloadTooLarge
from sfapi.netpolicy import AddressPolicy, AddressRefused, IPAddress, NameNotResolved, Resolver, SystemResolver, \
    check_host

log = logging.getLogger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)


class _PinnedResolver(AbstractResolver):
    """Answers the one checked address for the one checked host; any other lookup fails."""

    def __init__(self, host: str, ip: IPAddress) -> None:
        self._host = host
        self._ip = ip

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"lookup of {host!r} is not allowed here")
        fam = socket.AF_INET if self._ip.version == 4 else socket.AF_INET6
        return [ResolveResult(hostname=host, host=str(self._ip), port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


class UrlFetcher:
    """Fetches image bytes from http(s) URLs within the byte limit and the address policy."""

    def __init__(self, limits: LimitsConfig, cfg: UrlFetchConfig, resolver: Resolver | None = None) -> None:
        self.limits = limits
        self.cfg = cfg
        self.policy = AddressPolicy(cfg.allow, cfg.deny)
        self.resolver: Resolver = resolver if resolver is not None else SystemResolver()

    async def fetch(self, url: Any) -> bytes:
        if not isinstance(url, str):
            raise BadParam("url", url, "url must be a string")
        try:
            async with asyncio.timeout(self.limits.url_timeout_s):
                return await self._follow(url)
        except TimeoutError:
            raise BadParam("url", url, f"fetching the url took longer than {self.limits.url_timeout_s:g} s") from None

    async def _follow(self, original: str) -> bytes:
        current = _parse(original, original)
        for hop in range(self.cfg.max_redirects + 1):
            ip = await self._check(current, original)
            status, location, data = await self._get(current, ip, original)
            if status not in _REDIRECTS:
                if status != 200:
                    raise BadParam("url", original, f"fetching the url answered HTTP {status}")
                return data
            if location is None:
                raise BadParam("url", original, f"fetching the url answered HTTP {status} without a Location")
            current = _parse(location, original, base=current)
            log.debug("url %s: redirect %d to %s", original, hop + 1, current)
        raise BadParam("url", original, f"fetching the url redirected more than {self.cfg.max_redirects} times")

    async def _check(self, url: URL, original: str) -> IPAddress:
        host = url.raw_host or ""
        try:
            return await check_host(host, url.port or 0, self.policy, self.resolver)
        except AddressRefused as exc:
            log.warning("url %s: host %s refused by the fetch policy (%s)", original, exc.host, exc.reason)
            raise BadParam("url", original, "the url's host is not allowed by the outbound fetch policy") from None
        except NameNotResolved:
            raise BadParam("url", original, "cannot fetch url: host name not found") from None

    async def _get(self, url: URL, ip: IPAddress, original: str) -> tuple[int, str | None, bytes]:
        limit = self.limits.max_image_bytes
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(url.raw_host or "", ip), use_dns_cache=False,
                                         force_close=True, limit=1)
        try:
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
                async with http.get(url, allow_redirects=False, headers={"Accept": "image/*"}) as resp:
                    if resp.status in _REDIRECTS:
                        return resp.status, resp.headers.get("Location"), b""
                    if resp.status != 200:
                        return resp.status, None, b""
                    if resp.content_length is not None and resp.content_length > limit:
                        raise PayloadTooLarge("url", original,
                                              f"url content of {resp.content_length} bytes exceeds the limit of {limit}")
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        data += chunk
                        if len(data) > limit:
                            raise PayloadTooLarge("url", original, f"url content exceeds the limit of {limit} bytes")
                    return resp.status, None, bytes(data)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("url %s: fetch from %s failed: %s: %s", original, url.raw_host, type(exc).__name__, exc)
            raise BadParam("url", original, "cannot fetch url") from None


def _parse(text: str, original: str, base: URL | None = None) -> URL:
    try:
        url = URL(text)
        if base is not None:
            url = base.join(url)
    except (ValueError, TypeError):
        raise BadParam("url", original, "url is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        what = "url" if base is None else "the url's redirect"
        raise BadParam("url", original, f"{what} must be an absolute http or https URL")
    if url.user is not None or url.password is not None:
        raise BadParam("url", original, "url must not carry credentials")
    return url
