import numpy as np

from sfapi.server.cache import CachedDetection, MemoryCache


def _det(i: str) -> CachedDetection:
    return CachedDetection(i, {"bbox": {"left": 1}}, np.arange(4, dtype=np.float32), "m1")


async def test_ttl_expiry() -> None:
    cache = MemoryCache(ttl_s=0.0001, capacity=10)
    await cache.put(_det("a"))
    import asyncio
    await asyncio.sleep(0.01)
    assert await cache.get("a") is None


async def test_lru_capacity_keeps_recently_used() -> None:
    cache = MemoryCache(ttl_s=60, capacity=2)
    await cache.put(_det("a"))
    await cache.put(_det("b"))
    assert await cache.get("a") is not None  # a is now most recent
    await cache.put(_det("c"))
    assert await cache.get("b") is None
    assert await cache.get("a") is not None and await cache.get("c") is not None
    assert len(cache) == 2


def test_serialization_round_trip() -> None:
    det = _det("x")
    back = CachedDetection.from_bytes(det.to_bytes())
    assert back.id == "x" and back.model == "m1" and back.face == det.face
    np.testing.assert_array_equal(back.facen, det.facen)
