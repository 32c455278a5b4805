"""Scoped tokens, database tokens (``facestack token``) and the audit log on the real router with
the persons plugin and the real sfapi behind it: no part of the auth layer is replaced."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from facestack.stack.cli import main as facestack
from facestack.core.auth import digest
from tests.facerouter.conftest import frame_parts, multipart
from tests.plugins.persons.conftest import PREFIX

READ = "read-token-000000000001"
INGEST = "ingest-token-0000000001"
OPERATOR = "operator-token-00000001"
ADMIN = "admin-token-00000000001"
LEGACY_WRITE = "legacy-write-token-0001"
HASHED = "hashed-admin-token-0001"
EXPIRED = "expired-token-000000001"
PAST = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
AUTH = {"required": "always", "tokens": [
    {"token": READ, "role": "read", "name": "dashboard"},
    {"token": INGEST, "role": "ingest", "name": "camera-1"},
    {"token": OPERATOR, "role": "operator", "name": "desk"},
    {"token": ADMIN, "role": "admin", "name": "root"},
    {"token": LEGACY_WRITE, "role": "write", "name": "old-write"},
    {"sha256": digest(HASHED), "role": "admin", "name": "hashed"},
    {"token": EXPIRED, "role": "admin", "name": "gone", "expires": PAST},
]}
SECRETS = (READ, INGEST, OPERATOR, ADMIN, LEGACY_WRITE, HASHED, EXPIRED)


def h(token: str | None, **extra: str) -> dict[str, str]:
    return ({"Authorization": f"Bearer {token}"} if token else {}) | extra


async def frame(env: Any, token: str | None, photo: str = "obama/img1.jpg") -> int:
    face0, bbox = await env.chip(photo)
    body, ctype = multipart(frame_parts(photo=(env.data / "faces" / photo).read_bytes(), face0=face0,
                                        bbox=json.dumps(bbox), cam_id="door", labels="{}"))
    async with env.router.http.post(env.router.base + "/v0/frame", data=body,
                                    headers=h(token, **{"Content-Type": ctype})) as resp:
        return resp.status


async def upload(env: Any, token: str | None, photo: str = "biden/img1.jpg") -> tuple[int, Any]:
    body, ctype = multipart({"image": (env.data / "faces" / photo).read_bytes(), "source": "door"})
    return await env.api("POST", "/persons", data=body, headers=h(token, **{"Content-Type": ctype}))


async def test_roles_per_route_on_the_router(start_persons, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    env = await start_persons(router={"auth": AUTH})
    # the admin makes the source; nobody else may
    for token, want in ((None, 401), (READ, 403), (INGEST, 403), (OPERATOR, 403), (ADMIN, 201)):
        status, body = await env.api("POST", "/sources", json={"name": "door"}, headers=h(token))
        assert status == want, (token, body)
    # a camera's ingest token posts frames and does nothing else
    assert await frame(env, INGEST) == 200
    assert await frame(env, READ) == 403 and await frame(env, OPERATOR) == 403
    assert (await env.api("GET", "/entries", headers=h(INGEST)))[0] == 403
    assert (await env.api("GET", "/persons", headers=h(INGEST)))[0] == 403
    assert (await upload(env, INGEST))[0] == 403
    async with env.router.http.get(env.router.base + "/metrics", headers=h(INGEST)) as resp:
        assert resp.status == 403
    # read reads; operator enrols; deletion, thresholds and the audit log are the admin's
    assert (await env.api("GET", "/entries", headers=h(READ)))[0] == 200
    assert (await upload(env, READ))[0] == 403
    status, person = await upload(env, OPERATOR)
    assert status == 201, person
    pid = person["pid"]
    assert (await env.api("DELETE", f"/persons/{pid}", headers=h(OPERATOR)))[0] == 403
    assert (await env.api("PUT", "/thresholds", json={"exact": 80, "ha": 76, "junk": 69},
                          headers=h(OPERATOR)))[0] == 403
    assert (await env.api("GET", "/audit", headers=h(OPERATOR)))[0] == 403
    assert (await env.api("GET", "/tokens", headers=h(READ)))[0] == 403
    # the old config form: write is admin; a hashed entry works; an expired token is refused
    assert (await env.api("GET", "/audit", headers=h(LEGACY_WRITE)))[0] == 200
    assert (await env.api("GET", "/audit", headers=h(HASHED)))[0] == 200
    status, body = await env.api("GET", "/entries", headers=h(EXPIRED))
    assert status == 401 and "expired" in body["reason"]
    assert (await env.api("DELETE", f"/persons/{pid}", headers=h(ADMIN)))[0] == 204
    assert not any(s in caplog.text for s in SECRETS)


async def test_audit_log_records_every_write(start_persons, caplog) -> None:
    caplog.set_level(logging.INFO, logger="facestack.audit")
    env = await start_persons(router={"auth": AUTH})
    assert (await env.api("POST", "/sources", json={"name": "door"}, headers=h(ADMIN)))[0] == 201
    status, person = await upload(env, OPERATOR)
    assert status == 201
    pid = person["pid"]
    assert (await env.api("DELETE", f"/persons/{pid}", headers=h(OPERATOR)))[0] == 403
    assert (await env.api("DELETE", f"/persons/{pid}", headers=h(ADMIN)))[0] == 204
    assert await frame(env, INGEST) == 200  # frames are traffic: audited only when refused
    assert await frame(env, READ) == 403
    status, body = await env.api("GET", "/audit", headers=h(ADMIN))
    assert status == 200, body
    got = [(r["token"], r["method"], r["route"], r["object_id"], r["status"]) for r in body["results"]]
    assert got == [
        ("root", "POST", f"{PREFIX}/sources", None, 201),
        ("desk", "POST", f"{PREFIX}/persons", None, 201),
        ("desk", "DELETE", f"{PREFIX}/persons/{{id}}", pid, 403),
        ("root", "DELETE", f"{PREFIX}/persons/{{id}}", pid, 204),
        ("dashboard", "POST", "/v0/frame", None, 403),
    ]
    assert all(r["service"] == "facerouter" and r["time"].endswith("Z") for r in body["results"])
    # filters
    status, body = await env.api("GET", f"/audit?object_id={pid}&status=204", headers=h(ADMIN))
    assert [r["token"] for r in body["results"]] == ["root"]
    status, body = await env.api("GET", "/audit?token=desk&limit=1", headers=h(ADMIN))
    assert len(body["results"]) == 1 and body["next_after_id"] is not None
    status, body = await env.api("GET", f"/audit?token=desk&after_id={body['next_after_id']}",
                                 headers=h(ADMIN))
    assert [r["status"] for r in body["results"]] == [403]
    assert (await env.api("GET", "/audit?since=2999-01-01", headers=h(ADMIN)))[1]["results"] == []
    assert (await env.api("GET", "/audit?status=abc", headers=h(ADMIN)))[0] == 400
    # append-only: no route changes it
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert (await env.api(method, "/audit", headers=h(ADMIN)))[0] == 405
    # and each record is a JSON log line too
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "facestack.audit"]
    assert {(r["token"], r["status"]) for r in lines} >= {("desk", 403), ("root", 204), ("dashboard", 403)}


async def test_exports_are_audited(start_persons, tmp_path) -> None:
    """``facestack persons export`` opens and closes an export on the router, so the audit log says
    who exported what, when and where to; a token that may not read persons cannot export."""
    env = await start_persons(router={"auth": AUTH})
    assert (await env.api("POST", "/sources", json={"name": "door"}, headers=h(ADMIN)))[0] == 201
    assert (await upload(env, OPERATOR))[0] == 201
    loop = asyncio.get_running_loop()

    def export(out: str, token: str) -> int:
        return facestack(["persons", "export", str(tmp_path / out), "--api", env.router.base,
                          "--prefix", PREFIX, "--token", token])

    assert await loop.run_in_executor(None, export, "out", READ) == 0
    assert (tmp_path / "out" / "persons.csv").is_file()
    assert await loop.run_in_executor(None, export, "refused", INGEST) == 1
    assert not (tmp_path / "refused").exists()  # nothing is read before the export is on record

    status, body = await env.api("GET", f"/audit?route={PREFIX}/exports", headers=h(ADMIN))
    assert status == 200, body
    opened = [(r["token"], r["method"], r["status"]) for r in body["results"]]
    assert opened == [("dashboard", "POST", 201), ("camera-1", "POST", 403)]
    first = body["results"][0]
    export_id = first["object_id"]
    assert export_id and first["detail"] == f"export of persons opened to {tmp_path / 'out'}"
    status, body = await env.api("GET", f"/audit?route={PREFIX}/exports/{{id}}/done", headers=h(ADMIN))
    assert [(r["token"], r["object_id"], r["status"], r["detail"]) for r in body["results"]] == [
        ("dashboard", export_id, 200, "export of persons finished: 1 persons with their photo, 0 without")]

    # the routes themselves: bad input is a 400 naming the field; only the opener closes
    status, made = await env.api("POST", "/exports", json={"to": "usb stick"}, headers=h(OPERATOR))
    assert status == 201 and made["token"] == "desk" and made["what"] == "persons"
    for bad, param in (({"what": "everything"}, "what"), ({"to": "a\nb"}, "to"), ({"x": 1}, "x")):
        status, body = await env.api("POST", "/exports", json=bad, headers=h(OPERATOR))
        assert status == 400 and body["param"] == param, body
    done = f"/exports/{made['id']}/done"
    assert (await env.api("POST", done, json={"persons": -1}, headers=h(OPERATOR)))[1]["param"] == "persons"
    assert (await env.api("POST", done, json={}, headers=h(READ)))[0] == 404
    assert (await env.api("POST", "/exports/nope/done", json={}, headers=h(OPERATOR)))[0] == 404
    status, body = await env.api("POST", done, json={"persons": 0, "error": "disk full"},
                                 headers=h(OPERATOR))
    assert status == 200 and body["error"] == "disk full"
    assert (await env.api("POST", done, json={}, headers=h(OPERATOR)))[0] == 404  # closed once
    status, body = await env.api("GET", f"/audit?object_id={made['id']}&status=200", headers=h(ADMIN))
    assert [r["detail"] for r in body["results"]] == [
        "export of persons failed: disk full: 0 persons with their photo, 0 without"]


async def test_backups_and_restores_are_audited(start_persons, tmp_path, caplog) -> None:
    """``facestack persons backup|restore`` work on the database, not through an API: the tool
    writes its own record (local user, command, folder, outcome) where ``GET /audit`` finds it."""
    import sqlite3

    import yaml

    caplog.set_level(logging.INFO, logger="facestack.audit")
    env = await start_persons(router={"auth": AUTH})
    assert (await env.api("POST", "/sources", json={"name": "door"}, headers=h(ADMIN)))[0] == 201
    assert (await upload(env, OPERATOR))[0] == 201
    live, alone = tmp_path / "live.yaml", tmp_path / "alone.yaml"
    live.write_text(yaml.safe_dump({"persons": {"database_url": env.plugin.config.resolved_database_url()}}))
    alone.write_text(yaml.safe_dump({"persons": {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'alone.db'}"}}))
    loop = asyncio.get_running_loop()

    async def run(*argv: str) -> int:
        return await loop.run_in_executor(None, facestack, list(argv))

    assert await run("persons", "backup", str(tmp_path / "bk"), "--router-config", str(live)) == 0
    status, body = await env.api("GET", "/audit?service=facestack", headers=h(ADMIN))
    assert status == 200, body
    [rec] = body["results"]
    assert (rec["method"], rec["route"], rec["path"], rec["status"], rec["detail"]) == (
        "BACKUP", "facestack persons backup", str(tmp_path / "bk"), 200, "1 persons")
    assert rec["token"].startswith("local:") and rec["role"] == "admin"

    assert await run("persons", "restore", str(tmp_path / "bk"), "--router-config", str(alone)) == 0
    assert await run("persons", "restore", str(tmp_path / "bk"), "--router-config", str(alone)) == 1
    with sqlite3.connect(tmp_path / "alone.db") as conn:  # the restored site's own audit log
        rows = conn.execute("SELECT method, route, path, status FROM persons_audit "
                            "WHERE service = 'facestack'").fetchall()
    assert rows == [("RESTORE", "facestack persons restore", str(tmp_path / "bk"), 200)]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "facestack.audit"]
    assert [(r["method"], r["status"]) for r in lines if r["service"] == "facestack"] == [
        ("BACKUP", 200), ("RESTORE", 200), ("RESTORE", 500)]  # the refused restore: a log line


async def test_database_tokens_api_and_cli(start_persons, tmp_path, capsys) -> None:
    auth = {"required": "always", "database_tokens": True, "database_refresh_s": 0.2,
            "tokens": [{"token": ADMIN, "role": "admin", "name": "root"}]}
    env = await start_persons(router={"auth": auth})
    db_url = env.plugin.config.resolved_database_url()
    # through the API: the secret is in the answer once, the list never shows it
    status, made = await env.api("POST", "/tokens", json={"name": "cam-2", "role": "ingest"},
                                 headers=h(ADMIN))
    assert status == 201 and made["token"].startswith("fst_") and made["state"] == "active"
    secret = made["token"]
    assert (await env.api("POST", "/tokens", json={"name": "cam-2"}, headers=h(ADMIN)))[0] == 409
    assert (await env.api("POST", "/tokens", json={"name": "x", "role": "god"}, headers=h(ADMIN)))[0] == 400
    status, listed = await env.api("GET", "/tokens", headers=h(ADMIN))
    assert secret not in json.dumps(listed) and [t["name"] for t in listed["results"]] == ["cam-2"]
    assert await frame(env, secret) == 200
    assert (await env.api("GET", "/entries", headers=h(secret)))[0] == 403
    assert (await env.api("DELETE", "/tokens/cam-2", headers=h(ADMIN)))[1]["state"] == "revoked"
    assert await frame(env, secret) == 401
    assert (await env.api("DELETE", "/tokens/nobody", headers=h(ADMIN)))[0] == 404

    # through the CLI, on the same database while the router runs
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, facestack, [
        "token", "create", "--database-url", db_url, "--name", "desk-2", "--role", "operator",
        "--expires", "30d"])
    assert code == 0
    out = capsys.readouterr().out
    cli_secret = out.splitlines()[1]
    assert cli_secret.startswith("fst_") and f"sha256: {digest(cli_secret)}" in out
    for _ in range(200):  # the router re-reads the table every database_refresh_s
        if (await env.api("GET", "/persons", headers=h(cli_secret)))[0] == 200:
            break
        await asyncio.sleep(0.05)
    assert (await env.api("GET", "/persons", headers=h(cli_secret)))[0] == 200
    assert await frame(env, cli_secret) == 403  # operators do not post frames
    router_yaml = tmp_path / "facerouter-cli.yaml"  # the database named by the router's config
    router_yaml.write_text(json.dumps({"persons": {"enabled": True, "database_url": db_url}}))
    assert await loop.run_in_executor(None, facestack, ["token", "list", "--router-config",
                                                        str(router_yaml)]) == 0
    listing = capsys.readouterr().out
    assert "desk-2\toperator\tactive" in listing and "cam-2\tingest\trevoked" in listing
    assert cli_secret not in listing
    assert await loop.run_in_executor(None, facestack, ["token", "revoke", "--database-url", db_url,
                                                        "desk-2"]) == 0
    for _ in range(200):
        if (await env.api("GET", "/persons", headers=h(cli_secret)))[0] == 401:
            break
        await asyncio.sleep(0.05)
    assert (await env.api("GET", "/persons", headers=h(cli_secret)))[0] == 401
    assert await loop.run_in_executor(None, facestack, ["token", "create", "--database-url", db_url,
                                                        "--name", "desk-2"]) == 1
    # token writes are audited, without their secrets
    status, body = await env.api("GET", "/audit?route=" + PREFIX + "/tokens", headers=h(ADMIN))
    assert [r["detail"] for r in body["results"] if r["status"] == 201] == ["created ingest token 'cam-2'"]
    assert secret not in json.dumps(body)


async def test_sfapi_writes_into_the_shared_audit_log(start_server, start_persons, tmp_path) -> None:
    """sfapi configured with the persons database: its writes (the router's enrolment calls among
    them) are in ``GET /audit`` beside the router's own."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    sf = await start_server({"auth": {"required": "always", "tokens": [
        {"token": ADMIN, "role": "admin", "name": "the-router"}]}, "audit": {"database_url": db_url}})
    env = await start_persons({"database_url": db_url}, sf=sf,
                              router={"auth": AUTH, "sfapi_token": ADMIN})
    assert (await env.api("POST", "/sources", json={"name": "door"}, headers=h(ADMIN)))[0] == 201
    status, person = await upload(env, OPERATOR)
    assert status == 201, person
    status, _, _ = await env.sf.call("DELETE", "/v2/galleries/nope")  # no token: refused, audited
    assert status == 401
    for _ in range(100):  # sfapi's writer inserts in the background
        status, body = await env.api("GET", "/audit?service=sfapi", headers=h(ADMIN))
        if any(r["status"] == 401 for r in body["results"]):
            break
        await asyncio.sleep(0.05)
    got = {(r["token"], r["method"], r["route"], r["status"]) for r in body["results"]}
    assert ("the-router", "POST", "/v2/galleries/{name}/faces/{id}", 200) in got
    assert ("anonymous", "DELETE", "/v2/galleries/{name}", 401) in got
    assert not any(r["route"] == "/v2/detect" for r in body["results"])  # traffic: not audited
    status, body = await env.api("GET", "/audit?service=facerouter", headers=h(ADMIN))
    assert [r["route"] for r in body["results"]] == [f"{PREFIX}/sources", f"{PREFIX}/persons"]
