"""``facestack persons import`` / ``export`` against the real services: a watchlist folder with bad
photos mixed in, interrupted by Ctrl-C (the real console script, SIGINT), resumed, run again
without duplicates, recovered after a request lost in flight, exported and imported on another
site."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from facestack.stack.bulk.persons_client import PersonsApi
from facestack.stack.bulk.exporter import export_persons
from facestack.stack.bulk.importer import ImportOptions, run_import
from tests.plugins.persons.bulk.conftest import EXPECTED, watchlist
from tests.plugins.persons.conftest import REPO, PersonsEnv, make_source


def options(env: PersonsEnv, tmp: Path, **kw: Any) -> ImportOptions:
    settings: dict[str, Any] = {"api": env.router.base, "source": "door", "sfapi": env.sf.base,
                                "report": tmp / "report.json", "state": tmp / "state.jsonl",
                                "concurrency": 2, "retry_delay_s": 0.05}
    return ImportOptions(**{**settings, **kw})


async def persons_of(env: PersonsEnv) -> list[dict[str, Any]]:
    status, body = await env.api("GET", "/persons?limit=100")
    assert status == 200, body
    return body["results"]


async def cli_import_until_first(env: PersonsEnv, folder: Path, tmp: Path) -> tuple[int, str]:
    """Run the console script; send SIGINT once it logs its first settled person."""
    cmd = [sys.executable, "-m", "facestack.stack.cli", "persons", "import", str(folder),
           "--api", env.router.base, "--sfapi", env.sf.base, "--source", "door",
           "--concurrency", "2", "--report", str(tmp / "report.json"),
           "--state", str(tmp / "state.jsonl")]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stderr is not None
    lines: list[str] = []
    sent = False
    while True:
        raw = await asyncio.wait_for(proc.stderr.readline(), 120)
        if not raw:
            break
        line = raw.decode()
        lines.append(line)
        if not sent and (": enrolled" in line or ": refused" in line):
            proc.send_signal(signal.SIGINT)
            sent = True
    return await asyncio.wait_for(proc.wait(), 120), "".join(lines)


async def test_import_interrupted_resumed_exported(site: PersonsEnv, start_persons: Any,
                                                   data_dir: Path, tmp_path: Path) -> None:
    folder = watchlist(data_dir, tmp_path / "watchlist")

    # 1. the console script, stopped by Ctrl-C after its first person: clean exit, partial report
    code, log_text = await cli_import_until_first(site, folder, tmp_path)
    assert code == 130, log_text
    assert "stopping" in log_text and "Traceback" not in log_text, log_text
    first = json.loads((tmp_path / "report.json").read_text())
    assert first["summary"]["pending"] > 0, first["summary"]
    assert first["summary"]["total"] == len(EXPECTED)
    enrolled_first = {r["name"] for r in first["persons"] if r["status"] == "enrolled"}

    # 2. the same command again finishes the job
    summary = await run_import(folder, options(site, tmp_path))
    report = json.loads((tmp_path / "report.json").read_text())
    got = {r["name"]: (r["status"], r["reason"]) for r in report["persons"]}
    assert got == EXPECTED, report["persons"]
    assert summary == {"enrolled": 2, "refused": 5, "error": 0, "pending": 0, "total": 7,
                       "reasons": {"match": 1, "no_face": 1, "several_faces": 1,
                                   "too_small": 1, "unreadable": 1}}
    rows = {r["name"]: r for r in report["persons"]}
    assert rows["Barack Obama"]["photo"].endswith("img1.jpg")  # the broken photo was skipped
    assert rows["zz Obama again"]["matched_pid"] == rows["Barack Obama"]["pid"]
    assert "px^2" in rows["tiny"]["detail"]
    persons = await persons_of(site)
    assert sorted(p["pid"] for p in persons) == sorted(
        rows[n]["pid"] for n in ("Barack Obama", "Joe Biden"))
    assert enrolled_first <= {"Barack Obama", "Joe Biden"}

    # 3. a third run sends nothing and changes nothing
    sent: list[str] = []
    again = await run_import(folder, options(site, tmp_path),
                             on_settled=lambda name, rec: sent.append(name))
    assert sent == [] and again == summary
    assert len(await persons_of(site)) == 2

    # 4. a request lost in flight (the run killed between sending and recording): the next run
    #    finds the person it created by its match instead of refusing it
    #    (a person created before the lost request was sent is a plain match)
    sent_at = {"Joe Biden": 1.0, "zz Obama again": time.time() + 60}
    with (tmp_path / "state.jsonl").open("a") as fh:
        for name, ts in sent_at.items():
            fh.write(json.dumps({"name": name, "status": "sending", "ts": ts}) + "\n")
    await run_import(folder, options(site, tmp_path))
    rows = {r["name"]: r for r in json.loads((tmp_path / "report.json").read_text())["persons"]}
    assert rows["Joe Biden"]["status"] == "enrolled", rows["Joe Biden"]
    assert "interrupted" in rows["Joe Biden"]["detail"]
    assert (rows["zz Obama again"]["status"], rows["zz Obama again"]["reason"]) == (
        "refused", "match")
    assert len(await persons_of(site)) == 2

    # 5. export, named by the resume file, and import on another site: the watchlist moves
    api = PersonsApi(site.router.base)
    try:
        result = await export_persons(api, tmp_path / "export", [tmp_path / "state.jsonl"])
    finally:
        await api.close()
    assert (result.exported, result.without_photo) == (2, 0)
    with (tmp_path / "export" / "persons.csv").open() as fh:
        exported = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in exported) == ["Barack Obama", "Joe Biden"]
    for row in exported:
        with Image.open(tmp_path / "export" / row["photo"]) as img:
            assert img.width > 100
    other = await start_persons(sf=site.sf, db_name="site2.db",
                                persons={"gallery": "persons_site2",
                                         "images_dir": str(tmp_path / "images2")})
    await make_source(other, "door")
    moved = await run_import(tmp_path / "export" / "persons.csv",
                             options(other, tmp_path / "site2", report=tmp_path / "site2.csv"))
    assert moved["enrolled"] == 2 and moved["refused"] == 0, moved
    with (tmp_path / "site2.csv").open() as fh:
        site2 = list(csv.DictReader(fh))
    assert {r["exported_pid"] for r in site2} == {r["exported_pid"] for r in exported}


async def test_csv_with_meta_and_urls(site: PersonsEnv, data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "b.jpg").write_bytes((data_dir / "faces/biden/img1.jpg").read_bytes())
    (tmp_path / "list.csv").write_text(
        "name,photo,department,badge\n"
        "Joe Biden,photos/b.jpg,visitors,17\n"
        "Remote,http://127.0.0.1:9/p.jpg,staff,18\n"
        "Missing,photos/nothing.jpg,staff,19\n")
    bar = io.StringIO()
    summary = await run_import(tmp_path / "list.csv",
                               options(site, tmp_path, report=tmp_path / "r.csv",
                                       largest_face=True, sfapi=None), stream=bar, tty=True)
    assert (summary["enrolled"], summary["refused"]) == (1, 2), summary
    assert "\r[########################] 3/3 (100%) | enrolled 1 | refused 2" in bar.getvalue()
    with (tmp_path / "r.csv").open() as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert rows["Joe Biden"]["department"] == "visitors" and rows["Joe Biden"]["badge"] == "17"
    assert rows["Remote"]["reason"] == "unreadable" and "--allow-urls" in rows["Remote"]["detail"]
    assert rows["Missing"]["reason"] == "unreadable"
