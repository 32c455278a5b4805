"""What a camera job may read and where it may post: the job API's source and router policy.

A job created over the job API (and again whenever a worker claims it from the job store)
is checked before it starts; jobs written in the config file are the operator's own and are not.

* ``stream_url``: a URL whose scheme is in ``source.allowed_schemes`` (rtsp, rtsps, http, https by
  default), a local file (an absolute path or ``file://``) only under one of
  ``source.allowed_file_roots`` (none by default; symbolic links are resolved first), a device
  (``/dev/...``) only when listed in ``source.allowed_devices``;
* ``router_url``: http or https only;
* the host of either URL is checked against ``source.stream_hosts`` / ``source.router_hosts``
  (:class:`HostRules`): a host name listed there is taken as is, any other name is resolved and
  every address it resolves to must be admitted. Nothing is ever connected to for the check;
* ``settings.ffmpeg_params``: keys from ``source.ffmpeg_params_allowed`` only.

Refusals are :class:`~video_worker.errors.BadJob` (400) naming the parameter. The resolver is
injectable (tests use a stub that never does a lookup). FFmpeg resolves the name again when it
connects, so a name whose answer changes in between (DNS rebinding) is not covered, nor is an HTTP
redirect FFmpeg follows; list cameras by address, or pin their names in ``/etc/hosts``, where that
matters. What FFmpeg may open in turn is limited per scheme (``protocol_whitelist``, see
:mod:`video_worker.source`): a file source never reaches the network, a network one never a file.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from video_worker.errors import BadJob

if TYPE_CHECKING:
    from video_worker.config import SourceSection

__all__ = ["CATEGORIES", "Resolver", "SourcePolicy", "classify", "host_admitted",
           "system_resolver", "check_host_rule"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: resolves a host name to its addresses (text); raises OSError when it cannot
Resolver = Callable[[str], Awaitable[list[str]]]

#: address categories usable in ``allow`` / ``deny`` lists
CATEGORIES = ("loopback", "private", "link_local", "multicast", "unspecified", "reserved", "public")
_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))


def classify(addr: IPAddress) -> str:
    """The category of an address: loopback, private (RFC 1918, CGNAT, ULA), link_local (cloud
    metadata included), multicast, unspecified, reserved (documentation, benchmarking ...) or
    public."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return classify(addr.ipv4_mapped)
    if addr.is_loopback:
        return "loopback"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_link_local:
        return "link_local"
    if addr.is_multicast:
        return "multicast"
    if any(addr in net for net in _PRIVATE_NETS):
        return "private"
    if addr.is_global:
        return "public"
    return "reserved"


def check_host_rule(rule: str) -> str:
    """Validate one ``allow`` / ``deny`` entry (a category, a CIDR or an address, a host name)."""
    text = rule.strip().lower()
    if text in CATEGORIES:
        return text
    try:
        ipaddress.ip_network(text, strict=False)
        return text
    except ValueError:
        pass
    name = text.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(
            lbl and len(lbl) <= 63 and all(c.isalnum() or c == "-" for c in lbl) for lbl in labels):
        raise ValueError(f"{rule!r} is not a category ({', '.join(CATEGORIES)}), a CIDR or a host name")
    return name


def _matches(rules: Iterable[str], addr: IPAddress) -> bool:
    category = classify(addr)
    plain = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr
    for rule in rules:
        if rule == category:
            return True
        try:
            net = ipaddress.ip_network(rule, strict=False)
        except ValueError:
            continue
        if plain.version == net.version and plain in net:
            return True
    return False


async def host_admitted(host: str, allow: list[str], deny: list[str], resolver: Resolver) -> str | None:
    """``None`` when ``host`` may be reached under the rules, else why not."""
    name = host.strip("[]").rstrip(".").lower()
    if not name:
        return "the URL has no host"
    try:
        literal: IPAddress | None = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is None:
        if name in deny:
            return f"host {name} is denied"
        if name in allow:
            return None
        try:
            found = await resolver(name)
        except (OSError, UnicodeError, ValueError):
            return f"host {name} cannot be resolved"
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        except ValueError:
            return f"host {name} resolves to something that is not an address"
        if not addresses:
            return f"host {name} cannot be resolved"
    else:
        addresses = [literal]
    for addr in addresses:
        if _matches(deny, addr):
            return f"{name} is denied ({classify(addr)} address)"
        if not _matches(allow, addr):
            return f"{name} is not allowed ({classify(addr)} address)"
    return None


async def system_resolver(host: str) -> list[str]:
    """The addresses of ``host`` from the system resolver (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class SourcePolicy:
    """Checks jobs from the API against the worker's ``source`` section.

    Args:
        source: the worker's :class:`~video_worker.config.SourceSection`.
        router_url: the worker's own ``router_url``, whose host jobs may always post to.
        resolver: name resolution (default: the system's).
    """

    def __init__(self, source: SourceSection, router_url: str, resolver: Resolver | None = None) -> None:
        self.cfg = source
        self.resolver = resolver or system_resolver
        self.own_router = (urlsplit(router_url).hostname or "").lower()

    async def check(self, stream_url: str, router_url: str | None, settings: dict[str, object]) -> None:
        """Raise :class:`BadJob` naming the first parameter the policy refuses."""
        await self.check_stream(stream_url)
        if router_url is not None:
            await self.check_router(router_url)
        params = settings.get("ffmpeg_params")
        if isinstance(params, dict):
            allowed = set(self.cfg.ffmpeg_params_allowed)
            for key in params:
                if key not in allowed:
                    raise BadJob(f"settings.ffmpeg_params: option {key!r} is not allowed (allowed: "
                                 f"{', '.join(sorted(allowed)) or 'none'}; source.ffmpeg_params_allowed)",
                                 param="settings.ffmpeg_params")

    async def check_stream(self, url: str) -> None:
        cfg = self.cfg
        if not url.isprintable() or url != url.strip():
            raise BadJob("stream_url must be printable text without surrounding spaces",
                         param="stream_url")
        if url.startswith("/") or url.lower().startswith("file:"):
            await self._check_path(url)
            return
        scheme, sep, _ = url.partition("://")
        if not sep:
            raise BadJob("stream_url must be a URL (e.g. rtsp://host/path) or an absolute path",
                         param="stream_url")
        allowed = [s.lower() for s in cfg.allowed_schemes]
        if scheme.lower() not in allowed:
            raise BadJob(f"stream_url: scheme {scheme[:20]!r} is not allowed (allowed: "
                         f"{', '.join(allowed) or 'none'}; source.allowed_schemes)", param="stream_url")
        host = _host(url, "stream_url")
        rules = cfg.stream_hosts
        why = await host_admitted(host, rules.allow, rules.deny, self.resolver)
        if why is not None:
            raise BadJob(f"stream_url: {why} (source.stream_hosts)", param="stream_url")

    async def check_router(self, url: str) -> None:
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise BadJob("router_url must be an http:// or https:// URL", param="router_url")
        host = _host(url, "router_url")
        if host.strip("[]").lower() == self.own_router:
            return
        rules = self.cfg.router_hosts
        why = await host_admitted(host, rules.allow, rules.deny, self.resolver)
        if why is not None:
            raise BadJob(f"router_url: {why} (source.router_hosts)", param="router_url")

    async def _check_path(self, url: str) -> None:
        if url.lower().startswith("file:"):
            if not url.lower().startswith("file:///"):
                raise BadJob("stream_url: a file URL must be file:///absolute/path", param="stream_url")
            path = url[len("file://"):]
        else:
            path = url
        if "\x00" in path:
            raise BadJob("stream_url: bad path", param="stream_url")
        cfg = self.cfg
        normal = os.path.normpath(path)
        if normal.startswith("/dev/"):
            if normal in {os.path.normpath(str(d)) for d in cfg.allowed_devices}:
                return
            raise BadJob("stream_url: this device is not listed in source.allowed_devices",
                         param="stream_url")
        roots = [Path(r) for r in cfg.allowed_file_roots]
        if not roots:
            raise BadJob("stream_url: local files are not allowed (source.allowed_file_roots is "
                         "empty)", param="stream_url")
        if not await asyncio.to_thread(_under_roots, path, roots):
            raise BadJob("stream_url: local files are allowed only under source.allowed_file_roots",
                         param="stream_url")


def _under_roots(path: str, roots: list[Path]) -> bool:
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


def _host(url: str, param: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadJob(f"{param} is not a valid URL: {exc}", param=param) from None
    if "\\" in parts.netloc or any(c.isspace() for c in parts.netloc):
        raise BadJob(f"{param} has a host part that parsers may read differently", param=param)
    host = parts.hostname
    if not host:
        raise BadJob(f"{param} has no host", param=param)
    return host
