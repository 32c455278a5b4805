"""The guard of the tests that name non-loopback addresses refuses before anything is sent."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import socket

import pytest

from tests.loopback_guard import is_loopback


@pytest.mark.parametrize("host, ok", [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True),
                                      ("::ffff:127.0.0.1", True), ("10.0.0.5", False),
                                      ("169.254.169.254", False), ("93.184.216.34", False),
                                      ("::ffff:10.0.0.1", False), ("photos.test", False)])
def test_is_loopback(host: str, ok: bool) -> None:
    assert is_loopback(host) is ok


@pytest.mark.parametrize("host", ["10.0.0.5", "169.254.169.254", "93.184.216.34"])
def test_connects_and_datagrams_elsewhere_fail_before_sending(host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        with pytest.raises(AssertionError, match="only loopback"):
            tcp.connect((host, 80))
        with pytest.raises(AssertionError, match="only loopback"):
            tcp.connect_ex((host, 80))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(AssertionError, match="only loopback"):
            udp.sendto(b"x", (host, 53))


def test_name_lookups_fail_but_loopback_works() -> None:
    with pytest.raises(AssertionError, match="look up"):
        socket.getaddrinfo("intranet.test", 80)
    assert socket.getaddrinfo("127.0.0.1", 80)
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.connect(server.getsockname())
        conn, _ = server.accept()
        conn.close()
