"""The real Milvus server dies (SIGKILL) while sfapi serves a gallery on it: searches answer 503
STORAGE_ERROR, writes are refused (never acknowledged and then lost), every acknowledged face
survives, and sfapi recovers by itself once the server is started again on the same data folder."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pymilvus")

from tests.milvus_server import MilvusUnderTest, unique_prefix  # noqa: E402

#: attempts (one a second, each bounded by milvus_timeout_s) before recovery counts as failed
RECOVERY_ATTEMPTS = 120


async def _detect(srv: Any, photo: Path) -> str:
    status, body, _ = await srv.call("POST", "/v2/detect?facen=1", data=photo.read_bytes())
    assert status == 200, body
    return body["faces"][0]["id"]


@pytest.mark.slow
async def test_server_killed_while_sfapi_serves(start_server: Any, milvus_server: MilvusUnderTest,
                                                data_dir: Path) -> None:
    local = milvus_server.need_local()
    srv = await start_server({"gallery": {"backend": "milvus", "milvus_uri": local.uri,
                                          "milvus_prefix": unique_prefix(), "milvus_timeout_s": 3}})
    assert (await srv.call("POST", "/v2/galleries/people"))[0] == 200
    obama = await _detect(srv, data_dir / "faces/obama/img1.jpg")
    biden = await _detect(srv, data_dir / "faces/biden/img1.jpg")
    probe = await _detect(srv, data_dir / "faces/obama/img2.jpg")
    for face, det in ((1, obama), (2, biden)):
        status, body, _ = await srv.call("POST", f"/v2/galleries/people/faces/{face}", json={"from": f"detection:{det}"})
        assert status == 200, body
    search = f"/v2/galleries/people/faces?looks_like=detection:{probe}&threshold=0.75"
    status, body, _ = await srv.call("GET", search)
    assert status == 200 and [r["id"]["face"] for r in body["results"]] == [1]
    # the last acknowledged write before the crash
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/3", json={"from": f"detection:{obama}"})
    assert status == 200, body

    local.kill()  # SIGKILL: nothing is flushed or shut down
    status, body, _ = await srv.call("GET", search)
    assert status == 503 and body["code"] == "STORAGE_ERROR", body
    assert local.uri in body["reason"] and "\n" not in body["reason"]  # where, and why, on one line
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/4", json={"from": f"detection:{biden}"})
    assert status == 503 and body["code"] == "STORAGE_ERROR", body
    status, body, _ = await srv.call("GET", "/v2/galleries/people/faces/1")
    assert status == 503 and body["code"] == "STORAGE_ERROR", body

    # the same folder and ports; started from this (the main) thread so that it lives on for the
    # rest of the session (it blocks the loop for the few seconds of a start: sfapi waits too)
    local.start()
    body = None
    for _ in range(RECOVERY_ATTEMPTS):
        status, body, _ = await srv.call("GET", search)
        if status == 200:
            break
        assert status == 503 and body["code"] == "STORAGE_ERROR" and "\n" not in body["reason"], body
        await asyncio.sleep(1)
    else:
        pytest.fail(f"sfapi did not recover after the Milvus restart: {body}")
    assert sorted(r["id"]["face"] for r in body["results"]) == [1, 3]  # acknowledged faces survived
    status, body, _ = await srv.call("GET", "/v2/galleries/people/faces/4")
    assert status == 404 and body["code"] == "NOT_FOUND", body  # the refused write left nothing
    status, body, _ = await srv.call("POST", "/v2/galleries/people/faces/4", json={"from": f"detection:{biden}"})
    assert status == 200, body  # writes work again
    status, body, _ = await srv.call("GET", "/v2/galleries/people/faces")
    assert status == 200 and [r["id"]["face"] for r in body["results"]] == [1, 2, 3, 4]
    assert (await srv.call("DELETE", "/v2/galleries/people"))[0] == 204
