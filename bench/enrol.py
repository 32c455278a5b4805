"""Photos/s enrolled through the persons API by ``facestack persons import``, and where the time goes.

Run: ``.venv/bin/python bench/enrol.py [--count N]``. Starts the real sfapi and the real facerouter
with the persons plugin (child processes, temporary stores), then:

1. *where the time goes*, one photo at a time: the importer's decode check (and the scaled copy of
   the several-faces check), sfapi's detect as that check calls it (``detector=nnd``, on the copy;
   and on the full photo, for comparison), sfapi's detect as enrolment calls it (``facen`` plus
   age, sex and mood), and a whole ``POST /persons`` (that detect, the identification search,
   the gallery add, the database rows and the kept entry image);
2. *throughput*: the importer (in this process) enrolling ``--count`` photos at 1 and 4 in flight,
   with the several-faces check, and at 4 without it (``--largest-face``).

Photos: the project's test photos, each cropped a little differently so that every one is a new
person (the thresholds are set to 100 for the run, so no crop matches another: the work per photo is
that of any enrolment that creates a person).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REPO, free_port, sfapi_server, table  # noqa: E402

PHOTOS = ("obama/img1.jpg", "obama/img2.jpg", "obama/img3.jpg", "biden/img1.jpg")


def variants(start: int, n: int) -> list[bytes]:
    """``n`` distinct crops of the test photos (crop offsets never repeat across calls)."""
    from PIL import Image

    sources = [Image.open(DATA / "faces" / p).convert("RGB") for p in PHOTOS]
    out = []
    for i in range(start, start + n):
        img = sources[i % len(sources)]
        k = i // len(sources)
        dx, dy = k % 37, (k // 37) % 37
        buf = io.BytesIO()
        img.crop((dx, dy, img.width - 40 + dx, img.height - 40 + dy)).save(buf, "JPEG",
                                                                             quality=90)
        out.append(buf.getvalue())
    return out


def start_router(tmp: Path, sfapi: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    cfg = tmp / "facerouter.yaml"
    cfg.write_text(json.dumps({
        "sfapi_url": sfapi, "port": port, "plugin_dir": str(REPO / "plugins"),
        "disabled_plugins": ["archive", "webhook", "log"], "plugin_timeout_s": 60,
        "persons": {"enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp / 'persons.db'}",
                    "images_dir": str(tmp / "images")}}))
    proc = subprocess.Popen([sys.executable, "-m", "facerouter.cli", "--config", str(cfg),
                             "--log-level", "WARNING"], cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"facerouter exited with {proc.returncode}")
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).close()
            return base, proc
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("facerouter did not come up") from None
            time.sleep(0.2)


async def call(method: str, url: str, **kw: object) -> tuple[int, object]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, **kw) as resp:  # type: ignore[arg-type]
            return resp.status, await resp.json(content_type=None)


async def stages(router: str, sfapi: str, photos: list[bytes]) -> list[tuple[str, float]]:
    """Median ms per photo of each stage, one photo at a time."""
    from facestack.stack.bulk.persons_client import PersonsApi
    from facestack.stack.bulk.importer import prepare_photo
    from sfapi.client import Client

    out: dict[str, list[float]] = {k: [] for k in ("decode", "full", "check", "enrol_detect",
                                                   "post")}
    api = PersonsApi(router)
    async with Client(sfapi) as client:
        for i, data in enumerate(photos):
            t0 = time.perf_counter()
            _, copy, _ = prepare_photo(data, 25000)  # the source's default face-size gate
            out["decode"].append((time.perf_counter() - t0) * 1000)
            assert copy is not None
            calls = [("check", dict(image=copy, detector="nnd")),
                     ("full", dict(image=data, detector="nnd")),
                     ("enrol_detect", dict(image=data, detector="nnd", facen=True, gender=True,
                                           age=True, emotions=True))]
            for key, kw in calls[i % 3:] + calls[:i % 3]:  # each goes first in turn
                t0 = time.perf_counter()
                await client.detect(**kw)  # type: ignore[arg-type]
                out[key].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            status, body = await api.create_person(data, "bench")
            out["post"].append((time.perf_counter() - t0) * 1000)
            assert status == 201, body
    await api.close()
    med = {k: statistics.median(v) for k, v in out.items()}
    return [("importer: decode check + scaled copy", med["decode"]),
            ("sfapi detect on the scaled copy (several-faces check)", med["check"]),
            ("  the same on the full photo", med["full"]),
            ("sfapi detect + facen + age/sex/mood", med["enrol_detect"]),
            ("POST /persons, whole", med["post"]),
            ("  of which after the detect (search, add, rows, image)",
             med["post"] - med["enrol_detect"])]


async def throughput(router: str, sfapi: str, folder: Path, concurrency: int,
                     largest_face: bool, tmp: Path) -> tuple[int, float]:
    from facestack.stack.bulk.importer import ImportOptions, run_import

    name = f"c{concurrency}{'-largest' if largest_face else ''}"
    opts = ImportOptions(api=router, source="bench", sfapi=None if largest_face else sfapi,
                         largest_face=largest_face, concurrency=concurrency,
                         report=tmp / f"{name}.csv", state=tmp / f"{name}.jsonl",
                         log_interval_s=3600)
    t0 = time.perf_counter()
    summary = await run_import(folder, opts, tty=False)
    wall = time.perf_counter() - t0
    if summary["enrolled"] != summary["total"]:
        raise SystemExit(f"{name}: not every photo enrolled: {summary}")
    return summary["enrolled"], wall


async def run(args: argparse.Namespace, router: str, sfapi: str, tmp: Path) -> None:
    status, body = await call("POST", router + "/v1/sources", json={"name": "bench"})
    assert status == 201, body
    status, body = await call("PUT", router + "/v1/thresholds",
                              json={"exact": 100, "ha": 100, "junk": 100})
    assert status == 200, body
    loop = asyncio.get_running_loop()
    offset = 0
    probe = await loop.run_in_executor(None, variants, offset, args.stage_photos)
    offset += args.stage_photos
    rows_stage = await stages(router, sfapi, probe)
    rows = []
    for concurrency, largest in ((1, False), (4, False), (4, True)):
        folder = tmp / f"photos-{concurrency}-{largest}"
        folder.mkdir()
        for i, data in enumerate(await loop.run_in_executor(None, variants, offset, args.count)):
            (folder / f"person {i:05d}.jpg").write_bytes(data)
        offset += args.count
        n, wall = await throughput(router, sfapi, folder, concurrency, largest, tmp)
        rows.append((concurrency, "off" if largest else "on", n, wall, n / wall))
    print(f"\ncores: {os.cpu_count()}, photos {', '.join(PHOTOS)} (cropped), "
          f"{args.stage_photos} for the stages, {args.count} per run\n")
    print(table(["stage, one photo at a time", "ms (median)"], rows_stage))
    print()
    print(table(["in flight", "several-faces check", "enrolled", "seconds", "photos/s"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40, help="photos per throughput run")
    parser.add_argument("--stage-photos", type=int, default=9, help="photos timed stage by stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-enrol-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = tmp / "sfapi.yaml"
        cfg.write_text(json.dumps({"gallery": {"path": str(tmp / "galleries.db")}}))
        with sfapi_server(config=cfg) as sfapi:
            router, proc = start_router(tmp, sfapi)
            try:
                asyncio.run(run(args, router, sfapi, tmp))
            finally:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
