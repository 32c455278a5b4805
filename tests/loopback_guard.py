"""A guard for tests that name private, link-local or public addresses: any connection this process
tries to a non-loopback address fails the test at once (policies are tested by classifying, never by
connecting)."""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterator

import pytest


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                ip = None
            if ip is None or not (ip.is_loopback or getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback):
                raise AssertionError(f"a test tried to connect to {host}: only loopback is allowed")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
