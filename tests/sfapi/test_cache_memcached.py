"""The memcached detection cache against a real memcached started on loopback (skipped without one)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Iterator

import numpy as np
import pytest

from sfapi.config import CacheConfig
from sfapi.errors import CacheError
from sfapi.server.cache import CachedDetection, MemcachedCache, create_cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def memcached() -> Iterator[int]:
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed (CI installs it with apt-get)")
    port = _free_port()
    proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16", "-u", "nobody"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("memcached did not start")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


async def test_round_trip_through_real_memcached(memcached: int) -> None:
    cache = create_cache(CacheConfig(backend="memcached", memcached_port=memcached, ttl_s=60))
    assert isinstance(cache, MemcachedCache)
    vec = np.random.default_rng(1).standard_normal(128).astype(np.float32)
    det = CachedDetection("abc", {"bbox": {"left": 1, "top": 2, "right": 3, "bottom": 4}}, vec, "dlib-resnet-v1")
    try:
        await cache.put(det)
        back = await cache.get("abc")
        assert back is not None and back.face == det.face and back.model == det.model
        np.testing.assert_array_equal(back.facen, vec)
        assert await cache.get("missing") is None
    finally:
        await cache.close()


async def test_unreachable_memcached_is_cache_error() -> None:
    cache = MemcachedCache("127.0.0.1", _free_port(), 60)
    try:
        with pytest.raises(CacheError):
            await cache.get("x")
    finally:
        await cache.close()
