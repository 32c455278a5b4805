"""``sfapi gallery backup | restore``: an online backup of the embedded store taken (by the console
script, another process) while faces are being added through the real sfapi, restored into an
empty store and compared; and the Milvus export up to a watermark while adds run."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sfapi.backup.gallery import backup_galleries, export_store, restore_galleries
from sfapi.backup.manifest import BackupError, read_manifest, verify
from sfapi.client import Client
from sfapi.config import GalleryConfig
from sfapi.gallery.embedded import EmbeddedStore
from sfapi.gallery.types import FaceRecord, Query

REPO = Path(__file__).resolve().parents[2]


async def script(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sfapi.cli", *args, cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def all_ids(store: Any, gallery: str) -> set[int]:
    res = await store.search(gallery, Query(limit=10_000))
    assert res.next_page is None
    return {h.record.id for h in res.hits}


async def test_online_backup_under_load(start_server: Any, data_dir: Path,
                                        tmp_path: Path) -> None:
    sf = await start_server()  # its store: tmp_path / galleries-0.db
    acked: list[int] = []
    async with Client(sf.base) as client:
        await client.request("POST", "/v2/galleries/watch", json_body={"meta_schema": {"n": "int"}})
        gallery = client["watch"]
        faces = await client.detect(image=(data_dir / "faces/obama/img1.jpg").read_bytes(),
                                    facen=True)
        stop = asyncio.Event()

        async def adder(start: int) -> None:
            face_id = start
            while not stop.is_set():
                await gallery.add(face_id, faces[0], meta={"n": face_id})
                acked.append(face_id)
                face_id += 2

        load = [asyncio.create_task(adder(1)), asyncio.create_task(adder(2))]
        while len(acked) < 40:
            await asyncio.sleep(0.01)
        before = set(acked)  # acknowledged before the backup started
        code, out = await script("gallery", "backup", str(tmp_path / "bk"), "--config",
                                 str(_config(tmp_path, "galleries-0.db")))
        during = len(acked) - len(before)
        while len(acked) < len(before) + during + 20:  # and adds go on after it
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*load)
    assert code == 0, out
    manifest = read_manifest(tmp_path / "bk")
    verify(tmp_path / "bk", manifest)
    part = manifest["galleries"]
    assert part["point_in_time"] is True and part["file"] == "galleries.db"
    count = part["galleries"]["watch"]["faces"]
    assert len(before) <= count <= len(acked)

    code, out = await script("gallery", "restore", str(tmp_path / "bk"), "--sample", "50",
                             "--config", str(_config(tmp_path, "restored.db")))
    assert code == 0, out
    assert f"gallery watch: {count}/{count} faces, 50 sampled, 0 mismatched" in out
    restored = EmbeddedStore(tmp_path / "restored.db")
    await restored.open()
    try:
        ids = await all_ids(restored, "watch")
        assert before <= ids <= set(acked)  # no acknowledged face missing, nothing invented
        rec = await restored.get("watch", min(ids))
        assert rec.meta == {"n": min(ids)} and rec.facen.shape == (128,)
    finally:
        await restored.close()
    # a second restore into the now full store is refused; a tampered backup too
    code, out = await script("gallery", "restore", str(tmp_path / "bk"),
                             "--config", str(_config(tmp_path, "restored.db")))
    assert code == 1 and "empty store" in out, out
    with (tmp_path / "bk" / "galleries.db").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01")
    with pytest.raises(BackupError, match="checksum"):
        verify(tmp_path / "bk", manifest)


def _config(tmp_path: Path, db: str) -> Path:
    path = tmp_path / f"sfapi-{db}.yaml"
    path.write_text(yaml.safe_dump({"gallery": {"path": str(tmp_path / db)}}))
    return path


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def test_milvus_export_up_to_the_watermark(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    from sfapi.gallery.milvus import MilvusStore

    store = MilvusStore(str(tmp_path / "m.db"))
    await store.open()
    vecs = _vectors(600, 3)

    def rec(i: int) -> FaceRecord:
        return FaceRecord(i, vecs[i - 1], {"camera": f"c{i % 3}"}, {"q": i}, "facenet-test")
    try:
        await store.create_gallery("g", {"camera": "string"})
        await store.add_many("g", [rec(i) for i in range(1, 401)])
        acked = set(range(1, 401))
        stop = asyncio.Event()

        async def adder() -> None:
            for i in range(401, 601):
                if stop.is_set():
                    return
                await store.add("g", rec(i))
                acked.add(i)

        load = asyncio.create_task(adder())
        await asyncio.sleep(0)
        before = set(acked)
        part = await export_store(store, tmp_path / "galleries.db", batch=64)
        stop.set()
        await load
    finally:
        await store.close()
    mark = int(part["galleries"]["g"]["watermark"])
    assert part["point_in_time"] is False and "watermark" in part["note"]
    assert max(before) <= mark
    # into an empty embedded store, then checked
    result = await restore_galleries(tmp_path, part, GalleryConfig(path=tmp_path / "r.db"),
                                     sample=64)
    assert result["ok"], result
    restored = EmbeddedStore(tmp_path / "r.db")
    await restored.open()
    try:
        ids = await all_ids(restored, "g")
        assert before <= ids and ids == {i for i in acked if i <= mark}
        got = await restored.get("g", 7)
        assert np.array_equal(got.facen, vecs[6]) and got.meta == {"camera": "c1"}
    finally:
        await restored.close()
    assert json.dumps(part)  # the manifest part is plain JSON
    # the same backup restores into Milvus too (a site moving between backends)
    cfg = GalleryConfig(backend="milvus", milvus_uri=str(tmp_path / "m2.db"))
    result = await restore_galleries(tmp_path, part, cfg, sample=16)
    assert result["ok"] and result["galleries"]["g"]["restored"] == len(ids), result


async def test_backup_of_a_missing_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such database"):
        await backup_galleries(GalleryConfig(path=tmp_path / "nothing.db"), tmp_path)
