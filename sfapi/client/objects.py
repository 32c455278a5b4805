"""Result objects of the sfapi client (the documented ``facerouter.objects`` / ``sfapi_client`` ones).

Every object is built from the service's JSON by a ``from_json`` classmethod, which raises
:class:`ValueError` for a body that does not have the documented shape (the client turns that into
:class:`~sfapi.client.errors.SFApiMalformedResponseError`).
"""
from __future__ import annotations

import base64
import binascii
import math
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np

__all__ = [
    "BBox",
    "DetectFace",
    "DetectResponse",
    "FaceId",
    "Face",
    "ListResponse",
    "GalleryListItem",
    "decode_facen",
    "encode_facen",
]


def decode_facen(text: str) -> np.ndarray:
    """Decode a wire facen (base64 of little-endian float32 values) into a 1-D ``float32`` array.

    Raises:
        ValueError: not base64, or a byte length that is not a multiple of 4.
    """
    if not isinstance(text, str):
        raise ValueError(f"facen must be a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"facen is not valid base64: {exc}") from None
    if len(raw) % 4:
        raise ValueError(f"facen has {len(raw)} bytes, not a whole number of float32 values")
    # astype copies: the result is writable, in native byte order and owns its memory.
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def encode_facen(vector: Iterable[float] | np.ndarray) -> str:
    """Encode a vector the way the service sends facens (inverse of :func:`decode_facen`)."""
    array = np.asarray(vector, dtype="<f4").reshape(-1)
    return base64.b64encode(array.tobytes()).decode("ascii")


# --- small readers that turn bad shapes into ValueError ------------------------------------------

def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _number(data: Mapping[str, Any], key: str, what: str, *, optional: bool = False) -> Any:
    if key not in data or data[key] is None:
        if optional:
            return None
        raise ValueError(f"{what}: missing {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: {key!r} must be a finite number, got {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, what: str, *, default: int | None = None) -> int:
    if key not in data or data[key] is None:
        if default is not None:
            return default
        raise ValueError(f"{what}: missing {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: {key!r} must be an integer, got {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, what: str, *, optional: bool = False) -> str | None:
    if key not in data or data[key] is None:
        if optional:
            return None
        raise ValueError(f"{what}: missing {key!r}")
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{what}: {key!r} must be a string, got {value!r}")
    return value


def _dict(data: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: {key!r} must be a JSON object, got {type(value).__name__}")
    return dict(value)


# --- objects ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BBox:
    """Rectangle around a face, in image pixels.

    ``left``/``top`` is the top-left corner and ``right``/``bottom`` the bottom-right one;
    ``x1``, ``y1``, ``x2``, ``y2`` are aliases of them.
    """

    left: float
    top: float
    right: float
    bottom: float

    @property
    def x1(self) -> float:
        """Alias of :attr:`left`."""
        return self.left

    @property
    def y1(self) -> float:
        """Alias of :attr:`top`."""
        return self.top

    @property
    def x2(self) -> float:
        """Alias of :attr:`right`."""
        return self.right

    @property
    def y2(self) -> float:
        """Alias of :attr:`bottom`."""
        return self.bottom

    @property
    def width(self) -> float:
        """``right - left``."""
        return self.right - self.left

    @property
    def height(self) -> float:
        """``bottom - top``."""
        return self.bottom - self.top

    def as_list(self) -> list[float]:
        """``[x1, y1, x2, y2]``, the order facerouter uses for ``bbox``."""
        return [self.left, self.top, self.right, self.bottom]

    def to_json(self) -> dict[str, float]:
        """The wire form ``{"left", "top", "right", "bottom"}``."""
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    @classmethod
    def from_json(cls, data: Any) -> BBox:
        """Build from the wire form ``{"left", "top", "right", "bottom"}``."""
        data = _mapping(data, "bbox")
        return cls(*(_number(data, key, "bbox") for key in ("left", "top", "right", "bottom")))


@dataclass(eq=False, slots=True)
class DetectFace:
    """One detected face (an item of :class:`DetectResponse`).

    Attributes:
        id: id of the detection in the service's detection cache (present when the detection was
            made with ``facen=True``); usable as a gallery-add source or a search filter.
        bbox: the rectangle around the face.
        features: the features asked for, as the service sends them, e.g.
            ``{"gender": {"gender": "male", "score": 0.97}, "age": 31,
            "emotions": [{"emotion": "neutral", "score": 0.8}, ...]}``; empty when none were asked.
        detection_score: detector confidence.
        quality: face quality estimate.
        landmarks: ``(n, 2)`` float32 array of landmark points (5 for the service), or ``None``.
        rotation: rotation (degrees) applied to find the face (non-zero only with ``autorotate``).
        facen: the biometric sample as a 1-D float32 array (only with ``return_facen=True``).
        facen_model: name of the model that made the facen.
    """

    id: str | None
    bbox: BBox
    features: dict[str, Any] = field(default_factory=dict)
    detection_score: float | None = None
    quality: float | None = None
    landmarks: np.ndarray | None = None
    rotation: int = 0
    facen: np.ndarray | None = None
    facen_model: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> DetectFace:
        """Build from one element of the service's ``faces`` list."""
        data = _mapping(data, "face")
        landmarks = None
        if data.get("landmarks") is not None:
            try:
                landmarks = np.asarray(data["landmarks"], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"face: bad 'landmarks': {exc}") from None
            if landmarks.ndim != 2 or landmarks.shape[1] != 2:
                raise ValueError(f"face: 'landmarks' must be a list of [x, y], got shape "
                                 f"{landmarks.shape}")
        facen = decode_facen(data["facen"]) if data.get("facen") is not None else None
        return cls(
            id=_str(data, "id", "face", optional=True),
            bbox=BBox.from_json(data.get("bbox")),
            features=_dict(data, "features", "face"),
            detection_score=_number(data, "detection_score", "face", optional=True),
            quality=_number(data, "quality", "face", optional=True),
            landmarks=landmarks,
            rotation=_int(data, "rotation", "face", default=0),
            facen=facen,
            facen_model=_str(data, "facen_model", "face", optional=True),
        )

    def __repr__(self) -> str:
        return (f"DetectFace(id={self.id!r}, bbox={self.bbox!r}, features={self.features!r}, "
                f"detection_score={self.detection_score!r}, quality={self.quality!r})")


class DetectResponse(list[DetectFace]):
    """List of :class:`DetectFace` with the image's EXIF ``orientation``."""

    def __init__(self, faces: Iterable[DetectFace] = (), orientation: int = 1) -> None:
        super().__init__(faces)
        #: EXIF orientation of the image (1 = upright).
        self.orientation = orientation

    @classmethod
    def from_json(cls, data: Any) -> DetectResponse:
        """Build from the ``POST /v2/detect`` answer ``{"orientation", "faces"}``."""
        data = _mapping(data, "detect response")
        faces = data.get("faces")
        if not isinstance(faces, list):
            raise ValueError("detect response: 'faces' must be a list")
        return cls((DetectFace.from_json(item) for item in faces),
                   orientation=_int(data, "orientation", "detect response", default=1))

    def __repr__(self) -> str:
        return f"DetectResponse({list.__repr__(self)}, orientation={self.orientation!r})"


class FaceId(namedtuple("FaceId", ("gallery", "face"))):
    """Identifier of a face in a gallery: ``gallery`` (name, str) and ``face`` (custom id, int)."""

    __slots__ = ()
    gallery: str
    face: int

    @classmethod
    def parse(cls, text: str) -> FaceId:
        """Parse ``"<gallery>/<face>"`` (e.g. ``"staff/1234"``); raises :class:`ValueError`."""
        gallery, sep, face = text.rpartition("/")
        if not sep or not gallery or not face.isdigit():
            raise ValueError(f"expected '<gallery>/<face id>', got {text!r}")
        return cls(gallery, int(face))

    @classmethod
    def from_json(cls, data: Any) -> FaceId:
        """Build from the wire form ``{"gallery": str, "face": int}``."""
        data = _mapping(data, "face id")
        gallery = _str(data, "gallery", "face id")
        assert gallery is not None
        return cls(gallery, _int(data, "face", "face id"))

    def to_json(self) -> dict[str, Any]:
        """The wire form ``{"gallery": str, "face": int}``."""
        return {"gallery": self.gallery, "face": self.face}


@dataclass(slots=True)
class Face:
    """A face stored in a gallery (also one result of a gallery search).

    Attributes:
        id: the face's :class:`FaceId`.
        features: gender, age and emotions stored with the face (those extracted at detection).
        meta: the face's meta data.
        confidence: similarity to the searched face when the listing had a look-alike filter, else
            ``None``.
    """

    id: FaceId
    features: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> Face:
        """Build from the wire form ``{"id": {...}, "features", "meta", "confidence"}``."""
        data = _mapping(data, "face")
        return cls(
            id=FaceId.from_json(data.get("id")),
            features=_dict(data, "features", "face"),
            meta=_dict(data, "meta", "face"),
            confidence=_number(data, "confidence", "face", optional=True),
        )


class ListResponse(list[Face]):
    """List of :class:`Face` with ``next_page``, the cursor for the following page (or ``None``)."""

    def __init__(self, faces: Iterable[Face] = (), next_page: str | None = None) -> None:
        super().__init__(faces)
        #: Pass as ``page=`` to :meth:`Gallery.list` for the next page; ``None`` on the last page.
        self.next_page = next_page

    @classmethod
    def from_json(cls, data: Any) -> ListResponse:
        """Build from the search answer ``{"results": [...], "next_page": str | null}``."""
        data = _mapping(data, "list response")
        results = data.get("results")
        if not isinstance(results, list):
            raise ValueError("list response: 'results' must be a list")
        return cls((Face.from_json(item) for item in results),
                   next_page=_str(data, "next_page", "list response", optional=True))

    def __repr__(self) -> str:
        return f"ListResponse({list.__repr__(self)}, next_page={self.next_page!r})"


class GalleryListItem(NamedTuple):
    """One gallery in :meth:`Client.list_galleries`: its ``name`` and ``number`` of faces."""

    name: str
    number: int

    @classmethod
    def from_json(cls, data: Any) -> GalleryListItem:
        """Build from the wire form ``{"name": str, "number": int}``."""
        data = _mapping(data, "gallery")
        name = _str(data, "name", "gallery")
        assert name is not None
        return cls(name, _int(data, "number", "gallery", default=0))
