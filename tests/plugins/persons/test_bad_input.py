"""Every bad input is a 4xx JSON answer {code, reason, param, value} naming the parameter."""
from __future__ import annotations

import json

import pytest

from tests.plugins.persons.conftest import make_source

PID = "0b6f1f0e-6a55-4d31-9a3e-2b7f7c1d2e3f"

# (method, path, kwargs, status, code, param)
CASES = [
    ("GET", "/entries?color=red", {}, 400, "BAD_PARAM", "color"),
    ("GET", "/entries?result=exact,maybe", {}, 400, "BAD_PARAM", "result"),
    ("GET", "/entries?result=", {}, 400, "BAD_PARAM", "result"),
    ("GET", "/entries?pid=not-a-uuid", {}, 400, "BAD_PARAM", "pid"),
    ("GET", "/entries?age_from=old", {}, 400, "BAD_PARAM", "age_from"),
    ("GET", "/entries?age_from=50&age_to=20", {}, 400, "BAD_PARAM", "age_from"),
    ("GET", "/entries?age_to=-1", {}, 400, "BAD_PARAM", "age_to"),
    ("GET", "/entries?sex=2", {}, 400, "BAD_PARAM", "sex"),
    ("GET", "/entries?mood=bored", {}, 400, "BAD_PARAM", "mood"),
    ("GET", "/entries?liveness=alive", {}, 400, "BAD_PARAM", "liveness"),
    ("GET", "/entries?sources_ids=a", {}, 400, "BAD_PARAM", "sources_ids"),
    ("GET", "/entries?date_from=yesterday", {}, 400, "BAD_PARAM", "date_from"),
    ("GET", "/entries?date_from=2024-02-01&date_to=2024-01-01", {}, 400, "BAD_PARAM",
     "date_from"),
    ("GET", "/entries?limit=0", {}, 400, "BAD_PARAM", "limit"),
    ("GET", "/entries?limit=100000", {}, 400, "BAD_PARAM", "limit"),
    ("GET", "/entries?offset=-3", {}, 400, "BAD_PARAM", "offset"),
    ("GET", "/entries?id__lt=x", {}, 400, "BAD_PARAM", "id__lt"),
    ("GET", "/entries?limit=1&limit=2", {}, 400, "BAD_PARAM", "limit"),
    ("GET", "/entries/abc", {}, 400, "BAD_PARAM", "id"),
    ("GET", "/entries/123", {}, 404, "NOT_FOUND", "id"),
    ("DELETE", "/entries/123", {}, 404, "NOT_FOUND", "id"),
    ("GET", "/entries/123/image/face", {}, 404, "NOT_FOUND", "id"),
    ("GET", "/entries/stats?group_by=weather", {}, 400, "BAD_PARAM", "group_by"),
    ("GET", "/entries/stats?group_by=hour,hour", {}, 400, "BAD_PARAM", "group_by"),
    ("GET", "/entries/stats?result=x", {}, 400, "BAD_PARAM", "result"),
    ("GET", f"/entries/stats/pid/{PID}", {}, 404, "NOT_FOUND", "pid"),
    ("GET", "/entries/stats/pid/nope", {}, 400, "BAD_PARAM", "pid"),
    ("GET", f"/persons/{PID}", {}, 404, "NOT_FOUND", "pid"),
    ("DELETE", f"/persons/{PID}", {}, 404, "NOT_FOUND", "pid"),
    ("GET", "/persons/xyz", {}, 400, "BAD_PARAM", "pid"),
    ("POST", "/persons/reinit/77", {}, 404, "NOT_FOUND", "id"),
    ("POST", "/persons/reinit/77?pid=bad", {}, 400, "BAD_PARAM", "pid"),
    ("GET", "/persons?limit=x", {}, 400, "BAD_PARAM", "limit"),
    ("POST", "/persons", {"json": {"source": "door"}}, 400, "BAD_PARAM", "Content-Type"),
    ("GET", "/sources/abc", {}, 400, "BAD_PARAM", "id"),
    ("GET", "/sources/999", {}, 404, "NOT_FOUND", "id"),
    ("DELETE", "/sources/999", {}, 404, "NOT_FOUND", "id"),
    ("GET", "/sources?limit=-1", {}, 400, "BAD_PARAM", "limit"),
    ("GET", "/sources?name=door", {}, 400, "BAD_PARAM", "name"),
    ("POST", "/sources", {"json": {"name": "door"}}, 409, "CONFLICT", "name"),
    ("POST", "/sources", {"json": {}}, 400, "BAD_PARAM", "name"),
    ("POST", "/sources", {"json": {"name": ""}}, 400, "BAD_PARAM", "name"),
    ("POST", "/sources", {"json": {"name": "x", "colour": 1}}, 400, "BAD_PARAM", "colour"),
    ("POST", "/sources", {"json": {"name": "x", "use_pps_time": "maybe"}}, 400, "BAD_PARAM",
     "use_pps_time"),
    ("POST", "/sources", {"json": {"name": "x", "identify_facesize_threshold": -5}}, 400,
     "BAD_PARAM", "identify_facesize_threshold"),
    ("POST", "/sources", {"json": {"name": "x", "store_images_for_results": ["all"]}}, 400,
     "BAD_PARAM", "store_images_for_results.0"),
    ("POST", "/sources", {"json": [1, 2]}, 400, "BAD_PARAM", "body"),
    ("POST", "/sources", {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
     400, "BAD_PARAM", "body"),
    ("PATCH", "/sources/1", {"json": {"license": -1}}, 400, "BAD_PARAM", "license"),
    ("PUT", "/thresholds", {"json": {"exact": 120}}, 400, "BAD_PARAM", "exact"),
    ("PUT", "/thresholds", {"json": {"exact": "high"}}, 400, "BAD_PARAM", "exact"),
    ("PUT", "/thresholds", {"json": {"junk": 90}}, 400, "BAD_PARAM", "body"),
    ("PUT", "/thresholds", {"json": {"other": 1}}, 400, "BAD_PARAM", "other"),
]


@pytest.fixture
async def env(start_persons):
    env = await start_persons()
    await make_source(env, "door")
    return env


async def test_bad_input_answers(env) -> None:
    for method, path, kwargs, status, code, param in CASES:
        got, body = await env.api(method, path, **kwargs)
        assert (got, body.get("code"), body.get("param")) == (status, code, param), \
            (method, path, body)
        assert isinstance(body["reason"], str) and "value" in body


async def test_uploads_refused(env) -> None:
    # unknown source
    status, body = await env.upload("/persons", "obama/img1.jpg", source="attic")
    assert (status, body["param"], body["value"]) == (400, "source", "attic")
    # missing source / image / not an image / unknown part
    status, body = await env.upload("/persons", "obama/img1.jpg", source=None)
    assert (status, body["param"]) == (400, "source")
    status, body = await env.upload("/persons", b"GIF89a....")
    assert (status, body["param"]) == (400, "image")
    status, body = await env.upload("/persons", "obama/img1.jpg", colour="red")
    assert (status, body["param"]) == (400, "colour")
    # no face in the photo
    status, body = await env.upload("/persons", (env.data / "faces/obama/img1.jpg").read_bytes()
                                    [:2] + b"\x00" * 10)
    assert status == 400 and body["param"] == "image"
    # a face below manual_create_facesize_threshold
    status, src = await env.api("POST", "/sources", json={
        "name": "far", "manual_create_facesize_threshold": 10_000_000})
    status, body = await env.upload("/persons", "obama/img1.jpg", source="far")
    assert status == 400 and body["param"] == "image" and "manual_create" in body["reason"]
    # reinit of an unknown person
    status, body = await env.upload("/persons/0b6f1f0e-6a55-4d31-9a3e-2b7f7c1d2e3f/reinit",
                                    "obama/img1.jpg")
    assert status == 404 and body["param"] == "pid"


async def test_sources_crud_and_list(env) -> None:
    for name in ("garage", "front gate", "Back Gate"):
        status, _ = await env.api("POST", "/sources", json={"name": name})
        assert status == 201
    status, page = await env.api("GET", "/sources?q=gate")
    assert [s["name"] for s in page["results"]] == ["front gate", "Back Gate"]
    assert page["count"] == 2
    status, page = await env.api("GET", "/sources?limit=2&offset=1")
    assert page["count"] == 4 and [s["name"] for s in page["results"]] == ["garage",
                                                                           "front gate"]
    sid = page["results"][0]["id"]
    status, src = await env.api("PATCH", f"/sources/{sid}", json={"use_pps_time": True,
                                                                 "image_retention_days": 7})
    assert status == 200 and src["use_pps_time"] is True and src["image_retention_days"] == 7
    assert src["auto_create_persons"] is False
    status, src = await env.api("PUT", f"/sources/{sid}", json={"name": "garage2"})
    assert status == 200 and src["name"] == "garage2" and src["use_pps_time"] is False
    status, body = await env.api("PATCH", f"/sources/{sid}", json={"name": "door"})
    assert status == 409 and body["param"] == "name"
    status, got = await env.api("GET", f"/sources/{sid}")
    assert got == src
    status, _ = await env.api("DELETE", f"/sources/{sid}")
    assert status == 204
    # frames from a deleted source are not processed
    status, answer = await env.frame("obama/img1.jpg", cam_id="garage2")
    assert status == 200 and answer["processed"] == []
    # the source label wins over cam_id
    status, answer = await env.frame("obama/img1.jpg", cam_id="garage2",
                                     labels=json.dumps({"source": "door"}))
    assert status == 200 and answer["processed"] == ["persons"]
