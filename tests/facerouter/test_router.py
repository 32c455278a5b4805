"""The router on loopback with plugins of every kind, against a fake sfapi."""
from __future__ import annotations

import asyncio
import json

from tests.facerouter.conftest import FACE0, PHOTO, frame_parts

RECORDER = """
    import asyncio, time
    from facerouter.plugin import Plugin

    class Recorder(Plugin):
        def __init__(self, ctx):
            self.ctx = ctx
            self.seen = []
            self.requests = []
        async def preprocess(self, request, labels):
            return ("gender",)
        async def process(self, request, photo, bbox, event_id, detection):
            self.seen.append((request.params, photo, bbox, event_id, detection))
            self.requests.append(request)
"""

SYNC = """
    import threading
    from facerouter.plugin import Plugin

    class Sync(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.threads = []
        def preprocess(self, request, labels):
            self.threads.append(threading.current_thread().name)
            return ["age"]
        def process(self, request, photo, bbox, event_id, detection):
            self.threads.append(threading.current_thread().name)
            self.age = detection.features["age"]
"""

RAISES = """
    from facerouter.plugin import Plugin

    class Raises(Plugin):
        async def preprocess(self, request, labels):
            return ("facen",)
        async def process(self, request, photo, bbox, event_id, detection):
            raise RuntimeError("boom")
"""

HANGS = """
    import asyncio
    from facerouter.plugin import Plugin

    class Hangs(Plugin):
        async def preprocess(self, request, labels):
            return ("emotions",)
        async def process(self, request, photo, bbox, event_id, detection):
            await asyncio.sleep(3600)
"""

SYNC_HANGS = """
    import threading
    from facerouter.plugin import Plugin

    class SyncHangs(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.release = threading.Event()
            self.returned = False
        def preprocess(self, request, labels):
            self.release.wait(60)  # hangs until the test lets it go
            self.returned = True
            return ("facen",)
"""

QUIET = """
    from facerouter.plugin import Plugin

    class Quiet(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.processed = 0
        async def preprocess(self, request, labels):
            return ()
        async def process(self, request, photo, bbox, event_id, detection):
            self.processed += 1
"""


async def test_params_reach_plugins_parsed(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200, body
    assert body["failed_plugins"] == [] and body["processed"] == ["recorder"]
    params, photo, bbox, event_id, detection = r.router.registry["recorder"].obj.seen[0]
    assert str(event_id) == body["event_id"] and isinstance(event_id, int)
    assert photo == PHOTO == params.photo and params.face0 == FACE0
    assert bbox == [[10, 20, 110, 140]] == params.bbox
    assert params.cam_id == "cam-1" and params.bs_type == "overall"
    assert params.timestamp.isoformat() == "2024-05-01T12:30:00.250000+00:00"
    assert params.detectorParams == {"score": 0.99, "track": 7}
    assert params.labels == {"site": "hq", "door": "front"} and params["labels"] is params.labels
    assert detection.features["gender"]["gender"] == "female"
    # one detect on face0, normalized detector, only the requested flag
    assert fake_sfapi.detects == [{"gender": "true", "detector": "normalized"}]
    assert fake_sfapi.images == [FACE0]
    # the request is a real FrHTTPRequest: the frame's Tornado request with its parsed parts added
    from facerouter.plugin import FrHTTPRequest

    request = r.router.registry["recorder"].obj.requests[0]
    assert isinstance(request, FrHTTPRequest) and request.params is params
    assert request.event_id == event_id and request.redelivered is False
    assert request.method == "POST" and request.path == "/v0/frame"
    assert request.headers["Content-Type"].startswith("multipart/form-data")


async def test_sync_and_async_plugins_share_one_detect(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER, "sync": SYNC, "quiet": QUIET},
                           sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and body["failed_plugins"] == []
    assert body["processed"] == ["recorder", "sync"]  # quiet asked for nothing
    assert fake_sfapi.detects == [{"gender": "true", "age": "true", "detector": "normalized"}]
    sync = r.router.registry["sync"].obj
    assert sync.age == 33
    assert all(name.startswith("facerouter-plugin") for name in sync.threads)
    assert r.router.registry["quiet"].obj.processed == 0


async def test_no_feature_requested_means_no_detect(start_router, fake_sfapi) -> None:
    r = await start_router({"quiet": QUIET}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and body == {"event_id": body["event_id"], "failed_plugins": [],
                                      "processed": []}
    assert fake_sfapi.detects == []


async def test_failing_plugins_are_isolated_and_listed(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER, "raises": RAISES, "hangs": HANGS,
                            "synchangs": SYNC_HANGS},
                           config={"plugin_timeout_s": 0.5}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    synchangs = r.router.registry["synchangs"].obj
    assert not synchangs.returned  # answered at its time limit: the hung thread was not waited for
    synchangs.release.set()
    assert status == 200, body
    assert body["failed_plugins"] == ["hangs", "raises", "synchangs"]
    assert body["processed"] == ["recorder"]
    assert len(r.router.registry["recorder"].obj.seen) == 1
    assert fake_sfapi.detects[0] == {"facen": "true", "gender": "true", "emotions": "true",
                                     "detector": "normalized"}
    status, text = await r.get("/metrics")
    assert 'facerouter_plugin_errors_total{hook="process",kind="error",plugin="raises"} 1.0' in text
    assert 'facerouter_plugin_errors_total{hook="process",kind="timeout",plugin="hangs"} 1.0' in text
    assert ('facerouter_plugin_errors_total{hook="preprocess",kind="timeout",plugin="synchangs"} '
            '1.0') in text
    assert 'facerouter_plugin_calls_total{hook="process",plugin="recorder"} 1.0' in text
    assert 'facerouter_frames_total{cam_id="cam-1",status="200"} 1.0' in text
    assert 'facerouter_sfapi_latency_seconds_count{call="detect"} 1.0' in text
    assert 'facerouter_plugin_latency_seconds_bucket{hook="process",le="0.001",plugin=' in text


async def test_bad_preprocess_result_fails_that_plugin_only(start_router, fake_sfapi) -> None:
    bad = """
        from facerouter.plugin import Plugin
        class Bad(Plugin):
            async def preprocess(self, request, labels):
                return ("facen", "shoe_size")
    """
    r = await start_router({"bad": bad, "recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame()
    assert status == 200 and body["failed_plugins"] == ["bad"]
    assert fake_sfapi.detects == [{"gender": "true", "detector": "normalized"}]


async def test_no_face0_with_detector_empty_is_refused(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(face0=None))
    assert status == 400 and body["param"] == "face0"
    assert r.router.registry["recorder"].obj.seen == [] and fake_sfapi.detects == []


async def test_no_face0_with_nnd_takes_the_face_at_bbox(start_router, fake_sfapi) -> None:
    fake_sfapi.faces = [
        {"id": "far", "bbox": {"left": 200, "top": 100, "right": 300, "bottom": 220}},
        {"id": "near", "bbox": {"left": 12, "top": 25, "right": 108, "bottom": 135}},
    ]
    r = await start_router({"recorder": RECORDER}, config={"detector": "nnd"},
                           sfapi_url=fake_sfapi.base)
    status, body = await r.post_frame(frame_parts(face0=None))
    assert status == 200, body
    assert fake_sfapi.detects == [{"gender": "true", "detector": "nnd"}]
    assert fake_sfapi.images == [PHOTO]
    assert r.router.registry["recorder"].obj.seen[0][4].id == "near"
    status, body = await r.post_frame(frame_parts(face0=None, bbox="[[0, 0, 5, 5]]"))
    assert status == 422 and body["param"] == "bbox"


async def test_sfapi_outage_is_503_never_2xx(start_router, fake_sfapi) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url=fake_sfapi.base)
    for fail in [(503, "OVER_CAPACITY"), (500, "UNKNOWN_ERROR"), (502, "STORAGE_ERROR")]:
        fake_sfapi.fail = fail
        status, body = await r.post_frame()
        assert status == 503 and body["code"] == "SFAPI_UNAVAILABLE", (fail, body)
    fake_sfapi.fail = (400, "BAD_PARAM")
    status, body = await r.post_frame()
    assert status == 400 and body["param"] == "face0"
    assert r.router.registry["recorder"].obj.seen == []


async def test_sfapi_down_is_503(start_router) -> None:
    r = await start_router({"recorder": RECORDER}, sfapi_url="http://127.0.0.1:9")
    status, body = await r.post_frame()
    assert status == 503 and body["code"] == "SFAPI_UNAVAILABLE"


async def test_overload_answers_503(start_router, fake_sfapi) -> None:
    fake_sfapi.delay = 0.5
    r = await start_router({"recorder": RECORDER}, config={"max_inflight": 2},
                           sfapi_url=fake_sfapi.base)
    results = await asyncio.gather(*(r.post_frame() for _ in range(5)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 200, 503, 503, 503], results
    assert all(b["code"] == "OVER_CAPACITY" for s, b in results if s == 503)
    assert len(r.router.registry["recorder"].obj.seen) == 2
    status, body = await r.post_frame()
    assert status == 200


async def test_healthz_and_plugin_routes(start_router, fake_sfapi) -> None:
    routed = """
        import tornado.web
        from facerouter.plugin import Plugin

        class Hello(tornado.web.RequestHandler):
            def get(self):
                self.write({"hello": "world"})

        class Routed(Plugin):
            pass

        def activate(app, ctx, plugin_name, plugin_source):
            app.add_handlers(r".*", [(r"/hello", Hello)])
            return Routed(ctx)
    """
    r = await start_router({"routed": routed}, config={"node_id": 5}, sfapi_url=fake_sfapi.base)
    status, text = await r.get("/healthz")
    assert status == 200
    assert json.loads(text) == {"status": "ok", "inflight": 0, "max_inflight": 64, "node_id": 5,
                                "plugins": ["routed"]}
    status, text = await r.get("/hello")
    assert status == 200 and json.loads(text) == {"hello": "world"}


async def test_event_ids_are_unique_and_increasing(start_router, fake_sfapi) -> None:
    r = await start_router({"quiet": QUIET}, config={"node_id": 3}, sfapi_url=fake_sfapi.base)
    ids = [int((await r.post_frame())[1]["event_id"]) for _ in range(20)]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert all((i >> 12) & 1023 == 3 for i in ids)
