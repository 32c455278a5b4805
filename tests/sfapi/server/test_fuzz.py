"""Schemathesis against the real sfapi (real models, loopback), checked against its OpenAPI document.

Nothing leaves the machine: the URL policy denies every host (names are refused before any lookup)
and names resolve through an empty stub resolver. Bounded by examples per operation; a longer run:
``SFAPI_FUZZ_EXAMPLES=200 SFAPI_FUZZ_MAX_TIME=600 pytest tests/sfapi/server/test_fuzz.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sfapi.netpolicy import StubResolver
from tests.fuzz_harness import fuzz

EXAMPLES = int(os.environ.get("SFAPI_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("SFAPI_FUZZ_SEED", "1"))
MAX_TIME = int(os.environ["SFAPI_FUZZ_MAX_TIME"]) if os.environ.get("SFAPI_FUZZ_MAX_TIME") else None

FUZZ_CONFIG = {
    "url_fetch": {"deny": ["*"]},
    "limits": {"url_timeout_s": 2, "max_image_bytes": 2 * 1024 * 1024, "max_image_pixels": 4_000_000},
    "gallery": {"default_schema": {"age": "int", "camera": "string", "tags": "strings"}},
}


@pytest.mark.slow
async def test_schemathesis_finds_nothing(start_server, tmp_path: Path) -> None:
    resolver = StubResolver()
    srv = await start_server(FUZZ_CONFIG, resolver=resolver)
    status, spec, _ = await srv.call("GET", "/docs/spec")
    assert status == 200
    await srv.call("POST", "/v2/galleries/people")  # the name the spec gives as its example
    report = await fuzz(srv.base, spec, tmp_path / "fuzz", max_examples=EXAMPLES, seed=SEED, max_time_s=MAX_TIME,
                        timeout_s=(MAX_TIME or 240) + 120)
    assert report.cases > 0, report.summary()
    assert report.failures == [], report.summary()
    assert resolver.lookups == []  # no name was even looked up
