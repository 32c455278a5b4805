"""Fixtures of the bulk tools' tests: a watchlist folder built from the project's test photos with
bad ones mixed in, and a site (real sfapi + real facerouter with the persons plugin)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.plugins.persons.conftest import PersonsEnv, make_source

#: what the importer must report for each person of :func:`watchlist` (status, reason)
EXPECTED: dict[str, tuple[str, str]] = {
    "Barack Obama": ("enrolled", ""),     # its first photo is broken, the second enrols
    "Joe Biden": ("enrolled", ""),        # one photo per file, named after the person
    "broken": ("refused", "unreadable"),  # random bytes
    "no face": ("refused", "no_face"),    # a generated gradient
    "two people": ("refused", "several_faces"),  # two face photos side by side
    "tiny": ("refused", "too_small"),     # a face far below the source's size gate
    "zz Obama again": ("refused", "match"),  # sorted last: Barack Obama is enrolled by then
}


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def side_by_side(a: Path, b: Path) -> bytes:
    """Two face photos pasted side by side."""
    with Image.open(a) as ia, Image.open(b) as ib:
        canvas = Image.new("RGB", (ia.width + ib.width, max(ia.height, ib.height)), (128, 128, 128))
        canvas.paste(ia.convert("RGB"), (0, 0))
        canvas.paste(ib.convert("RGB"), (ia.width, 0))
        return jpeg(canvas)


def watchlist(data: Path, root: Path) -> Path:
    """The folder of :data:`EXPECTED`."""
    faces = data / "faces"
    rng = np.random.default_rng(19)
    (root / "Barack Obama").mkdir(parents=True)
    (root / "Barack Obama" / "0_scan.jpg").write_bytes(rng.bytes(4096))
    (root / "Barack Obama" / "img1.jpg").write_bytes((faces / "obama" / "img1.jpg").read_bytes())
    (root / "Joe Biden.jpg").write_bytes((faces / "biden" / "img1.jpg").read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.bytes(2000))
    gradient = np.tile(np.linspace(30, 220, 320, dtype=np.uint8), (240, 1))
    (root / "no face.png").write_bytes(_png(Image.fromarray(gradient)))
    (root / "two people.jpg").write_bytes(side_by_side(faces / "obama" / "img1.jpg",
                                                       faces / "biden" / "img1.jpg"))
    with Image.open(faces / "obama" / "img2.jpg") as img:
        (root / "tiny.jpg").write_bytes(jpeg(img.resize((img.width * 3 // 10,
                                                         img.height * 3 // 10))))
    (root / "zz Obama again").mkdir()
    (root / "zz Obama again" / "img2.jpg").write_bytes((faces / "obama" / "img2.jpg").read_bytes())
    (root / "notes.txt").write_text("not a photo: ignored")
    return root


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def site(start_persons: Any) -> PersonsEnv:
    env = await start_persons()
    await make_source(env, "door")
    return env
