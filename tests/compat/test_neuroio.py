"""NeuroIO's own Python client (``neuroio`` 0.1.2) against the persons plugin in a real facerouter.

Every call of the reference's entries and sources documents is made as printed there, through
the real client (its sync ``Client``, run in a worker thread so the servers on this event loop can
answer), plus the client's persons calls the plugin implements. The client's base URL is replaced
by the router's loopback address (see ``conftest.py``): no request leaves the machine.

Where an example as printed cannot run, its evident meaning is used and a comment says so.
"""
from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import httpx
import pytest
from neuroio import AsyncClient, Client
from neuroio.constants import EntryLiveness, EntryMood, EntryResult

from plugins.persons.entries import REFERENCE_MOODS
from tests.compat.conftest import TOKEN, image_bytes, no_face_jpeg
from tests.plugins.persons.conftest import PersonsEnv

#: the reference's sample pid (not a UUID: 8-4-6-8 hex digits)
SAMPLE_PID = "abcdef01-abcd-abcd01-abcdef01"


def run(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A sync client call in a worker thread (the servers answer on this loop)."""
    return asyncio.to_thread(call, *args, **kwargs)


async def v1(env: PersonsEnv, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """A request to the reference-shaped API with NeuroIO's auth scheme."""
    headers = {"Authorization": f"Token {TOKEN}", **kw.pop("headers", {})}
    async with env.router.http.request(method, env.router.base + "/v1" + path, headers=headers,
                                       **kw) as resp:
        body = await resp.json(content_type=None) if resp.content_length != 0 else None
        return resp.status, body


async def test_sources_document(neuroio_env: PersonsEnv) -> None:
    c = Client(api_token=TOKEN)

    # Create Source -- the document passes license=1, but the client's create() has no `license`
    # argument (it sends license_id); its evident meaning is license_id=1.
    response = await run(
        c.sources.create,
        name="test",
        license_id=1,
        identify_facesize_threshold=1000,
        use_pps_time=True,
        manual_create_facesize_threshold=1000,
        manual_create_on_ha=True,
        manual_create_on_junk=True,
        manual_identify_asm=False,
        auto_create_persons=True,
        auto_create_facesize_threshold=1000,
        auto_create_check_blur=True,
        auto_create_check_exposure=True,
        auto_create_on_ha=False,
        auto_create_on_junk=False,
        auto_check_face_angle=False,
        auto_check_liveness=False,
        auto_create_liveness_only=False,
        auto_identify_asm=False,
        store_images_for_results=[EntryResult.DET],
    )
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["name"] == "test" and source["license_id"] == "1" == source["license"]
    assert source["store_images_for_results"] == ["det"] and source["use_pps_time"] is True
    assert source["image_retention_days"] is None and source["spaces_ids"] == []
    sid = source["id"]

    # List Sources (a space groups sources: put this one in space 1 first)
    status, _ = await v1(neuroio_env, "PATCH", f"/sources/{sid}/", json={"spaces_ids": [1]})
    assert status == 200
    response = await run(c.sources.list, q="te", spaces_ids=[1, 2], limit=10, offset=5)
    assert response.status_code == 200 and response.json() == {"count": 1, "results": []}
    response = await run(c.sources.list, q="te", spaces_ids=[1, 2], limit=10, offset=0)
    assert [s["id"] for s in response.json()["results"]] == [sid]
    response = await run(c.sources.list, q="te", spaces_ids=[2], limit=10, offset=0)
    assert response.json() == {"count": 0, "results": []}

    # Get Source by id
    response = await run(c.sources.get, id=sid)
    assert response.status_code == 200 and response.json()["id"] == sid

    # Update Source by id -- license=1 as printed is license_id=1 (see create)
    response = await run(
        c.sources.update,
        id=sid,
        name="test",
        license_id=1,
        identify_facesize_threshold=1000,
        use_pps_time=True,
        manual_create_facesize_threshold=1000,
        manual_create_on_ha=True,
        manual_create_on_junk=True,
        manual_identify_asm=False,
        auto_create_persons=True,
        auto_create_facesize_threshold=1000,
        auto_create_check_blur=True,
        auto_create_check_exposure=True,
        auto_create_on_ha=False,
        auto_create_on_junk=False,
        auto_check_face_angle=False,
        auto_check_liveness=False,
        auto_create_liveness_only=False,
        auto_identify_asm=False,
        store_images_for_results=[EntryResult.DET],
    )
    assert response.status_code == 200, response.text
    assert response.json()["spaces_ids"] == [1]  # a partial update keeps the rest

    # Delete Source by id: 202, empty
    response = await run(c.sources.delete, id=sid)
    assert response.status_code == 202 and response.content == b""
    response = await run(c.sources.get, id=sid)
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


async def test_entries_document_and_persons(neuroio_env: PersonsEnv, data_dir) -> None:
    env = neuroio_env
    c = Client(api_token=TOKEN)
    response = await run(c.sources.create, name="door")
    assert response.status_code == 201
    door = response.json()

    # persons.create: a new person (201) ...
    response = await run(c.persons.create, image=image_bytes(data_dir, "obama/img1.jpg"),
                         source="door")
    assert response.status_code == 201, response.text
    pid = response.json()["pid"]
    assert str(uuid.UUID(pid)) == pid and response.json()["entry"]["result"] == "new"
    # ... and the same man again: 409 naming him, nothing stored
    response = await run(c.persons.create, image=image_bytes(data_dir, "obama/img2.jpg"),
                         source="door", facesize=1000, create_on_ha=False, create_on_junk=False,
                         identify_asm=True)
    assert response.status_code == 409, response.text
    assert response.json()["pid"] == pid and response.json()["code"] == "CONFLICT"

    # faces from the camera, for entries to list
    for photo in ("obama/img3.jpg", "obama/img4.jpg", "biden/img1.jpg"):
        status, answer = await env.frame(photo)
        assert status == 200 and answer["processed"] == ["persons"], answer

    # List Entries, exactly as printed (a list of dicts; nothing passed liveness)
    response = await run(
        c.entries.list,
        pid=[SAMPLE_PID],
        result=[EntryResult.NEW],
        age_from=1,
        age_to=100,
        sex=0,
        mood=[EntryMood.FEAR],
        liveness=[EntryLiveness.PASSED],
        sources_ids=[1],
        spaces_ids=[1],
        date_from=datetime.datetime(year=2020, month=1, day=31),
        date_to=datetime.datetime.utcnow(),
        limit=10,
        offset=5,
    )
    assert response.status_code == 200, response.text
    assert response.json() == []
    # the same filters on what is stored
    response = await run(c.entries.list, pid=[pid], result=[EntryResult.NEW, EntryResult.EXACT],
                         sex=0, liveness=[EntryLiveness.UNDETERMINED],
                         sources_ids=[door["id"]], date_from=datetime.datetime(2020, 1, 31),
                         date_to=datetime.datetime.utcnow(), limit=10, offset=0)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert isinstance(listed, list) and {e["result"] for e in listed} == {"new", "exact"}
    assert len(listed) == 3 and all(e["pid"] == pid for e in listed)
    everything = (await run(c.entries.list, limit=100)).json()
    assert len(everything) == 4
    assert all(e["mood"] in REFERENCE_MOODS for e in everything), [e["mood"] for e in everything]
    measured = next(e["mood"] for e in everything if e["mood"] not in ("nm", "det"))
    by_mood = (await run(c.entries.list, mood=[EntryMood(measured)], limit=100)).json()
    assert by_mood and all(e["mood"] == measured for e in by_mood)
    # spaces: the door source joins space 7
    assert (await run(c.entries.list, spaces_ids=[7])).json() == []
    status, _ = await v1(env, "PATCH", f"/sources/{door['id']}/", json={"spaces_ids": [7]})
    assert status == 200
    assert len((await run(c.entries.list, spaces_ids=[7, 8], limit=100)).json()) == 4

    # Get the statistics for a persona's id: the sample pid is well-formed but nobody's
    response = await run(c.entries.get, pid=SAMPLE_PID)
    assert response.status_code == 404 and response.json()["param"] == "pid", response.text
    response = await run(c.entries.get, pid=pid)
    assert response.status_code == 200 and response.json()["total"] == 3

    # persons.reinit from a stored entry (the camera's exact entry)
    exact = next(e for e in listed if e["result"] == "exact")
    response = await run(c.persons.reinit, id=int(exact["id"]))
    assert response.status_code == 200, response.text
    assert response.json()["pid"] == pid and response.json()["entry"]["result"] == "reinit"
    # reinit from a photo: the async client (0.1.2's sync reinit_by_photo also sends its own
    # arguments, the image included, as form fields)
    ac = AsyncClient(api_token=TOKEN)
    response = await ac.persons.reinit_by_photo(
        pid=pid, image=image_bytes(data_dir, "obama/img2.jpg"), source="door")
    assert response.status_code == 200, response.text
    assert response.json()["pid"] == pid and response.json()["entry"]["result"] == "reinit"
    # the person, as the plugin shows it (the client has no persons.get: plain HTTP)
    status, person = await v1(env, "GET", f"/persons/{pid}/")
    assert status == 200 and person["pid"] == pid

    # Delete Entry by id: 204, empty
    response = await run(c.entries.delete, id=int(exact["id"]))
    assert response.status_code == 204 and response.content == b""
    response = await run(c.entries.delete, id=int(exact["id"]))
    assert response.status_code == 404

    # persons.delete
    response = await run(c.persons.delete, pid=pid)
    assert response.status_code == 204
    status, body = await v1(env, "GET", f"/persons/{pid}")
    assert status == 404 and body["code"] == "NOT_FOUND"


async def test_tokens_slashes_and_enum_names(neuroio_env: PersonsEnv) -> None:
    env = neuroio_env
    # NeuroIO's scheme and the usual one; none, or a wrong one, is 401
    for auth in (f"Token {TOKEN}", f"Bearer {TOKEN}"):
        for path in ("/v1/sources", "/v1/sources/", "/v2/entries", "/v2/entries/"):
            async with httpx.AsyncClient(trust_env=False) as h:
                r = await h.get(env.router.base + path, headers={"Authorization": auth})
            assert r.status_code == 200, (auth, path, r.text)
    for auth in (None, "Token wrong-token-0123456789", f"Basic {TOKEN}"):
        async with httpx.AsyncClient(trust_env=False) as h:
            r = await h.get(env.router.base + "/v1/sources/",
                            headers={"Authorization": auth} if auth else {})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    response = await run(Client(api_token="wrong-token-0123456789").sources.list)
    assert response.status_code == 401
    # enum members written by name (the client on Python 3.11) and by value mean the same
    for query in ("result=EntryResult.NEW,exact&mood=EntryMood.FEAR,sadness"
                  "&liveness=EntryLiveness.PASSED&sex=Sex.FEMALE", "result=new&mood=fear"):
        status, body = await v1(env, "GET", "/entries/?" + query)
        assert status == 200 and body == [], body
    status, body = await v1(env, "GET", "/entries/?result=EntryResult.BOGUS")
    assert status == 400 and body["param"] == "result"
    # the reference's moods on /v1, the network's on /v2
    status, body = await v1(env, "GET", "/entries/?mood=happy")
    assert status == 400 and body["param"] == "mood"
    status, body = await env.api("GET", "/entries?mood=happiness")
    assert status == 400 and body["param"] == "mood"
    # pids: UUIDs and the reference's sample form; anything else says what a pid is
    status, body = await v1(env, "GET", f"/entries/?pid={SAMPLE_PID}")
    assert status == 200 and body == []
    status, body = await v1(env, "GET", "/entries/?pid=zz-top")
    assert status == 400 and body["param"] == "pid" and "UUID" in body["reason"]


@pytest.mark.parametrize("on_match", ["refuse", "create", "reinit"])
async def test_enrolment_contract(neuroio_env: PersonsEnv, on_match: str) -> None:
    env = neuroio_env
    status, _ = await v1(env, "POST", "/sources/", json={"name": "desk"})
    assert status == 201
    status, first = await env.upload("/persons", "obama/img1.jpg", source="desk")
    assert status == 201
    pid = first["pid"]
    status, before = await v1(env, "GET", "/entries/?limit=100")
    assert [e["result"] for e in before] == ["new"]

    extra = {} if on_match == "refuse" else {"on_match": on_match}
    status, body = await env.upload("/persons", "obama/img2.jpg", source="desk", **extra)
    _, after = await v1(env, "GET", "/entries/?limit=100")
    _, persons = await v1(env, "GET", "/persons/")
    if on_match == "refuse":
        assert status == 409, body
        assert body["code"] == "CONFLICT" and body["param"] == "image" and body["pid"] == pid
        assert body["result"] == "exact" == body["value"] and body["confidence"] >= 79.3
        assert "on_match" in body["reason"] and "entry" not in body
        assert after == before and persons["count"] == 1     # nothing stored
    elif on_match == "create":
        assert status == 201, body
        assert body["pid"] != pid and body["entry"]["result"] == "new"
        assert persons["count"] == 2 and [e["result"] for e in after] == ["new", "new"]
    else:
        assert status == 200, body
        assert body["pid"] == pid and body["entry"]["result"] == "reinit"
        assert persons["count"] == 1 and [e["result"] for e in after] == ["reinit", "new"]
    # an upload never writes a camera-style entry
    assert {e["result"] for e in after} <= {"new", "reinit"}


async def test_bad_uploads_and_sources_are_4xx(neuroio_env: PersonsEnv) -> None:
    env = neuroio_env
    status, _ = await v1(env, "POST", "/sources/", json={"name": "door"})
    assert status == 201
    # a photo with no face: 400 NO_FACE (the source computes age, sex and mood: the default)
    status, body = await env.upload("/persons", no_face_jpeg())
    assert status == 400 and body["code"] == "NO_FACE" and body["param"] == "image", body
    status, body = await env.upload("/persons", "obama/img1.jpg", on_match="merge")
    assert status == 400 and body["param"] == "on_match"
    # license is a license id, not days; retention is bounded
    for settings, param in (({"license": 1e30}, "license"), ({"license_id": 1.5}, "license_id"),
                            ({"license": True}, "license"),
                            ({"image_retention_days": 1e30}, "image_retention_days"),
                            ({"image_retention_days": 36501}, "image_retention_days"),
                            ({"spaces_ids": ["a"]}, "spaces_ids.0")):
        status, body = await v1(env, "POST", "/sources/", json={"name": "big", **settings})
        assert (status, body["code"], body["param"]) == (400, "BAD_PARAM", param), body
