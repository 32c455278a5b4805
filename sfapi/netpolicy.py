"""Outbound address policy: which hosts and addresses a service may connect to.

Service-independent (sfapi's URL fetch uses it; the video worker can use it for its source and
router hosts). A destination is checked in this order:

1. an ``allow`` rule that matches the host name or the address admits it;
2. a ``deny`` rule that matches refuses it (``"*"`` matches every name and address, so a deny-all
   policy refuses a host name before it is even looked up);
3. an address in a special range (loopback, private, link-local, multicast, unspecified, reserved,
   cloud metadata; see :func:`classify`) is refused unless its category is in ``permit``;
4. anything else (a public address) is admitted.

Rules are strings: an address (``10.1.2.3``, ``::1``), a network (``10.0.0.0/8``), a host name
(``cams.example.com``, matched case-insensitively), a name suffix (``*.example.com``) or ``*``.
Names are resolved once by a :class:`Resolver` (injectable: tests use :class:`StubResolver`);
:func:`check_host` checks every address a name resolves to and returns the one to connect to,
so the caller connects to exactly the address that was checked.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence, Union

from facestack.core.errors import FacestackError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: Categories of special addresses, refused unless permitted or allowed by a rule.
CATEGORIES = ("loopback", "private", "link-local", "multicast", "unspecified", "reserved", "metadata")

#: Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack 169.254.169.254, AWS IPv6, Alibaba,
#: Azure wire server). Refused as "metadata" even where another category would be permitted.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"))


class PolicyError(FacestackError):
    """Base of the refusals of this module."""


class AddressRefused(PolicyError):
    """A host or address the policy does not admit; ``reason`` is a category or ``"denied"``."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        super().__init__(f"{host} ({address or 'not looked up'}): {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class NameNotResolved(PolicyError):
    """A host name that resolves to no address."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host}: no address")
        self.host = host


def parse_address(text: str) -> IPAddress | None:
    """The address written in ``text`` (brackets and IPv6 zone ids allowed), or None for a name."""
    text = text.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0] if ":" in text else text)
    except ValueError:
        return None


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """The special category of ``ip`` (one of :data:`CATEGORIES`), or None for a global address.

    IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64) are classified by it.
    """
    inner = _embedded_v4(ip)
    if inner is not None:
        return classify(inner) or ("reserved" if ip.is_reserved else None)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private and not ip.is_reserved:
        return "private"
    if not ip.is_global:
        return "reserved"  # reserved, documentation, benchmarking, shared (CGNAT) ranges...
    return None


@dataclass(frozen=True)
class Rule:
    """One allow/deny entry: a network, a host name, a ``*.suffix`` or ``*`` (everything)."""

    text: str
    network: IPNetwork | None = None
    name: str | None = None
    suffix: str | None = None
    everything: bool = False

    @classmethod
    def parse(cls, text: str) -> "Rule":
        raw = text.strip()
        if raw == "*":
            return cls(raw, everything=True)
        if raw.startswith("*."):
            suffix = raw[1:].lower().rstrip(".")
            if not _valid_name(suffix[1:]):
                raise ValueError(f"invalid host suffix {text!r}")
            return cls(raw, suffix=suffix)
        try:
            return cls(raw, network=ipaddress.ip_network(raw.strip("[]"), strict=False))
        except ValueError:
            pass
        name = raw.lower().rstrip(".")
        if not _valid_name(name):
            raise ValueError(f"{text!r} is not an address, network (CIDR), host name, *.suffix or *")
        return cls(raw, name=name)

    def matches_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if self.everything:
            return True
        if self.name is not None:
            return host == self.name
        return self.suffix is not None and host.endswith(self.suffix)

    def matches_address(self, ip: IPAddress) -> bool:
        if self.everything:
            return True
        if self.network is None or ip.version != self.network.version:
            return False
        return ip in self.network


def _valid_name(name: str) -> bool:
    labels = name.split(".")
    return bool(name) and len(name) <= 253 and all(
        0 < len(label) <= 63 and all(c.isascii() and (c.isalnum() or c in "-_") for c in label) for label in labels)


class AddressPolicy:
    """Allow/deny rules plus the special-range default (see the module docstring)."""

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = (), permit: Iterable[str] = ()) -> None:
        self.allow = tuple(Rule.parse(r) for r in allow)
        self.deny = tuple(Rule.parse(r) for r in deny)
        unknown = set(permit) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown address categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
        self.permit = frozenset(permit)

    def name_verdict(self, host: str) -> str | None:
        """Before lookup: ``"allow"`` when an allow rule names the host, a refusal reason when a deny
        rule matches it (and no allow rule could admit its addresses), else None (look it up)."""
        if any(r.matches_name(host) for r in self.allow):
            return "allow"
        if any(r.matches_name(host) for r in self.deny) and not any(r.network for r in self.allow):
            return "denied"
        return None

    def address_refusal(self, host: str, ip: IPAddress, name_allowed: bool = False) -> str | None:
        """Why ``ip`` (an address of ``host``) is refused, or None when it is admitted."""
        if name_allowed or any(r.matches_address(ip) for r in self.allow):
            return None
        if any(r.matches_name(host) or r.matches_address(ip) for r in self.deny):
            return "denied"
        category = classify(ip)
        if category is not None and (category not in self.permit or category == "metadata"):
            return category
        return None


class Resolver(Protocol):
    """Looks a host name up; returns its addresses (empty or :class:`NameNotResolved` if none)."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in the loop's default executor)."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise NameNotResolved(host) from None
        out: list[IPAddress] = []
        for info in infos:
            ip = parse_address(str(info[4][0]))
            if ip is not None and ip not in out:
                out.append(ip)
        return out


class StubResolver:
    """A fixed name -> addresses table (tests, fuzzing): unknown names do not resolve."""

    def __init__(self, table: Mapping[str, str | Sequence[str]] | None = None) -> None:
        self.table = {k.lower(): ([v] if isinstance(v, str) else list(v)) for k, v in (table or {}).items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        self.lookups.append(host)
        found = [parse_address(a) for a in self.table.get(host.lower().rstrip("."), [])]
        return [ip for ip in found if ip is not None]


async def check_host(host: str, port: int, policy: AddressPolicy, resolver: Resolver) -> IPAddress:
    """The address to connect to for ``host``, after checking it (and every other address the name
    resolves to) against ``policy``; raises :class:`AddressRefused` or :class:`NameNotResolved`."""
    literal = parse_address(host)
    if literal is not None:
        reason = policy.address_refusal(host, literal)
        if reason is not None:
            raise AddressRefused(host, str(literal), reason)
        return literal
    verdict = policy.name_verdict(host)
    if verdict not in (None, "allow"):
        raise AddressRefused(host, None, verdict)
    addresses = list(await resolver.resolve(host, port))
    if not addresses:
        raise NameNotResolved(host)
    for ip in addresses:
        reason = policy.address_refusal(host, ip, name_allowed=verdict == "allow")
        if reason is not None:
            raise AddressRefused(host, str(ip), reason)
    return addresses[0]
