"""Gallery domain types shared by every backend, the HTTP layer and the tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

MetaType = Literal["int", "string", "strings"]
MetaValue = Union[int, str, list[str]]
Schema = dict[str, MetaType]
Sort = Literal["id", "-id", "-confidence"]

UINT64_MAX = 2**64 - 1
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class GalleryInfo:
    name: str
    number: int  # faces in the gallery


@dataclass(frozen=True)
class FaceRecord:
    """A face stored in a gallery. ``facen`` is a unit float32 vector of the gallery's model."""

    id: int
    facen: np.ndarray
    meta: dict[str, MetaValue] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    model: str = ""


@dataclass(frozen=True)
class IdFilter:
    op: Literal["lte", "gte", "oneof"]
    value: int | tuple[int, ...]


@dataclass(frozen=True)
class MetaFilter:
    field: str
    op: Literal["lte", "gte", "oneof", "subset"]
    value: int | str | tuple[int | str, ...]


@dataclass(frozen=True)
class LookAlike:
    """Faces at least ``threshold`` similar (0..1 scale of facestack.vision.engines.similarity) to ``vector``."""

    vector: np.ndarray
    threshold: float
    model: str = ""


@dataclass(frozen=True)
class Cursor:
    """Keyset position after the last result of a page: the next page starts strictly after it."""

    sort: Sort
    last_id: int
    last_confidence: float | None = None


@dataclass(frozen=True)
class Query:
    ids: tuple[IdFilter, ...] = ()
    meta: tuple[MetaFilter, ...] = ()
    like: LookAlike | None = None
    sort: Sort = "id"
    limit: int = 1000
    after: Cursor | None = None
    ignore_errors: bool = False


@dataclass(frozen=True)
class Hit:
    record: FaceRecord
    confidence: float | None  # set when the query has a look-alike filter


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    next_page: Cursor | None  # None when there are no more results
    partial: bool = False  # some shards failed and ignore_errors let the answer through
