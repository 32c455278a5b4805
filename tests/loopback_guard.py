"""A guard for tests that name private, link-local or public addresses: any connection, datagram or
name lookup this process tries towards something other than loopback fails the test at once, before
a packet leaves (policies are tested by classifying, never by connecting).

Guarded: ``socket.connect``, ``socket.connect_ex`` and ``socket.sendto`` to an address that is not
loopback, and ``socket.getaddrinfo`` of a name other than ``localhost`` (a lookup would ask the
system's resolver; numeric addresses are parsed, not looked up, and pass to the connect check).
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterator

import pytest

_INET = (socket.AF_INET, socket.AF_INET6)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address as a socket call gets it) is a loopback address."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _refuse(what: str, host: object) -> None:
    raise AssertionError(f"a test tried to {what} {host}: only loopback is allowed")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def checked(sock: socket.socket, address: Any, what: str) -> None:
        if sock.family in _INET and not is_loopback(str(address[0])):
            _refuse(what, address[0])

    def connect(self: socket.socket, address: Any) -> Any:
        checked(self, address, "connect to")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        checked(self, address, "connect to")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        checked(self, args[-1], "send a datagram to")
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost"):
            try:
                ipaddress.ip_address(str(name).split("%")[0])
            except ValueError:
                _refuse("look up", name)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
