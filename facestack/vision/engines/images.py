"""Decoding untrusted image bytes with limits: format sniffing, pixel caps, EXIF orientation."""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from facestack.vision.errors import EmptyImage, ImageTooLarge, UnreadableImage

ACCEPTED = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}

_MAGIC: list[tuple[bytes, str]] = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
]


@dataclass(frozen=True)
class DecodedImage:
    """An RGB uint8 image (h, w, 3) upright after EXIF orientation, and that orientation (1..8)."""

    rgb: np.ndarray
    orientation: int
    format: str


def sniff_format(data: bytes) -> str:
    """The image type by its magic bytes, or 'unknown'."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "unknown"


def decode_image(data: bytes, max_pixels: int, param: str = "image") -> DecodedImage:
    """Decode ``data`` or raise an :class:`~facestack.vision.errors.ImageError` that names ``param``
    and says what is wrong."""
    if not data:
        raise EmptyImage(param, "", f"{param}: empty body, expected a JPEG, PNG, WEBP or BMP image")
    kind = sniff_format(data)
    if kind not in ACCEPTED.values():
        shown = kind if kind != "unknown" else _describe(data)
        raise UnreadableImage(param, shown, f"{param}: unsupported image type {shown}; send JPEG, PNG, WEBP or BMP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(param, f"{w}x{h}", f"{param}: {w}x{h} = {w * h} pixels exceeds the "
                                      f"limit of {max_pixels} pixels")
            if w < 1 or h < 1:
                raise UnreadableImage(param, f"{w}x{h}", f"{param}: image has no pixels")
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            img.load()
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img
            rgb = to_rgb(upright)
    except (UnreadableImage, ImageTooLarge):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge(param, kind, f"{param}: image exceeds the limit of {max_pixels} pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = re.sub(r" ?<[^<>]* object at 0x[0-9a-fA-F]+>", "", str(exc))
        raise UnreadableImage(param, kind, f"{param}: cannot decode {kind} image: {detail}") from None
    if orientation not in range(1, 9):
        orientation = 1
    return DecodedImage(np.ascontiguousarray(rgb), orientation, kind)


def to_rgb(img: Image.Image) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB of any Pillow mode: high bit depths scaled (not clipped) to 8 bits,
    transparency composited over white, palettes and CMYK converted."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _scale_to_u8(np.asarray(img), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info or mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _scale_to_u8(values: np.ndarray, mode: str) -> np.ndarray:
    if mode.startswith("I;16"):
        return (values.astype(np.uint32) // 257).astype(np.uint8)
    v = values.astype(np.float64)
    if mode == "F":
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        if v.size and v.min() >= 0.0 and v.max() <= 1.0:
            return np.round(v * 255.0).astype(np.uint8)
    if mode == "I" and v.size and v.min() >= 0 and v.max() <= 65535:
        return (v // 257).astype(np.uint8) if v.max() > 255 else v.astype(np.uint8)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(v.shape, np.uint8)
    return np.round((v - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _describe(data: bytes) -> str:
    head = data[:64]
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary data"
