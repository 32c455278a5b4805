"""Fixtures of the compatibility suites: the real sfapi and the real facerouter on loopback.

* ``neuroio_env``: the persons plugin (its API under ``/v1`` in the reference's shapes), with
  token auth on, and the ``neuroio`` client pointed at it. The client's base URL is the vendor's
  host; it is replaced (``neuroio.base.APIBaseBase.base_url``) before any call, and proxies from the
  environment are dropped, so no request ever leaves the machine.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import numpy as np
import pytest
from PIL import Image

from tests.plugins.persons.conftest import PersonsEnv, start_persons, start_router  # noqa: F401

#: The router's write token (the reference's examples use "abcd"; ours must be 16+ characters).
TOKEN = "compat-suite-token-0123456789"


def no_face_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A photo with no face in it: smooth random colour blobs."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
async def neuroio_env(start_persons: Any, monkeypatch: pytest.MonkeyPatch
                      ) -> AsyncIterator[PersonsEnv]:
    import neuroio.base

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    env = await start_persons(router={"auth": {"required": "always", "tokens": [
        {"token": TOKEN, "role": "write", "name": "compat"}]}})
    monkeypatch.setattr(neuroio.base.APIBaseBase, "base_url", env.router.base)
    assert env.router.base.startswith("http://127.0.0.1:")
    # the suite's own requests (frames, checks) carry the token in the router's usual scheme
    env.router.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        yield env
    finally:
        await env.router.http.close()


def image_bytes(data: Path, rel: str) -> bytes:
    return (data / "faces" / rel).read_bytes()
