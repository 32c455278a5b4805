"""Parsing and validation of the frame upload (``POST /v0/frame``, multipart/form-data).

Parts, as the video worker sends them: ``photo`` (JPEG of the frame or a crop of it), ``face0``
(JPEG of the normalized face; optional), ``bbox`` (JSON ``[[x1, y1, x2, y2]]`` in photo pixels),
``cam_id``, ``timestamp`` (RFC 3339, with a UTC offset), ``detectorParams`` (JSON object),
``bs_type`` (``overall`` | ``realtime``) and ``labels`` (JSON object of strings). A part may come as
a file or as a plain form field. A missing or malformed part raises :class:`BadFrame` naming it.

JSON parts are parsed by :mod:`facestack.core.safejson` (size and nesting limits, no NaN/Infinity). The
images' sizes are read from their headers (no decoding): ``face0`` must be at least
:data:`MIN_FACE0_SIDE` pixels on each side, and ``bbox`` must overlap ``photo`` and reach past its
borders by at most one photo width/height (a face cut by the border).

The optional ``Idempotency-Key`` header (printable ASCII, at most 200 characters) names the post;
a sender that repeats a post (a retry, a replay from its spool) sends the same key, and the router
answers it with the same ``event_id`` without handing it to the plugins twice (see
:mod:`facerouter.dedup`).
"""
from __future__ import annotations

import datetime
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from tornado.httputil import HTTPServerRequest

from facerouter.errors import BadFrame
from facestack.core import safejson
from facestack.vision.engines.images import sniff_format

__all__ = ["FrameParams", "parse_frame", "image_size", "BS_TYPES", "JPEG_MAGIC", "MIN_FACE0_SIDE",
           "IDEMPOTENCY_HEADER"]

#: smallest width and height of face0 (sfapi's normalized detector needs a face to look at)
MIN_FACE0_SIDE = 16
#: the header a sender names a post with (repeats of a post carry the same key)
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_MAX_JSON_PART = 64 * 1024

BS_TYPES = ("overall", "realtime")
JPEG_MAGIC = b"\xff\xd8"
#: the image types a frame part may be (by their magic bytes)
UPLOAD_TYPES = ("jpeg", "png", "webp")
_MAX_TEXT = 1024


@dataclass(frozen=True, slots=True)
class FrameParams:
    """The parsed parts of a frame: ``request.params`` as plugins see it.

    Attributes:
        photo: JPEG of the frame (or the configured crop of it).
        face0: JPEG of the normalized face, or ``None`` when the sender sent none.
        bbox: ``[[x1, y1, x2, y2]]``, the face in ``photo`` pixels.
        cam_id: camera id.
        timestamp: frame time, an aware datetime.
        detectorParams: the video worker's detector data (score, landmarks, track id ...).
        bs_type: ``'overall'`` or ``'realtime'``.
        labels: the camera job's labels (str -> str).
        idempotency_key: the sender's ``Idempotency-Key`` header, or ``None``.
        photo_size: ``(width, height)`` of ``photo``.
    """

    photo: bytes
    face0: bytes | None
    bbox: list[list[int]]
    cam_id: str
    timestamp: datetime.datetime
    detectorParams: dict[str, Any] = field(default_factory=dict)  # noqa: N815 - wire name
    bs_type: str = "overall"
    labels: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    photo_size: tuple[int, int] = (0, 0)

    def __getitem__(self, key: str) -> Any:
        """``params['cam_id']`` is ``params.cam_id`` (for plugins that treat params as a dict)."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get``."""
        return getattr(self, key) if key in self.__dataclass_fields__ else default


def parse_frame(request: HTTPServerRequest) -> FrameParams:
    """Validate the parts of a frame request (already parsed into ``files`` / ``body_arguments``).

    Raises:
        BadFrame: the first missing or malformed part, named in ``param``.
    """
    ctype = request.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data"):
        raise BadFrame(f"the frame must be multipart/form-data, got {ctype or 'no Content-Type'!r}",
                       param="Content-Type", value=ctype)
    photo = _image(request, "photo", required=True)
    assert photo is not None
    photo_size = image_size(photo, "photo")
    face0 = _image(request, "face0", required=False)
    if face0 is not None:
        w, h = image_size(face0, "face0")
        if min(w, h) < MIN_FACE0_SIDE:
            raise BadFrame(f"face0 is {w}x{h} pixels; it must be at least {MIN_FACE0_SIDE}x"
                           f"{MIN_FACE0_SIDE} (the normalized face)", param="face0", value=[w, h])
    return FrameParams(
        photo=photo,
        face0=face0,
        bbox=_bbox(_text(request, "bbox"), photo_size),
        cam_id=_cam_id(_text(request, "cam_id")),
        timestamp=_timestamp(_text(request, "timestamp")),
        detectorParams=_json_object(_text(request, "detectorParams"), "detectorParams"),
        bs_type=_bs_type(_text(request, "bs_type")),
        labels=_labels(_text(request, "labels")),
        idempotency_key=_idempotency_key(request),
        photo_size=photo_size,
    )


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (nothing is decoded); raises
    :class:`BadFrame` naming part ``name`` when the header cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BadFrame(f"part {name!r} is too large an image", param=name, value=None) from None
    except Exception as exc:  # PIL raises many types for damaged headers
        raise BadFrame(f"part {name!r} is not a readable image: {type(exc).__name__}",
                       param=name, value=data[:8]) from None
    if width < 1 or height < 1:
        raise BadFrame(f"part {name!r} has no pixels", param=name, value=[width, height])
    return width, height


def _idempotency_key(request: HTTPServerRequest) -> str | None:
    values = request.headers.get_list(IDEMPOTENCY_HEADER)
    if not values:
        return None
    if len(values) > 1 or not _KEY.match(values[0]):
        raise BadFrame(f"{IDEMPOTENCY_HEADER} must be one value of 1-200 printable ASCII "
                       "characters", param=IDEMPOTENCY_HEADER, value=values[0])
    return values[0]


def _raw(request: HTTPServerRequest, name: str) -> bytes | None:
    """The bytes of part ``name`` (a file part or a plain field); refuses a repeated part."""
    found = [f.body for f in request.files.get(name, ())] + list(request.body_arguments.get(name, ()))
    if len(found) > 1:
        raise BadFrame(f"part {name!r} is given {len(found)} times", param=name, value=len(found))
    return found[0] if found else None


def _image(request: HTTPServerRequest, name: str, *, required: bool) -> bytes | None:
    data = _raw(request, name)
    if data is None or not data:
        if required or data is not None:
            raise BadFrame(f"part {name!r} is {'missing' if data is None else 'empty'}; it must "
                           "be an image (JPEG)", param=name, value=None)
        return None
    if sniff_format(data) not in UPLOAD_TYPES:
        raise BadFrame(f"part {name!r} is not a JPEG (or PNG/WEBP) image", param=name,
                       value=data[:8])
    return bytes(data)


def _text(request: HTTPServerRequest, name: str) -> str:
    data = _raw(request, name)
    if data is None:
        raise BadFrame(f"part {name!r} is missing", param=name, value=None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadFrame(f"part {name!r} is not UTF-8 text", param=name, value=data[:32]) from None


def _json(text: str, name: str) -> Any:
    try:
        return safejson.loads(text, max_bytes=_MAX_JSON_PART)
    except safejson.JsonRefused as exc:
        raise BadFrame(f"part {name!r} is not acceptable JSON: {exc.detail}", param=name,
                       value=text) from None


def _bbox(text: str, size: tuple[int, int]) -> list[list[int]]:
    value = _json(text, "bbox")
    if (not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], list)
            or len(value[0]) != 4):
        raise BadFrame("bbox must be JSON [[x1, y1, x2, y2]]", param="bbox", value=text)
    box = value[0]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in box):
        raise BadFrame("bbox coordinates must be finite numbers", param="bbox", value=text)
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise BadFrame("bbox must have x2 > x1 and y2 > y1", param="bbox", value=text)
    w, h = size
    if x1 < -w or y1 < -h or x2 > 2 * w or y2 > 2 * h:
        raise BadFrame(f"bbox reaches too far past the {w}x{h} photo (at most one photo width or "
                       "height past its borders)", param="bbox", value=text)
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise BadFrame(f"bbox lies outside the {w}x{h} photo", param="bbox", value=text)
    # integers, as the plugin API documents: the smallest pixel box holding the worker's float box
    return [[math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)]]


def _cam_id(text: str) -> str:
    if not text or len(text) > _MAX_TEXT or not text.isprintable():
        raise BadFrame(f"cam_id must be a non-empty printable string of at most {_MAX_TEXT} "
                       "characters", param="cam_id", value=text)
    return text


def _timestamp(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadFrame("timestamp must be RFC 3339, e.g. 2024-05-01T12:30:00.250Z",
                       param="timestamp", value=text) from None
    if value.tzinfo is None:
        raise BadFrame("timestamp must carry a UTC offset (RFC 3339: 'Z' or '+hh:mm')",
                       param="timestamp", value=text)
    return value


def _json_object(text: str, name: str) -> dict[str, Any]:
    value = _json(text, name)
    if not isinstance(value, dict):
        raise BadFrame(f"part {name!r} must be a JSON object", param=name, value=text)
    return value


def _bs_type(text: str) -> str:
    if text not in BS_TYPES:
        raise BadFrame(f"bs_type must be one of {', '.join(BS_TYPES)}", param="bs_type", value=text)
    return text


def _labels(text: str) -> dict[str, str]:
    value = _json_object(text, "labels")
    for key, item in value.items():
        if not isinstance(item, str):
            raise BadFrame(f"labels must map strings to strings; label {key!r} is "
                           f"{type(item).__name__}", param="labels", value=text)
    return value
