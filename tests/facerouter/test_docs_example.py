"""The example plugin of docs/plugins.rst loads and runs."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.rst"


def example() -> str:
    text = DOC.read_text()
    block = re.search(r"\.\. code-block:: python\n\n(.*?)\n\S", text, re.S)
    assert block is not None
    return textwrap.dedent(block.group(1))


async def test_docs_example_runs(start_router, fake_sfapi) -> None:
    r = await start_router({"visitors": example()}, config={"visitors": {"threshold": 0.7}},
                           sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and body["failed_plugins"] == [], body
    assert r.router.registry["visitors"].obj.per_camera == {"cam-1": 1}
    assert fake_sfapi.detects == [{"facen": "true", "gender": "true", "detector": "normalized"}]
    assert fake_sfapi.requests[0][1] == "/v2/galleries/staff/faces/search"
