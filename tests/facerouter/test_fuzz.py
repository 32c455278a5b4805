"""Schemathesis against the real facerouter (persons plugin enabled, real sfapi behind it), from the
router's own OpenAPI document, with a bounded number of examples: no 5xx, and every answer as
documented (issue 14)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.facerouter.fuzz import examples, run_schemathesis, summary

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_fuzz_facerouter_with_persons(start_server, start_router, tmp_path: Path) -> None:
    sf = await start_server()
    section = {"enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp_path / 'persons.db'}",
               "images_dir": str(tmp_path / "images")}
    r = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                   "disabled_plugins": ["archive", "webhook", "log"],
                                   "plugin_timeout_s": 20.0, "persons": section}, sfapi_url=sf.base)
    result = await run_schemathesis(r.base + "/openapi.json", tmp_path / "report", max_examples=examples(8))
    print(summary(result))
    assert result["returncode"] == 0, summary(result)
