"""The storage layer through the same code on SQLite (always) and PostgreSQL (when
``PERSONS_TEST_POSTGRES_URL`` names a reachable server, e.g.
``postgresql+asyncpg://postgres@127.0.0.1:55432/persons_test``; skipped otherwise)."""
from __future__ import annotations

import datetime
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.plugins.persons.conftest import REPO

PG_ENV = "PERSONS_TEST_POSTGRES_URL"


def _load():
    """The plugin's modules, imported as facerouter's loader does (a package from a path)."""
    import importlib.util
    import sys
    name = "facerouter_plugin_persons"
    if name not in sys.modules:
        path = REPO / "plugins" / "persons" / "__init__.py"
        spec = importlib.util.spec_from_file_location(name, path,
                                                      submodule_search_locations=[str(path.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    import importlib
    return (importlib.import_module(f"{name}.storage"), importlib.import_module(f"{name}.sources"),
            importlib.import_module(f"{name}.entries"), importlib.import_module(f"{name}.stats"),
            importlib.import_module(f"{name}.thresholds"), importlib.import_module(f"{name}.config"))


def _pg_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2).close()
    except OSError:
        return None
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path: Path):
    storage = _load()[0]
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    else:
        url = _pg_url()
        if url is None:
            pytest.skip(f"no PostgreSQL server: set {PG_ENV} to a reachable database URL")
    database = storage.Database(url)
    await database.open()
    if request.param == "postgresql":  # a clean slate in a shared database
        async with database.begin() as conn:
            for table in (storage.entries, storage.persons, storage.sources):
                await conn.execute(table.delete())
            await conn.execute(storage.settings.delete().where(
                storage.settings.c.key != "schema_version"))
    yield database
    await database.close()


async def test_same_behaviour_on_every_database(db) -> None:
    storage, sources_mod, entries_mod, stats, thresholds_mod, config = _load()
    repo = sources_mod.SourceRepo(db)
    await repo.load()
    door = await repo.create({"name": "door", "image_retention_days": 3, "license": 3})
    hall = await repo.create({"name": "hall"})
    # a partial update naming the license by either name replaces the stored one
    door = await repo.update(door.id, {"license": 4}, partial=True)
    assert door.settings.license_id == "4" and door.settings.image_retention_days == 3
    door = await repo.update(door.id, {"license_id": "3"}, partial=True)
    again = sources_mod.SourceRepo(db)
    await again.load()
    assert again.by_name("door").settings.image_retention_days == 3 and \
        again.by_name("door").settings.license_id == "3" and again.by_id(hall.id).name == "hall"

    t = thresholds_mod.ThresholdStore(db, config.ThresholdsConfig())
    await t.load()
    await t.set({"exact": 90})
    t2 = thresholds_mod.ThresholdStore(db, config.ThresholdsConfig())
    await t2.load()
    assert t2.current.exact == 90 and t2.current.junk == 68.84

    repo_e = entries_mod.EntryRepo(db)
    pid = str(uuid.uuid4())
    base = int(datetime.datetime(2024, 5, 6, 8, tzinfo=datetime.timezone.utc).timestamp() * 1000)
    rows = [("exact", pid, door.id, 0), ("exact", pid, hall.id, 3_600_000),
            ("nm", None, door.id, 86_400_000), ("det", None, hall.id, 2 * 86_400_000)]
    for i, (result, p, sid, dt) in enumerate(rows):
        await repo_e.insert({"id": (1 << 62) + i, "pid": p, "result": result, "confidence": 80.5,
                             "age": 30 + i, "sex": i % 2, "mood": "happy", "liveness":
                             "undetermined", "source_id": sid, "ts_ms": base + dt, "face_size":
                             100.0, "bbox": [[0, 0, 10, 10]], "cam_id": "c", "image_face": "f",
                             "image_photo": None})
    f = entries_mod.EntryFilter(result=["exact", "nm"], age_from=30, age_to=32)
    got = await repo_e.list(f, 10, 0)
    assert [r["result"] for r in got] == ["nm", "exact", "exact"]
    assert [r["id"] for r in await repo_e.list(entries_mod.EntryFilter(id_lt=(1 << 62) + 2), 10,
                                               0)] == [(1 << 62) + 1, 1 << 62]
    assert len(await repo_e.list(entries_mod.EntryFilter(pid=[pid], sex=1), 10, 0)) == 1

    st = await stats.person_stats(db, pid)
    assert st["by_result"] == {"exact": 2} and st["first_seen"] == "2024-05-06T08:00:00.000Z"
    assert st["by_source"] == [{"source_id": door.id, "count": 1},
                               {"source_id": hall.id, "count": 1}]
    period = entries_mod.EntryFilter(date_from=datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc),
                                     date_to=datetime.datetime(2024, 5, 31, tzinfo=datetime.timezone.utc))
    agg = await stats.aggregate(db, period, ["day_of_week", "hour"])
    assert agg["stats"] == [["Monday", 8, 1], ["Monday", 9, 1], ["Tuesday", 8, 1],
                            ["Wednesday", 8, 1]]
    agg = await stats.aggregate(db, period, ["source", "result"])
    assert agg["stats"] == [[door.id, "exact", 1], [door.id, "nm", 1], [hall.id, "det", 1],
                            [hall.id, "exact", 1]]
    old = await repo_e.with_images_before([door.id], base + 2 * 86_400_000, exclude=True)
    assert [r["id"] for r in old] == [(1 << 62) + 1]
    await repo_e.clear_images([(1 << 62) + 1])
    assert (await repo_e.get((1 << 62) + 1))["image_face"] is None
    await repo.delete(door.id)
    async with db.connect() as conn:
        n = (await conn.execute(sa.select(sa.func.count()).select_from(storage.sources))).scalar()
    assert n == 1


async def test_plugin_on_postgres(start_persons, db) -> None:
    """The whole plugin on the database of the ``db`` fixture (SQLite, then PostgreSQL)."""
    env = await start_persons({"database_url": db.url})
    status, _ = await env.api("POST", "/sources", json={"name": "door"})
    assert status == 201
    status, body = await env.upload("/persons", "obama/img1.jpg")
    assert status == 201
    status, answer = await env.frame("obama/img2.jpg")
    assert answer["failed_plugins"] == []
    status, page = await env.api("GET", f"/entries?pid={body['pid']}&result=exact")
    assert [e["result"] for e in page["results"]] == ["exact"]
    status, agg = await env.api("GET", "/entries/stats?group_by=result,hour")
    assert sorted(row[0] for row in agg["stats"]) == ["exact", "new"]


async def test_filters_at_their_documented_bounds(db) -> None:
    """Every filter value the API accepts (ids up to 2^63-1, ages, far dates) is a valid query on
    every database: an empty answer, never a database error (a 500)."""
    storage, sources_mod, entries_mod, stats, thresholds_mod, config = _load()
    repo_e = entries_mod.EntryRepo(db)
    big = (1 << 63) - 1
    far = datetime.datetime(9999, 12, 31, 23, 59, tzinfo=datetime.timezone.utc)
    first = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
    f = entries_mod.EntryFilter(sources_ids=[0, big], id_lt=big, id_gte=0, age_from=200,
                                sex=1, date_from=first, date_to=far)
    assert await repo_e.list(f, 1000, big) == []
    assert await repo_e.list(f, 1, 0) == []
    groups = ["result", "source", "hour", "day_of_week"]
    assert (await stats.aggregate(db, f, groups))["stats"] == []
    with pytest.raises(Exception, match="not found"):
        await stats.person_stats(db, "abcdef01-" * 7 + "abcdef01")
