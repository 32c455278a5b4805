"""detect(autorotate=True) on an upright photo: the face stays where it is, once, at rotation 0.

Regression: the unrotated pass was mapped back as if the image had been turned 270 degrees, so on a
portrait photo the face came back at its transposed box, plus a duplicate from the 180-degree pass.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from sfapi.client import Client


def _portrait(data_dir: Path) -> bytes:
    """obama/img1.jpg centred on a 910x1137 grey canvas (an upright portrait photo)."""
    face = Image.open(data_dir / "faces/obama/img1.jpg").convert("RGB")
    canvas = Image.new("RGB", (910, 1137), (128, 128, 128))
    canvas.paste(face, ((910 - face.width) // 2, (1137 - face.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _iou(a, b) -> float:
    ix = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    iy = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = ix * iy
    return inter / (a.width * a.height + b.width * b.height - inter)


async def test_autorotate_keeps_an_upright_face_in_place(start_server, data_dir: Path) -> None:
    srv = await start_server()
    image = _portrait(data_dir)
    async with Client(srv.base, timeout=60) as sfapi:
        plain = await sfapi.detect(image=image)
        turned = await sfapi.detect(image=image, autorotate=True)
    assert len(plain) == 1, plain
    assert len(turned) == 1, turned                # no duplicate from the 180-degree pass
    assert turned[0].rotation == 0
    assert _iou(turned[0].bbox, plain[0].bbox) > 0.9, (turned[0].bbox, plain[0].bbox)
