"""Erasure of one person through the real router (persons + archive plugins) and the real sfapi:
after ``DELETE /v2/persons/{pid}?erase=true`` nothing of them is reachable through any API, and
the report says what went and which earlier backups still hold them."""
from __future__ import annotations

from pathlib import Path

from sfapi.backup.manifest import new_backup_dir, write_manifest
from sfapi.client import Client, filters
from tests.plugins.persons.conftest import make_source


async def test_erase_person_everywhere(start_persons, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    env = await start_persons(
        {"erasure": {"archive_galleries": ["archive"], "archive_threshold": 0.75,
                     "backup_dirs": [str(backups)]}},
        router={"disabled_plugins": ["webhook", "log"], "archive": {"gallery": "archive"}})
    await make_source(env, "door")
    status, body = await env.upload("/persons", "obama/img1.jpg")
    assert status == 201, body
    pid = body["pid"]
    for photo in ("obama/img2.jpg", "obama/img3.jpg", "biden/img1.jpg"):
        assert (await env.frame(photo))[0] == 200
    status, page = await env.api("GET", f"/entries?pid={pid}")
    own = [e["id"] for e in page["results"]]
    assert len(own) == 3  # new (the upload), exact, exact
    image_urls = [u for e in page["results"] for u in (e.get("images") or {}).values() if u]
    assert image_urls
    async with Client(env.sf.base) as sf:
        archive = sf["archive"]
        probe = (await sf.detect(image=(env.data / "faces" / "obama" / "img4.jpg").read_bytes(),
                                 facen=True))[0]
        assert len(await archive.list(filters=[filters.Detection(probe, 0.75)])) == 2
        total_archive = len(await archive.list())
        # a backup made now still holds the person; one made before they were enrolled does not
        new_backup_dir(backups / "b1")
        write_manifest(backups / "b1", "facestack persons backup", {}, [])

        status, report = await env.api("DELETE", f"/persons/{pid}?erase=true")
        assert status == 200, report
        assert report["pid"] == pid and report["entries"] == 3 and report["images"] >= 2
        assert report["archive_faces"] == {"archive": 2}
        assert report["cached_detections"] >= 1  # the probe, and the upload's detection
        assert [b["path"] for b in report["backups_still_holding"]] == [str(backups / "b1")]

        # nothing of the person is reachable
        assert (await env.api("GET", f"/persons/{pid}"))[0] == 404
        assert (await env.api("GET", f"/entries?pid={pid}"))[1]["results"] == []
        for entry_id in own:
            assert (await env.api("GET", f"/entries/{entry_id}"))[0] == 404
        for url in image_urls:
            async with env.router.http.get(env.router.base + url) as resp:
                assert resp.status == 404, url
        _, rest = await env.api("GET", "/entries")
        assert [e["result"] for e in rest["results"]] == ["nm"]  # biden's entry stays
        async with env.sf.http.get(f"{env.sf.base}/v2/detect/{probe.id}") as resp:
            assert resp.status == 404  # the cached detection went too
        again = (await sf.detect(image=(env.data / "faces" / "obama" / "img4.jpg").read_bytes(),
                                 facen=True))[0]
        assert await archive.list(filters=[filters.Detection(again, 0.75)]) == []
        assert await sf["persons"].list(filters=[filters.Detection(again, 0.6)]) == []
        assert len(await archive.list()) == total_archive - 2
        assert await sf["persons"].list(filters=[filters.Meta("pid").oneof(pid)]) == []
        # a second erasure finds nothing to erase
        assert (await env.api("DELETE", f"/persons/{pid}?erase=true"))[0] == 404


async def test_erase_refuses_bad_input(start_persons) -> None:
    env = await start_persons()
    assert (await env.api("DELETE", "/persons/not-a-pid?erase=true"))[0] == 400
    assert (await env.api("DELETE", "/persons/00000000-0000-0000-0000-000000000000?erase=maybe"))[0] == 400
    status, body, _ = await env.sf.call("POST", "/v2/detect/erase", json={"looks_like": {"gallery": "x"}})
    assert status == 400 and body["param"] == "looks_like"
    status, body, _ = await env.sf.call("POST", "/v2/detect/erase",
                                     json={"looks_like": {"gallery": "nope", "face": 1}})
    assert status == 404
    status, body, _ = await env.sf.call("POST", "/v2/detect/erase", data=b"{")
    assert status == 400


def test_backups_holding_the_person(tmp_path: Path) -> None:
    """A backup from before the enrolment's second cannot hold the person; one from that second on
    may (manifests give whole seconds); a folder without a manifest is no backup."""
    import json

    from plugins.persons.erasure import backups_holding

    for name, created in (("old", "2026-01-01T10:00:00+00:00"), ("same", "2026-01-01T10:00:05+00:00"),
                          ("new", "2026-01-02T00:00:00+00:00"), ("odd", "not a time")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"created": created, "tool": "t"}))
    (tmp_path / "partial").mkdir()
    enrolled_ms = 1767261605_400  # 2026-01-01T10:00:05.400Z
    got = [Path(b["path"]).name for b in backups_holding([str(tmp_path), str(tmp_path / "none")], enrolled_ms)]
    assert got == ["new", "odd", "same"]
