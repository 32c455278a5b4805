"""The real facerouter and the real sfapi on loopback, real photos, through the real client."""
from __future__ import annotations

import asyncio
import datetime
import io
import json
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from sfapi.client import Client, filters
from facestack.vision.engines import align
from tests.facerouter.conftest import frame_parts

REPO = Path(__file__).resolve().parents[2]

# Written exactly as the reference document shows plugins; only the import lines are adapted
# (ntech.sfapi_client -> sfapi.client).
REFERENCE_STYLE = """
    import logging
    import typing

    from facerouter.plugin import Plugin, FrHTTPRequest
    from facerouter.objects import DetectFace
    from sfapi.client import filters

    logger = logging.getLogger(__name__)


    class GalleryPlugin(Plugin):
        def __init__(self, ctx):
            self.ctx = ctx
            self.results = []

        async def preprocess(self, request: FrHTTPRequest,
                             labels: typing.Mapping[str, str]) -> typing.Tuple[str]:
            return ('facen', 'gender', 'age', 'emotions')

        async def process(self, request: FrHTTPRequest, photo: bytes, bbox: typing.List[int],
                          event_id: int, detection: DetectFace):
            gallery = self.ctx.sfapi['refgal']
            await gallery.add(self.ctx.idgen, detection,
                              meta={'camera': request.params.cam_id})
            found = await self.ctx.sfapi.gallery('refgal').list(
                filters=[filters.Detection(detection.id, 0.1)], limit=1)
            for r in found:
                self.results.append((r.id.face, r.id.gallery, r.features, r.meta, r.confidence))
            logger.info('event %s: %s', event_id, detection.features)

        async def shutdown(self):
            logger.info('bye')


    def activate(app, ctx, plugin_name, plugin_source):
        return GalleryPlugin(ctx=ctx)
"""


async def face0_of(server, photo: bytes) -> tuple[bytes, list[list[float]]]:
    """A normalized chip of the first face, as the video worker would send it, and its bbox."""
    status, full, _ = await server.call("POST", "/v2/detect", data=photo)
    assert status == 200
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    chip = align.extract_chip(rgb, np.asarray(full["faces"][0]["landmarks"], np.float32), 200, 0.4)
    buf = io.BytesIO()
    Image.fromarray(chip).save(buf, "JPEG", quality=95)
    b = full["faces"][0]["bbox"]
    return buf.getvalue(), [[b["left"], b["top"], b["right"], b["bottom"]]]


async def test_reference_style_plugin_runs_unchanged(start_server, start_router, data_dir) -> None:
    sf = await start_server()
    async with Client(sf.base) as c:
        await c.request("POST", "/v2/galleries/refgal", json_body={"meta_schema": {"camera": "string"}})
    r = await start_router({"reference": REFERENCE_STYLE}, sfapi_url=sf.base)
    photo = (data_dir / "faces/obama/img2.jpg").read_bytes()
    face0, bbox = await face0_of(sf, photo)
    status, body = await r.post_frame(frame_parts(photo=photo, face0=face0, bbox=json.dumps(bbox),
                                                  cam_id="lobby"))
    assert status == 200 and body["failed_plugins"] == [], body
    (face, gallery, features, meta, confidence), = r.router.registry["reference"].obj.results
    assert gallery == "refgal" and meta == {"camera": "lobby"} and confidence > 0.99
    assert features["gender"]["gender"] == "male" and "age" in features


async def test_archive_answers_where_was_this_person_seen(start_server, start_router,
                                                          data_dir) -> None:
    sf = await start_server()
    r = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                   "disabled_plugins": ["webhook", "log"],
                                   "archive": {"gallery": "seen", "labels": ["site"],
                                               "features": ["gender"]}},
                           sfapi_url=sf.base)
    sightings = [("obama/img1.jpg", "door", "2024-05-01T10:00:00Z"),
                 ("biden/img1.jpg", "door", "2024-05-01T10:05:00Z"),
                 ("obama/img2.jpg", "garage", "2024-05-01T11:00:00+02:00")]
    for name, cam, ts in sightings:
        photo = (data_dir / "faces" / name).read_bytes()
        face0, bbox = await face0_of(sf, photo)
        status, body = await r.post_frame(frame_parts(photo=photo, face0=face0, cam_id=cam,
                                                      bbox=json.dumps(bbox), timestamp=ts))
        assert status == 200 and body["failed_plugins"] == [], body
    async with Client(sf.base) as c:
        probe = (await c.detect(image=(data_dir / "faces/obama/img3.jpg").read_bytes(),
                                facen=True))[0]
        hits = await c["seen"].list(filters=[filters.Detection(probe, 0.7)], limit=10)
        places = sorted((h.meta["cam_id"], h.meta["ts"]) for h in hits)
        later = await c["seen"].list(filters=[filters.Detection(probe, 0.7),
                                              filters.Meta("ts").gte(1714557000)], limit=10)
    door = int(datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.timezone.utc).timestamp())
    garage = int(datetime.datetime(2024, 5, 1, 9, tzinfo=datetime.timezone.utc).timestamp())
    assert places == [("door", door), ("garage", garage)]
    assert [h.meta["cam_id"] for h in later] == ["door"]
    assert hits[0].meta["site"] == "hq" and hits[0].features["gender"]["gender"] == "male"


async def test_webhook_posts_events_with_best_match(start_server, start_router, local_http, data_dir) -> None:
    sf = await start_server()
    received: list[dict] = []
    attempts = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        attempts["n"] += 1
        if attempts["n"] == 1:
            return web.Response(status=503)  # first delivery fails: the plugin retries
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    base = await local_http(app)
    async with Client(sf.base) as c:
        await c["staff"].create()
        det = (await c.detect(image=(data_dir / "faces/obama/img1.jpg").read_bytes(),
                              facen=True))[0]
        await c["staff"].add(42, det)
    r = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                   "disabled_plugins": ["archive", "log"],
                                   "webhook": {"urls": [f"{base}/hook"],
                                               "gallery": "staff", "backoff_s": 0.05}},
                           sfapi_url=sf.base)
    photo = (data_dir / "faces/obama/img2.jpg").read_bytes()
    face0, bbox = await face0_of(sf, photo)
    status, body = await r.post_frame(frame_parts(photo=photo, face0=face0,
                                                  bbox=json.dumps(bbox)))
    assert status == 200 and body["failed_plugins"] == []
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.05)
    event, = received
    assert event["event_id"] == body["event_id"] and event["cam_id"] == "cam-1"
    assert event["match"]["face"] == 42 and event["match"]["confidence"] > 0.8
    assert event["detection"]["features"]["gender"]["gender"] == "male"
    assert event["face_jpeg"]
    status, text = await r.get("/plugins/webhook/status")
    assert status == 200 and json.loads(text)["delivered"] == 1
    assert json.loads(text)["retried"] == 1


def test_shipped_config_checks(tmp_path) -> None:
    from facerouter.cli import main
    assert main(["--check-config", "--config", str(REPO / "config/facerouter.yaml"),
                 "--log-level", "ERROR"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: 80\nplugin_dir: %s\narchive:\n  gallry: x\n" % (REPO / "plugins"))
    assert main(["--check-config", "--config", str(bad), "--log-level", "CRITICAL"]) == 2


@pytest.mark.slow
async def test_sigterm_finishes_and_shuts_down(tmp_path, fake_sfapi) -> None:
    import signal
    import sys

    plugin_dir = tmp_path / "p"
    plugin_dir.mkdir()
    marker = tmp_path / "down"
    (plugin_dir / "mark.py").write_text(
        "import pathlib\nfrom facerouter.plugin import Plugin\n"
        "class Mark(Plugin):\n"
        "    def shutdown(self):\n"
        f"        pathlib.Path({str(marker)!r}).write_text('down')\n")
    cfg = tmp_path / "fr.yaml"
    cfg.write_text(f"sfapi_url: {fake_sfapi.base}\nplugin_dir: {plugin_dir}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "facerouter.cli", "--config", str(cfg), "--port", "0",
        cwd=REPO, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "facerouter exited early"
        if "listening on" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 0, rest
    assert marker.read_text() == "down" and b"facerouter stopped" in rest
