"""End to end: enroll obama from one photo, send faces through facerouter as the video worker
would, and read every answer of the API."""
from __future__ import annotations

import asyncio
import uuid

from sfapi.client import Client

from tests.plugins.persons.conftest import make_source

OBAMA_OTHERS = ["obama/img2.jpg", "obama/img3.jpg", "obama/img4.jpg"]
STRANGERS = ["biden/img1.jpg", "justin_bieber/img1.jpg", "john_savage/img1.jpg"]


async def test_enroll_identify_and_query(start_persons) -> None:
    env = await start_persons()
    door = await make_source(env, "door", identify_facesize_threshold=7000)
    assert door["use_pps_time"] is False and door["store_images_for_results"][0] == "new"

    # enroll from one photo
    status, body = await env.upload("/persons", "obama/img1.jpg")
    assert status == 201, body
    pid = body["pid"]
    assert str(uuid.UUID(pid)) == pid
    assert body["entry"]["result"] == "new" and body["entry"]["pid"] == pid
    assert body["entry"]["sex"] == 0 and body["entry"]["liveness"] == "undetermined"

    # another photo of him is not a new person: 409 naming his pid, and nothing stored
    status, body = await env.upload("/persons", "obama/img2.jpg")
    assert status == 409 and body["code"] == "CONFLICT" and body["param"] == "image", body
    assert body["pid"] == pid and body["result"] == "exact" and "entry" not in body

    # faces from the camera
    for photo in OBAMA_OTHERS:
        status, answer = await env.frame(photo)
        assert status == 200 and answer["failed_plugins"] == [] and "persons" in \
            answer["processed"], answer
    for photo in STRANGERS:
        status, answer = await env.frame(photo)
        assert status == 200 and answer["failed_plugins"] == [], answer
    # a face too small to identify
    status, answer = await env.frame("obama/img2.jpg", bbox="[[10, 10, 60, 60]]")
    assert status == 200 and answer["failed_plugins"] == []
    det_id = answer["event_id"]
    # an unknown source: not processed, counted
    status, answer = await env.frame("obama/img3.jpg", cam_id="nowhere")
    assert status == 200 and answer["processed"] == [] and answer["failed_plugins"] == []

    status, page = await env.api("GET", "/entries?limit=100")
    assert status == 200 and page["next_page"] is None
    entries = page["results"]
    by_result: dict[str, list] = {}
    for e in entries:
        by_result.setdefault(e["result"], []).append(e)
    assert len(by_result["exact"]) == 3, [(e["result"], e["confidence"]) for e in entries]
    assert all(e["pid"] == pid and e["confidence"] >= 79.3 for e in by_result["exact"])
    assert len(by_result["nm"]) == 3 and all(e["pid"] is None for e in by_result["nm"])
    assert [e["id"] for e in by_result["det"]] == [det_id]
    assert by_result["det"][0]["face_size"] == 2500 and by_result["det"][0]["pid"] is None
    assert len(entries) == 8 and all(e["source"] == {"id": door["id"], "name": "door"}
                                     for e in entries)
    camera = [e for e in by_result["exact"] if e["cam_id"] == "door"]
    assert len(camera) == 3 and all(e["age"] is not None and e["mood"] for e in camera)

    # filters
    async def ids(query: str) -> list[str]:
        status, page = await env.api("GET", "/entries?" + query)
        assert status == 200, page
        return [e["id"] for e in page["results"]]

    assert len(await ids(f"pid={pid}")) == 4  # new, 3 x exact (the 409 upload stored nothing)
    assert len(await ids("result=nm,det")) == 4
    assert len(await ids("result=nm&result=det")) == 4
    assert len(await ids("sex=0&result=exact")) == 3
    assert await ids("sources_ids=999") == []
    assert len(await ids(f"sources_ids={door['id']}&liveness=undetermined")) == 8
    assert len(await ids("date_from=2000-01-01&date_to=2100-01-01T00:00:00Z")) == 8
    assert await ids("date_to=2000-01-01") == []
    assert len(await ids("age_from=0&age_to=200&result=exact")) == 3
    moods = {e["mood"] for e in camera}
    assert len(await ids("mood=" + ",".join(moods) + "&result=exact")) >= 3

    # keyset paging: newest first, pages of 4 until next_page is null
    seen: list[str] = []
    query = "limit=4"
    while True:
        status, page = await env.api("GET", "/entries?" + query)
        seen += [e["id"] for e in page["results"]]
        if page["next_page"] is None:
            break
        query = f"limit=4&id__lt={page['next_page']}"
    assert seen == [e["id"] for e in entries] == sorted(seen, key=int, reverse=True)
    assert await ids(f"id__gte={seen[0]}") == [seen[0]]
    assert await ids("limit=2&offset=6") == seen[6:8]

    # one entry, its images
    first = by_result["exact"][0]
    status, got = await env.api("GET", f"/entries/{first['id']}")
    assert status == 200 and got == first
    status, jpeg = await env.api("GET", f"/entries/{camera[0]['id']}/image/face")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    status, jpeg = await env.api("GET", f"/entries/{camera[0]['id']}/image/photo")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"

    # statistics
    status, st = await env.api("GET", f"/entries/stats/pid/{pid}")
    assert status == 200 and st["total"] == 4 and st["by_result"] == {"exact": 3, "new": 1}, st
    assert st["by_source"] == [{"source_id": door["id"], "count": st["total"]}]
    assert st["first_seen"] <= st["last_seen"] and st["exists"] is True
    status, agg = await env.api("GET", "/entries/stats?group_by=result")
    assert status == 200 and agg["fields"] == ["result", "count"]
    assert dict(map(tuple, agg["stats"])) == {"det": 1, "exact": 3, "new": 1, "nm": 3}
    status, agg = await env.api("GET", "/entries/stats?group_by=source,day_of_week,hour"
                                "&result=exact")
    assert status == 200 and agg["fields"] == ["source", "day_of_week", "hour", "count"]
    assert sum(row[-1] for row in agg["stats"]) == 3
    assert agg["stats"][0][1] in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                  "Saturday", "Sunday")
    status, agg = await env.api("GET", "/entries/stats?group_by=result&date_to=2000-01-01")
    assert status == 200 and agg["stats"] == []

    status, st = await env.api("GET", "/status")
    assert status == 200 and st["unknown_sources"] == {"nowhere": 1}
    assert st["entries_by_result"]["exact"] == 3

    # persons
    status, person = await env.api("GET", f"/persons/{pid}")
    assert status == 200 and person["pid"] == pid and person["source_id"] == door["id"]
    status, listing = await env.api("GET", "/persons?limit=10")
    assert status == 200 and listing["count"] == 1 and listing["results"][0] == person

    # delete an entry (and its images), then the person (and its gallery face)
    status, _ = await env.api("DELETE", f"/entries/{camera[0]['id']}")
    assert status == 204
    status, body = await env.api("GET", f"/entries/{camera[0]['id']}")
    assert status == 404 and body["code"] == "NOT_FOUND" and body["param"] == "id"
    async with Client(env.sf.base) as c:
        assert len(await c["persons"].list()) == 1
        status, _ = await env.api("DELETE", f"/persons/{pid}")
        assert status == 204
        assert len(await c["persons"].list()) == 0
    status, body = await env.api("GET", f"/persons/{pid}")
    assert status == 404 and body["param"] == "pid" and body["value"] == pid
    status, st = await env.api("GET", f"/entries/stats/pid/{pid}")
    assert status == 200 and st["exists"] is False and st["total"] == 3

    # after the person is gone, obama is no match
    status, _ = await env.frame("obama/img4.jpg")
    status, page = await env.api("GET", "/entries?limit=1")
    assert page["results"][0]["result"] == "nm"


async def test_auto_create_and_gates(start_persons) -> None:
    env = await start_persons()
    await make_source(env, "open", auto_create_persons=True, auto_check_face_angle=False,
                      auto_create_facesize_threshold=7000, store_images_for_results=["new"])
    await make_source(env, "strict", auto_create_persons=True, auto_check_face_angle=True,
                      auto_create_facesize_threshold=7000)
    await make_source(env, "big", auto_create_persons=True, auto_check_face_angle=False,
                      auto_create_facesize_threshold=10_000_000)

    # strict checks the face angle: face0 without landmarks fails it -> nm, counted
    await env.frame("biden/img1.jpg", cam_id="strict")
    await env.frame("biden/img1.jpg", cam_id="big")
    status, page = await env.api("GET", "/entries")
    assert [e["result"] for e in page["results"]] == ["nm", "nm"]
    status, st = await env.api("GET", "/status")
    assert st["auto_create_refused"] == {"face_angle": 1, "facesize": 1}

    # ... with the video worker's landmarks it passes (frontal face)
    face0, bbox = await env.chip("biden/img1.jpg")
    x1, y1, x2, y2 = bbox[0]
    w, h = x2 - x1, y2 - y1
    lm = [[x1 + .3 * w, y1 + .4 * h], [x1 + .7 * w, y1 + .4 * h], [x1 + .5 * w, y1 + .6 * h],
          [x1 + .35 * w, y1 + .8 * h], [x1 + .65 * w, y1 + .8 * h]]
    import json
    status, answer = await env.frame("biden/img1.jpg", cam_id="strict",
                                     detectorParams=json.dumps({"landmarks": lm}))
    status, page = await env.api("GET", "/entries?limit=1")
    strict_new = page["results"][0]
    assert strict_new["result"] == "new" and strict_new["id"] == answer["event_id"]

    # open: a stranger becomes a person, the next photo of them is exact
    await env.frame("justin_bieber/img1.jpg", cam_id="open")
    await env.frame("justin_bieber/img2.jpg", cam_id="open")
    status, page = await env.api("GET", "/entries?limit=2")
    second, first = page["results"]
    assert first["result"] == "new" and second["result"] == "exact"
    assert first["pid"] == second["pid"] is not None
    # store_images_for_results: only the new entry kept images
    assert first["images"]["face"] and second["images"] == {"face": None, "photo": None}
    status, listing = await env.api("GET", "/persons")
    assert listing["count"] == 2


async def test_thresholds_apply_to_later_entries(start_persons) -> None:
    env = await start_persons()
    await make_source(env, "door")
    status, body = await env.upload("/persons", "obama/img1.jpg")
    assert status == 201
    status, t = await env.api("GET", "/thresholds")
    assert status == 200 and t == {"exact": 79.3, "ha": 75.5, "junk": 68.84}
    await env.frame("obama/img2.jpg")
    status, t = await env.api("PATCH", "/thresholds", json={"exact": 99, "ha": 80})
    assert status == 200 and t == {"exact": 99.0, "ha": 80.0, "junk": 68.84}
    await env.frame("obama/img2.jpg")
    status, page = await env.api("GET", "/entries?limit=2")
    later, earlier = page["results"]
    assert earlier["result"] == "exact" and later["result"] == "ha"
    assert later["confidence"] == earlier["confidence"]
    status, t = await env.api("PUT", "/thresholds", json={"exact": 79.3, "ha": 75.5})
    assert status == 200 and t["exact"] == 79.3


async def test_reinit_from_entry_and_photo(start_persons) -> None:
    env = await start_persons()
    await make_source(env, "door")
    status, body = await env.upload("/persons", "obama/img1.jpg")
    pid = body["pid"]
    status, before = await env.api("GET", f"/persons/{pid}")
    await env.frame("obama/img3.jpg")
    status, page = await env.api("GET", "/entries?limit=1")
    seen = page["results"][0]
    status, body = await env.api("POST", f"/persons/reinit/{seen['id']}")
    assert status == 200 and body["entry"]["result"] == "reinit" and body["pid"] == pid, body
    status, after = await env.api("GET", f"/persons/{pid}")
    assert after["face_id"] != before["face_id"] and after["entry_id"] == body["entry"]["id"]
    status, body = await env.upload(f"/persons/{pid}/reinit", "obama/img4.jpg")
    assert status == 200 and body["entry"]["result"] == "reinit"
    async with Client(env.sf.base) as c:
        faces = await c["persons"].list()
    assert [f.meta["pid"] for f in faces] == [pid]
    await env.frame("obama/img2.jpg")
    status, page = await env.api("GET", "/entries?limit=1")
    assert page["results"][0]["result"] == "exact" and page["results"][0]["pid"] == pid


async def test_use_pps_time_and_retention(start_persons) -> None:
    env = await start_persons({"image_retention_days": 0})
    await make_source(env, "door", use_pps_time=True, image_retention_days=1)
    await make_source(env, "keep", use_pps_time=True)
    await env.frame("biden/img1.jpg", timestamp="2024-05-01T12:30:00Z")
    await env.frame("biden/img1.jpg", cam_id="keep", timestamp="2024-05-01T12:30:00Z")
    status, page = await env.api("GET", "/entries")
    keep, door = page["results"]
    assert door["created"] == "2024-05-01T12:30:00.000Z" and door["images"]["face"]
    removed = await env.plugin.retention.run_once()
    assert removed == 2  # door's face and photo: 1 day passed long ago; keep: forever
    status, got = await env.api("GET", f"/entries/{door['id']}")
    assert got["images"] == {"face": None, "photo": None}
    status, got = await env.api("GET", f"/entries/{keep['id']}")
    assert got["images"]["face"] is not None
    status, body = await env.api("GET", f"/entries/{door['id']}/image/face")
    assert status == 404 and body["param"] == "kind"
    status, agg = await env.api("GET", "/entries/stats?group_by=day_of_week,hour"
                                "&date_from=2024-05-01&date_to=2024-05-02")
    assert agg["stats"] == [["Wednesday", 12, 2]]


async def test_webhook_filters_and_retries(start_persons, local_http) -> None:
    from aiohttp import web

    received: list[dict] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=503)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    base = await local_http(app)
    env = await start_persons({"webhooks": [{
        "urls": [f"{base}/hook"], "results": ["exact", "new"],
        "sources": ["door"], "backoff_s": 0.05, "include_images": True}]})
    await make_source(env, "door")
    await make_source(env, "other")
    status, body = await env.upload("/persons", "obama/img1.jpg")
    pid = body["pid"]
    await env.frame("obama/img2.jpg")                 # exact, door: sent
    await env.frame("obama/img2.jpg", cam_id="other")  # exact, other source: not sent
    await env.frame("biden/img1.jpg")                  # nm: not sent
    for _ in range(100):
        if len(received) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    # the first delivery (503) is retried: the events may arrive in either order
    got = {e["entry"]["result"]: e for e in received}
    assert sorted(got) == ["exact", "new"] and len(received) == 2
    assert got["exact"]["entry"]["pid"] == pid and got["exact"]["images"]["face"]
    assert got["exact"]["event_id"] == got["exact"]["entry"]["id"]
    status, st = await env.api("GET", "/status")
    assert st["webhooks"][0]["delivered"] == 2 and st["webhooks"][0]["retried"] == 1


async def test_disabled_without_section(start_server, start_router) -> None:
    from tests.plugins.persons.conftest import REPO
    sf = await start_server()
    r = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                   "disabled_plugins": ["archive", "webhook", "log"]},
                           sfapi_url=sf.base)
    assert r.router.registry["persons"].hooks == {"preprocess": None, "process": None,
                                                  "shutdown": None}
    status, _ = await r.get("/v1/sources")
    assert status == 404
