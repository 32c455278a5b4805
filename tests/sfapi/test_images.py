import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facestack.vision.engines.images import decode_image, sniff_format
from facestack.vision.errors import EmptyImage, ImageTooLarge, UnreadableImage
from sfapi.errors import BadParam, MalformedRequest, PayloadTooLarge, from_image_error

LIMIT = 40_000_000


def _encode(fmt: str, size: tuple[int, int] = (64, 48), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, fmt, **kw)
    return buf.getvalue()


def huge_png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels but carries one tiny IDAT: must be refused by its header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_accepted_formats(fmt: str) -> None:
    img = decode_image(_encode(fmt), LIMIT)
    assert img.rgb.shape == (48, 64, 3) and img.rgb.dtype == np.uint8
    assert img.format == fmt.lower()


@pytest.mark.parametrize("data, error, answer, fragment", [
    (b"", EmptyImage, MalformedRequest, "empty body"),
    (b"hello, this is text", UnreadableImage, BadParam, "unsupported image type text"),
    (_encode("GIF"), UnreadableImage, BadParam, "unsupported image type gif"),
    (_encode("JPEG")[:200], UnreadableImage, BadParam, "cannot decode jpeg"),
    (huge_png_header(30000, 30000), ImageTooLarge, PayloadTooLarge, "exceeds the limit"),
    (huge_png_header(8000, 8000), ImageTooLarge, PayloadTooLarge, "8000x8000"),
])
def test_bad_images_are_clear_4xx(data: bytes, error: type, answer: type, fragment: str) -> None:
    with pytest.raises(error) as exc:
        decode_image(data, LIMIT)
    assert exc.value.param == "image" and fragment in exc.value.reason
    http = from_image_error(exc.value)  # what sfapi answers
    assert type(http) is answer and 400 <= http.status < 500 and fragment in http.reason


def test_exif_orientation_is_applied() -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    Image.new("RGB", (64, 32), (0, 0, 0)).save(buf, "JPEG", exif=exif)
    img = decode_image(buf.getvalue(), LIMIT)
    assert img.orientation == 6 and img.rgb.shape == (64, 32, 3)


def test_sniff() -> None:
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"\x00\x01") == "unknown"


def test_real_photos_decode(data_dir: Path) -> None:
    for path in sorted(data_dir.glob("faces/*/*"))[:5]:
        assert decode_image(path.read_bytes(), LIMIT).rgb.ndim == 3


def _png_of(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def test_high_bit_depth_and_other_modes_decode_to_the_right_colours() -> None:
    ramp16 = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    got = decode_image(_png_of(Image.fromarray(ramp16)), LIMIT).rgb  # I;16 greyscale
    assert got.shape == (48, 64, 3) and np.array_equal(got[..., 0], (ramp16 // 257).astype(np.uint8))
    # grey with alpha: transparent pixels over white, opaque ones keep their grey
    la = Image.new("LA", (8, 8), (40, 255))
    la.putpixel((0, 0), (40, 0))
    got = decode_image(_png_of(la), LIMIT).rgb
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[1, 1]) == (40, 40, 40)
    # palette with a transparent entry
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.putpixel((0, 0), 0)
    got = decode_image(_png_of(pal, transparency=0), LIMIT).rgb
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[1, 1]) == (200, 10, 10)
    # CMYK JPEG
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)
    r, g, b = decode_image(buf.getvalue(), LIMIT).rgb[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60
