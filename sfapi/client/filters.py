"""Filters for :meth:`Gallery.list <sfapi.client.gallery.Gallery.list>` (gallery listing and search).

Usage, as documented for ``ntech.sfapi_client.filters``::

    filters=[filters.Id.gte(123456), filters.Meta('age').gte(45),
             filters.Meta('camera').oneof('abc', 'def'), filters.Detection(det, 0.77)]

Every filter is an immutable :class:`Filter` whose :meth:`~Filter.to_json` gives the object sent in
the ``filters`` list of the search request.
"""
from __future__ import annotations

import abc
import functools
import math
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sfapi.client import objects

__all__ = ["Filter", "FieldFilter", "UnnamedMeta", "Id", "Meta", "Detection", "Face", "serialize"]

ScalarMeta = str | int


class Filter(abc.ABC):
    """Base of every filter: something that serializes to one search-filter JSON object."""

    @abc.abstractmethod
    def to_json(self, *, gallery: str | None = None) -> dict[str, Any]:
        """The JSON object of this filter.

        Args:
            gallery: name of the gallery being searched; used to resolve a :class:`Face` filter
                given only a face number. Other filters ignore it.
        """


def _values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """``oneof(1, 2)`` and ``oneof([1, 2])`` both give ``(1, 2)``."""
    if len(values) == 1 and isinstance(values[0], (list, tuple, set, frozenset)):
        return tuple(values[0])
    return values


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return value


def _check_meta(value: Any, what: str) -> ScalarMeta:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{what} must be a str or an int, got {value!r}")
    return value


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number, got {threshold!r}")
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
    return float(threshold)


@dataclass(frozen=True, slots=True)
class FieldFilter(Filter):
    """A comparison on a field: ``{"field": ..., "op": ..., "value": ...}``.

    Made by :class:`Id` and :class:`Meta`; ``field`` is ``"id"`` or ``"meta.<name>"``, ``op`` one of
    ``lte``, ``gte``, ``oneof``, ``subset``; a set-valued ``value`` is held as a tuple.
    """

    field: str
    op: str
    value: Any

    def to_json(self, *, gallery: str | None = None) -> dict[str, Any]:
        """``{"field", "op", "value"}``, with a set-valued ``value`` as a JSON list."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "op": self.op, "value": value}


class Id:
    """Filters on the face id. Not instantiated: use :meth:`lte`, :meth:`gte`, :meth:`oneof`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Id:
        raise TypeError("filters.Id is not instantiated: use Id.lte(), Id.gte() or Id.oneof()")

    @classmethod
    def lte(cls, value: int) -> Filter:
        """Faces with id less than or equal to ``value``. ``Id.lte(1234)``."""
        return FieldFilter("id", "lte", _check_int(value, "Id.lte value"))

    @classmethod
    def gte(cls, value: int) -> Filter:
        """Faces with id greater than or equal to ``value``. ``Id.gte(1234)``."""
        return FieldFilter("id", "gte", _check_int(value, "Id.gte value"))

    @classmethod
    def oneof(cls, *value: int) -> Filter:
        """Faces whose id is one of ``value``. ``Id.oneof(1234, 5678)`` (a single list also works)."""
        return FieldFilter("id", "oneof",
                           tuple(_check_int(v, "Id.oneof value") for v in _values(value)))


@dataclass(frozen=True, slots=True)
class UnnamedMeta(Filter):
    """A meta filter written without its field, as the reference's example ``Meta.oneof(1234, 5678)``.

    The values are checked when it is made; :meth:`on` names the field (``Meta.oneof(1, 2).on('n')``
    is ``Meta('n').oneof(1, 2)``). Sent to the service without a field, it cannot be answered, so
    :meth:`to_json` raises :class:`ValueError` saying how to name the field.
    """

    op: str
    value: Any

    def on(self, name: str) -> Filter:
        """The same filter on the meta field ``name``."""
        return FieldFilter(Meta(name).field, self.op, self.value)

    def to_json(self, *, gallery: str | None = None) -> dict[str, Any]:
        """Raises :class:`ValueError`: a meta filter needs a field name."""
        shown = ", ".join(repr(v) for v in self.value) if isinstance(self.value, tuple) \
            else repr(self.value)
        raise ValueError(f"Meta.{self.op}({shown}) names no meta field: write "
                         f"Meta('<field>').{self.op}({shown}) or Meta.{self.op}({shown}).on('<field>')")


class _either:
    """Method usable on an instance (``Meta('foo').lte(1)``) or on the class (``Meta.lte('foo', 1)``).

    Called on the class, a first positional argument that is a str is the meta field name. Any
    other first argument (the reference's example ``Meta.oneof(1234, 5678)``) gives an
    :class:`UnnamedMeta` holding the checked values, to be named with :meth:`UnnamedMeta.on`.
    """

    def __init__(self, func: Callable[..., Filter]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: Any, owner: type) -> Callable[..., Filter]:
        if obj is not None:
            return types.MethodType(self.func, obj)

        @functools.wraps(self.func)
        def on_class(*args: Any, **kwargs: Any) -> Filter:
            if args and isinstance(args[0], str):
                return self.func(owner(args[0]), *args[1:], **kwargs)
            checked = self.func(owner("?"), *args, **kwargs)
            assert isinstance(checked, FieldFilter)
            return UnnamedMeta(checked.op, checked.value)

        return on_class


class Meta:
    """Filters on a meta field: ``Meta('age').gte(45)``, ``Meta('camera').oneof('abc', 'def')``.

    The class form with the name first, ``Meta.gte('age', 45)``, gives the same filter.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"meta field name must be a non-empty str, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"Meta({self.name!r})"

    @property
    def field(self) -> str:
        """The wire field name, ``"meta.<name>"``."""
        return f"meta.{self.name}"

    @_either
    def lte(self, value: ScalarMeta) -> Filter:
        """Faces whose meta value is less than or equal to ``value`` (a str or an int)."""
        return FieldFilter(self.field, "lte", _check_meta(value, f"Meta({self.name!r}).lte value"))

    @_either
    def gte(self, value: ScalarMeta) -> Filter:
        """Faces whose meta value is greater than or equal to ``value`` (a str or an int)."""
        return FieldFilter(self.field, "gte", _check_meta(value, f"Meta({self.name!r}).gte value"))

    @_either
    def oneof(self, *value: ScalarMeta) -> Filter:
        """Faces whose meta value is one of ``value`` (strs or ints; a single list also works)."""
        what = f"Meta({self.name!r}).oneof value"
        return FieldFilter(self.field, "oneof", tuple(_check_meta(v, what) for v in _values(value)))

    @_either
    def subset(self, *value: ScalarMeta) -> Filter:
        """Faces whose (list-valued) meta holds every one of ``value``.

        ``Meta('tags').subset('male', 'angry')``; a single list also works.
        """
        what = f"Meta({self.name!r}).subset value"
        return FieldFilter(self.field, "subset", tuple(_check_meta(v, what) for v in _values(value)))


@dataclass(frozen=True, slots=True, init=False)
class Detection(Filter):
    """Faces that look like a detection, with similarity at least ``threshold`` (0 to 1).

    ``Detection(det, 0.77)`` where ``det`` is a :class:`~sfapi.client.objects.DetectFace` (made with
    ``facen=True``) or its id string.
    """

    id: str
    threshold: float

    def __init__(self, id: str | objects.DetectFace, threshold: float) -> None:
        if isinstance(id, objects.DetectFace):
            if id.id is None:
                raise ValueError("this DetectFace has no id: detect with facen=True to search by it")
            id = id.id
        if not isinstance(id, str) or not id:
            raise TypeError(f"Detection id must be a DetectFace or a non-empty str, got {id!r}")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "threshold", _check_threshold(threshold))

    def to_json(self, *, gallery: str | None = None) -> dict[str, Any]:
        """``{"field": "detection", "op": "looks_like", "value": id, "threshold": t}``."""
        return {"field": "detection", "op": "looks_like", "value": self.id,
                "threshold": self.threshold}


@dataclass(frozen=True, slots=True, init=False)
class Face(Filter):
    """Faces that look like a stored face, with similarity at least ``threshold`` (0 to 1).

    ``id`` is a :class:`~sfapi.client.objects.Face`, a :class:`~sfapi.client.objects.FaceId`, a
    ``"<gallery>/<face>"`` string, or a bare face number (int or digit string) meaning that face in
    the gallery being searched. ``Face(FaceId('gal1', 1234), 0.77)``.
    """

    gallery: str | None
    face: int
    threshold: float

    def __init__(self, id: objects.Face | objects.FaceId | str | int, threshold: float) -> None:
        gallery: str | None
        if isinstance(id, objects.Face):
            id = id.id
        if isinstance(id, tuple):  # FaceId or a plain (gallery, face) pair
            if len(id) != 2:
                raise TypeError(f"Face id tuple must be (gallery, face), got {id!r}")
            gallery, face = id
            if not isinstance(gallery, str) or not gallery:
                raise TypeError(f"Face id gallery must be a non-empty str, got {gallery!r}")
            face = _check_int(face, "Face id face")
        elif isinstance(id, str):
            if id.isdigit():
                gallery, face = None, int(id)
            else:
                gallery, face = objects.FaceId.parse(id)
        elif isinstance(id, int) and not isinstance(id, bool):
            gallery, face = None, id
        else:
            raise TypeError("Face id must be a Face, a FaceId, a '<gallery>/<face>' str or an int, "
                            f"got {id!r}")
        object.__setattr__(self, "gallery", gallery)
        object.__setattr__(self, "face", face)
        object.__setattr__(self, "threshold", _check_threshold(threshold))

    def to_json(self, *, gallery: str | None = None) -> dict[str, Any]:
        """``{"field": "face", "op": "looks_like", "value": {"gallery", "face"}, "threshold": t}``.

        Raises:
            ValueError: the filter names no gallery and ``gallery`` is not given.
        """
        owner = self.gallery if self.gallery is not None else gallery
        if owner is None:
            raise ValueError(f"Face filter for face {self.face} names no gallery")
        return {"field": "face", "op": "looks_like",
                "value": {"gallery": owner, "face": self.face}, "threshold": self.threshold}


def serialize(filters: Iterable[Filter] | None, *, gallery: str | None = None) -> list[dict[str, Any]]:
    """The ``filters`` list of a search request; raises :class:`TypeError` for a non-filter."""
    if filters is None:
        return []
    if isinstance(filters, Filter):
        raise TypeError("filters must be an iterable of Filter objects, got a single Filter")
    out = []
    for item in filters:
        if not isinstance(item, Filter):
            raise TypeError(f"filters must hold Filter objects, got {item!r}")
        out.append(item.to_json(gallery=gallery))
    return out
