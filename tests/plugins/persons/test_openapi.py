"""The persons API's OpenAPI document against the real server: a whole flow (sources, thresholds,
enrolment with its 201 / 409 / 200 answers, NO_FACE, reinit by every path, entries, statistics,
images, deletes) under both prefixes, each answer's status listed for its operation and its body
valid against the documented schema (schemathesis's own response validation, as the fuzz test)."""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import requests
import schemathesis
from PIL import Image
from schemathesis.core.transport import Response

from tests.facerouter.conftest import multipart
from tests.plugins.persons.conftest import PersonsEnv

SHAPES = (("/v1", "reference"), ("/v2", "rich"))


def no_face_jpeg() -> bytes:
    """A photo without a face: smooth noise."""
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((320, 240), Image.BILINEAR).save(out, "JPEG")
    return out.getvalue()


class Checked:
    """Calls the API and holds every answer to the router's own /openapi.json."""

    def __init__(self, env: PersonsEnv, doc: dict[str, Any]) -> None:
        self.env = env
        self.doc = doc
        self.schema = schemathesis.openapi.from_dict(doc)
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(self, method: str, template: str, expect: int, *, path: dict[str, Any]
                       | None = None, parts: dict[str, Any] | None = None, **kw: Any) -> Any:
        url = self.env.router.base + template.format(**(path or {}))
        if parts is not None:
            kw["data"], ctype = multipart(parts)
            kw["headers"] = {"Content-Type": ctype}
        async with self.env.router.http.request(method, url, **kw) as resp:
            raw = await resp.read()
            headers: dict[str, list[str]] = {}
            for name, value in resp.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            status = resp.status
        assert status == expect, (method, url, status, raw[:500])
        item = self.doc["paths"].get(template)
        assert item is not None and method.lower() in item, f"{template} {method} is not documented"
        assert str(status) in item[method.lower()]["responses"], \
            f"{method} {template}: {status} is not documented"
        answer = Response(status_code=status, headers=headers, content=raw,
                          request=requests.Request(method, url).prepare(), elapsed=0.0,
                          verify=False)
        self.schema[template][method.upper()].validate_response(answer)
        self.seen.add((method.upper(), template, status))
        ctype = headers.get("content-type", [""])[0]
        return json.loads(raw) if ctype.startswith("application/json") else raw


@pytest.mark.slow
async def test_every_answer_is_documented(start_persons) -> None:
    env = await start_persons()
    status, text = await env.router.get("/openapi.json")
    assert status == 200
    doc = json.loads(text)
    assert not [p for p in doc["paths"] if p.endswith("?")], "a route's optional slash leaked"
    call = Checked(env, doc)
    photos = env.data / "faces"
    for (p, shape), person, stranger in zip(SHAPES, ("obama", "biden"), ("john_savage",
                                                                          "justin_bieber")):
        name = f"door-{shape}"
        # sources and thresholds
        src = await call("POST", f"{p}/sources", 201, json={"name": name, "license": 1,
                                                            "spaces_ids": [7]})
        sid = {"id": src["id"]}
        await call("POST", f"{p}/sources", 409, json={"name": name})
        await call("POST", f"{p}/sources", 400, json={"name": "x", "licence": 1})
        await call("GET", f"{p}/sources", 200, params={"q": "door", "spaces_ids": "7"})
        await call("GET", f"{p}/sources/{{id}}", 200, path=sid)
        await call("PATCH", f"{p}/sources/{{id}}", 200, path=sid, json={"use_pps_time": True})
        await call("PUT", f"{p}/sources/{{id}}", 200, path=sid, json={"license_id": "gold"})
        await call("GET", f"{p}/sources/{{id}}", 404, path={"id": 999999})
        await call("GET", f"{p}/sources/{{id}}", 400, path={"id": "x"})
        await call("GET", f"{p}/thresholds", 200)
        await call("PATCH", f"{p}/thresholds", 200, json={"junk": 68.84})
        await call("PUT", f"{p}/thresholds", 200, json={"exact": 79.3, "ha": 75.5})
        await call("PUT", f"{p}/thresholds", 400, json={"junk": 99})
        # enrolment: new (201), the same face again (409), on_match=reinit (200), create (201)
        img1 = (photos / person / "img1.jpg").read_bytes()
        made = await call("POST", f"{p}/persons", 201, parts={"image": img1, "source": name})
        pid = made["pid"]
        clash = await call("POST", f"{p}/persons", 409, parts={"image": img1, "source": name})
        assert clash["pid"] == pid and clash["result"] == "exact"
        again = await call("POST", f"{p}/persons", 200, params={"on_match": "reinit"},
                           parts={"image": img1, "source": name})
        assert again["pid"] == pid and again["entry"]["result"] == "reinit"
        twin = await call("POST", f"{p}/persons", 201,
                          parts={"image": img1, "source": name, "on_match": "create"})
        blank = await call("POST", f"{p}/persons", 400,
                           parts={"image": no_face_jpeg(), "source": name})
        assert blank["code"] == "NO_FACE" and blank["param"] == "image"
        await call("POST", f"{p}/persons", 400, parts={"image": img1, "source": "nowhere"})
        # reinit by every path
        entry_id = made["entry"]["id"]
        await call("POST", f"{p}/persons/{{pid}}/reinit", 200, path={"pid": pid},
                   parts={"image": img1, "source": name})
        await call("POST", f"{p}/persons/reinit/{{ref}}", 200, path={"ref": pid},
                   parts={"image": img1, "source": str(src["id"])})
        await call("POST", f"{p}/persons/reinit/{{ref}}", 200, path={"ref": entry_id})
        await call("POST", f"{p}/persons/reinit", 200, json={"id": entry_id, "pid": pid})
        await call("POST", f"{p}/persons/reinit", 404, json={"id": 1})
        await call("POST", f"{p}/persons/{{pid}}/reinit", 404,
                   path={"pid": "abcdef01-abcd-abcd01-abcdef01"},
                   parts={"image": img1, "source": name})
        # camera faces: a match and a stranger, with the face chip kept
        for photo in (f"{person}/img1.jpg", f"{stranger}/img1.jpg"):
            status, answer = await env.frame(photo, cam_id=name)
            assert status == 200 and answer["failed_plugins"] == [], answer
        # persons, entries, statistics, images
        await call("GET", f"{p}/persons", 200, params={"limit": "2"})
        await call("GET", f"{p}/persons/{{pid}}", 200, path={"pid": pid})
        listed = await call("GET", f"{p}/entries", 200,
                            params={"sources_ids": str(src["id"]), "limit": "50"})
        entries = listed if shape == "reference" else listed["results"]
        assert {e["result"] for e in entries} >= {"new", "reinit", "exact"}, entries
        await call("GET", f"{p}/entries", 200, params={"mood": "nm" if shape == "reference"
                                                       else "neutral", "limit": "1"})
        await call("GET", f"{p}/entries", 400, params={"colour": "red"})
        for e in entries:
            await call("GET", f"{p}/entries/{{id}}", 200, path={"id": e["id"]})
            for kind, link in e["images"].items():
                await call("GET", f"{p}/entries/{{id}}/image/{{kind}}", 200 if link else 404,
                           path={"id": e["id"], "kind": kind})
        await call("GET", f"{p}/entries/stats", 200,
                   params={"group_by": "result,source,hour,day_of_week"})
        await call("GET", f"{p}/entries/stats", 400, params={"group_by": "result,result"})
        await call("GET", f"{p}/entries/stats/pid/{{pid}}", 200, path={"pid": pid})
        await call("GET", f"{p}/entries/stats/pid/{{pid}}", 404,
                   path={"pid": "abcdef01-abcd-abcd01-abcdef01"})
        await call("GET", f"{p}/status", 200)
        # deletes
        # an export's opening and closing (audited; test_security.py checks the records)
        export = await call("POST", f"{p}/exports", 201, json={"what": "persons", "to": "usb disk"})
        await call("POST", f"{p}/exports", 400, json={"what": "everything"})
        await call("POST", f"{p}/exports/{{id}}/done", 200, path={"id": export["id"]},
                   json={"persons": 2, "without_photo": 0})
        await call("POST", f"{p}/exports/{{id}}/done", 404, path={"id": export["id"]}, json={})
        await call("POST", f"{p}/exports/{{id}}/done", 400, path={"id": "x"}, json={"persons": -1})
        await call("DELETE", f"{p}/entries/{{id}}", 204, path={"id": entries[0]["id"]})
        await call("DELETE", f"{p}/entries/{{id}}", 404, path={"id": entries[0]["id"]})
        await call("DELETE", f"{p}/persons/{{pid}}", 204, path={"pid": twin["pid"]})
        await call("GET", f"{p}/persons/{{pid}}", 404, path={"pid": twin["pid"]})
        await call("DELETE", f"{p}/sources/{{id}}", 202 if shape == "reference" else 204,
                   path=sid)
        await call("DELETE", f"{p}/sources/{{id}}", 404, path=sid)
    # every operation of the document was answered at least once with its success status; the
    # admin routes (tokens, audit) and the event stream have their own tests (test_security.py,
    # tests/console) and need an admin token or a long-lived stream
    ops = {(m.upper(), t) for t, item in doc["paths"].items() if t.startswith(("/v1", "/v2"))
           and not t.endswith(("/audit", "/tokens", "/tokens/{name}", "/events/stream"))
           for m in item if m != "parameters"}
    ok = {(m, t) for m, t, s in call.seen if s < 300}
    assert ops - ok == set()
