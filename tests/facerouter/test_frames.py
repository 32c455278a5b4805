"""Malformed frames: each missing or malformed part is a 400 that names it."""
from __future__ import annotations

import pytest

from tests.facerouter.conftest import frame_parts, multipart

QUIET = """
    from facerouter.plugin import Plugin
    class Quiet(Plugin):
        async def preprocess(self, request, labels):
            return ()
"""

CASES = [
    ("photo", None), ("bbox", None), ("cam_id", None), ("timestamp", None),
    ("detectorParams", None), ("bs_type", None), ("labels", None),
    ("photo", b"GIF89a not a jpeg"), ("photo", b""), ("face0", b"\x00\x01garbage"),
    ("bbox", "[10, 20, 110, 140]"), ("bbox", "[[10, 20, 110]]"), ("bbox", "[[10, 20, 5, 140]]"),
    ("bbox", '[["a", 1, 2, 3]]'), ("bbox", "not json"), ("bbox", "[[1, 2, 3, 4], [1, 2, 3, 4]]"),
    ("cam_id", ""), ("timestamp", "yesterday"), ("timestamp", "2024-05-01T12:30:00"),
    ("detectorParams", "[1, 2]"), ("detectorParams", "{bad"), ("bs_type", "sometimes"),
    ("labels", '{"site": 5}'), ("labels", '"hq"'),
]


@pytest.mark.parametrize(("part", "value"), CASES)
async def test_malformed_part_is_400_naming_it(start_router, part, value) -> None:
    r = await start_router({"quiet": QUIET})
    status, body = await r.post_frame(frame_parts(**{part: value}))
    assert status == 400, body
    assert body["code"] == "BAD_PARAM" and body["param"] == part, body
    assert part in body["reason"]


async def test_repeated_part_is_refused(start_router) -> None:
    r = await start_router({"quiet": QUIET})
    body, ctype = multipart(frame_parts())
    extra, _ = multipart({"cam_id": "cam-2"})
    body = body.replace(b"--frameboundary42--\r\n", extra)
    status, answer = await r.post_frame(body=body, content_type=ctype)
    assert status == 400 and answer["param"] == "cam_id"


async def test_not_multipart_and_broken_multipart(start_router) -> None:
    r = await start_router({"quiet": QUIET})
    status, body = await r.post_frame(body=b'{"photo": 1}', content_type="application/json")
    assert status == 400 and body["param"] == "Content-Type"
    status, body = await r.post_frame(body=b"garbage", content_type="multipart/form-data")
    assert status == 400 and body["code"] == "MALFORMED_REQUEST"


async def test_fields_may_come_as_file_parts(start_router) -> None:
    r = await start_router({"quiet": QUIET})
    parts = {k: (v.encode() if isinstance(v, str) else v) for k, v in frame_parts().items()}
    status, body = await r.post_frame(parts)
    assert status == 200, body


async def test_body_size_limit(start_router) -> None:
    r = await start_router({"quiet": QUIET}, config={"max_body_bytes": 2048})
    async with r.http.post(r.base + "/v0/frame", data=b"x" * 10000,
                           headers={"Content-Type": "multipart/form-data; boundary=b"}) as resp:
        assert resp.status in (400, 413)
