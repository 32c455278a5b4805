"""``facestack backup | restore``: the persons database and the persons gallery backed up together
while persons are being enrolled through the real API, restored (by the console script) into
empty stores, compared, and served again by a new sfapi + router; the persons database alone on
PostgreSQL when ``PERSONS_TEST_POSTGRES_URL`` names a server."""
from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from PIL import Image

from facestack.stack.bulk.dbbackup import backup_database, restore_database
from facestack.stack.bulk.joint import backup_stores
from sfapi.backup.manifest import read_manifest
from sfapi.config import GalleryConfig
from tests.facerouter.conftest import start_router  # noqa: F401 - fixture
from tests.plugins.persons.conftest import REPO, make_source, start_persons  # noqa: F401

PG_ENV = "PERSONS_TEST_POSTGRES_URL"


def variants(data: Path, n: int) -> list[bytes]:
    """``n`` different crops of the test photos: each enrols as a new person while the
    thresholds are at 100."""
    rng = np.random.default_rng(7)
    sources = [Image.open(data / "faces" / p).convert("RGB")
               for p in ("obama/img1.jpg", "obama/img2.jpg", "obama/img3.jpg", "biden/img1.jpg")]
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        dx, dy = (int(v) for v in rng.integers(0, 40, 2))
        buf = io.BytesIO()
        img.crop((dx, dy, img.width - 40 + dx, img.height - 40 + dy)).save(buf, "JPEG",
                                                                             quality=90)
        out.append(buf.getvalue())
    return out


async def facestack(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "facestack.stack.cli", *args, cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_joint_backup_under_load(start_persons: Any, start_server: Any, data_dir: Path,
                                       tmp_path: Path) -> None:
    env = await start_persons()  # persons.db and galleries-0.db in tmp_path
    await make_source(env, "door")
    status, _ = await env.api("PUT", "/thresholds", json={"exact": 100, "ha": 100, "junk": 100})
    assert status == 200
    photos = await asyncio.get_running_loop().run_in_executor(None, variants, data_dir, 40)
    acked: list[str] = []
    stop = asyncio.Event()

    async def enrol(first: int) -> None:
        for photo in photos[first::2]:
            if stop.is_set():
                return
            status, body = await env.upload("/persons", photo)
            assert status == 201, body
            acked.append(body["pid"])

    load = [asyncio.create_task(enrol(0)), asyncio.create_task(enrol(1))]
    while len(acked) < 4:
        await asyncio.sleep(0.02)
    before = set(acked)
    manifest = await backup_stores(f"sqlite+aiosqlite:///{tmp_path / 'persons.db'}", "persons",
                                   GalleryConfig(path=tmp_path / "galleries-0.db"),
                                   tmp_path / "bk")
    taken = len(acked)
    while len(acked) < taken + 2 and not all(t.done() for t in load):
        await asyncio.sleep(0.02)  # enrolments go on after the backup
    stop.set()
    await asyncio.gather(*load)

    c = manifest["consistency"]
    assert c["missing_faces"] == [] and c["persons"] >= len(before)
    assert manifest["persons"]["tables"]["persons_persons"] == c["persons"]
    assert manifest["galleries"]["galleries"]["persons"]["faces"] >= c["persons"]
    assert set(manifest["files"]) == {"persons.db", "galleries.db"}
    assert read_manifest(tmp_path / "bk") == manifest

    # the persons database alone, backed up and restored by the console script
    live_cfg = tmp_path / "live.yaml"
    live_cfg.write_text(yaml.safe_dump({"persons": {
        "enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp_path / 'persons.db'}"}}))
    code, out = await facestack("persons", "backup", str(tmp_path / "bk-db"),
                                "--router-config", str(live_cfg))
    assert code == 0 and "persons in" in out, out
    alone_cfg = tmp_path / "alone.yaml"
    alone_cfg.write_text(yaml.safe_dump({"persons": {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'alone.db'}"}}))
    code, out = await facestack("persons", "restore", str(tmp_path / "bk-db"),
                                "--router-config", str(alone_cfg))
    assert code == 0 and "persons_persons:" in out, out

    # restore with the console script, from the services' own config files
    (tmp_path / "new").mkdir()
    router_cfg = tmp_path / "new" / "facerouter.yaml"
    router_cfg.write_text(yaml.safe_dump({"persons": {
        "enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"}}))
    sfapi_cfg = tmp_path / "new" / "sfapi.yaml"
    sfapi_cfg.write_text(yaml.safe_dump({"gallery": {"path": str(tmp_path / "restored-g.db")}}))
    code, out = await facestack("restore", str(tmp_path / "bk"), "--router-config",
                                str(router_cfg), "--sfapi-config", str(sfapi_cfg),
                                "--sample", "20")
    assert code == 0, out
    assert f"persons_persons: {c['persons']}/{c['persons']} rows" in out
    assert "is not in the backup" not in out
    with sqlite3.connect(tmp_path / "restored.db") as conn:
        restored = {r[0] for r in conn.execute("SELECT pid FROM persons_persons")}
    assert before <= restored <= set(acked)

    # the restored stores serve again: the persons are listed and a new photo matches one of them
    sf2 = await start_server({"gallery": {"path": str(tmp_path / "restored-g.db")}})
    env2 = await start_persons(sf=sf2, db_name="restored.db",
                               persons={"images_dir": str(tmp_path / "images-restored")})
    status, page = await env2.api("GET", "/persons?limit=100")
    assert status == 200 and page["count"] == c["persons"]
    status, _ = await env2.api("PUT", "/thresholds", json={"exact": 79.3, "ha": 75.5,
                                                           "junk": 68.84})
    status, body = await env2.upload("/persons", "obama/img2.jpg")
    assert status == 409 and body["pid"] in restored, body


async def test_persons_database_on_postgres(start_persons: Any, tmp_path: Path) -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    base, _, _ = url.rpartition("/")
    try:
        async with engine.connect() as conn:
            for name in ("persons_bk_src", "persons_bk_dst"):
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
                await conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        await engine.dispose()
    env = await start_persons({"database_url": f"{base}/persons_bk_src"})
    await make_source(env, "door")
    status, body = await env.upload("/persons", "obama/img1.jpg")
    assert status == 201
    (tmp_path / "bk").mkdir()
    db = await backup_database(f"{base}/persons_bk_src", tmp_path / "bk")
    assert db.part["dialect"] == "postgresql" and list(db.faces) == [body["pid"]]
    assert db.part["tables"]["persons_persons"] == 1 and db.part["tables"]["persons_sources"] == 1
    result = await restore_database(tmp_path / "bk", db.part, f"{base}/persons_bk_dst")
    assert result["ok"] and result["faces"] == db.faces, result
