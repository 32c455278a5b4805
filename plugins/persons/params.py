"""Reading HTTP parameters: every problem is a :class:`~.errors.BadParam` naming the parameter.

:class:`Query` wraps a request's query arguments, refuses unknown names, and reads ints, lists
(comma-separated and/or repeated: ``result=exact,ha&result=nm``), dates (RFC 3339 or a date) and
pids. :func:`json_object` reads a JSON body.

Enum values are also read in the form the NeuroIO client (0.1.2 on Python 3.11) writes into query
strings and form fields, the enum's own name: ``EntryResult.NEW`` is ``new``, ``EntryMood.FEAR`` is
``fear``, ``EntryLiveness.PASSED`` is ``passed``, ``Sex.FEMALE`` is ``1`` (see :func:`enum_value`).
"""
from __future__ import annotations

import datetime
import re
import uuid
from typing import Any, Callable, Iterable, TypeVar

from facestack.core import safejson

from .errors import BadParam

__all__ = ["Query", "json_object", "parse_time", "parse_uuid", "parse_pid", "enum_value",
           "parse_bool", "to_ms", "from_ms"]

#: The NeuroIO client's enums whose member names may arrive instead of their values.
_ENUMS = ("EntryResult", "EntryMood", "EntryLiveness")
_SEX = {"Sex.MALE": "0", "Sex.FEMALE": "1"}
_PID = re.compile(r"[0-9a-f]{1,32}(-[0-9a-f]{1,32}){1,7}")

T = TypeVar("T")


class Query:
    """The query arguments of one request (``handler.request.query_arguments``)."""

    def __init__(self, arguments: dict[str, list[bytes]], known: Iterable[str]) -> None:
        self.raw: dict[str, list[str]] = {}
        allowed = set(known)
        for name, values in arguments.items():
            if name not in allowed:
                raise BadParam(f"unknown parameter {name!r}; known: {', '.join(sorted(allowed))}",
                               param=name, value=_decode(name, values[0]) if values else None)
            self.raw[name] = [_decode(name, v) for v in values]

    def has(self, name: str) -> bool:
        """Whether ``name`` was given."""
        return name in self.raw

    def one(self, name: str) -> str | None:
        """The single value of ``name`` (``None`` when absent; repeated is an error)."""
        values = self.raw.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise BadParam(f"{name} is given {len(values)} times", param=name, value=values)
        return values[0]

    def int(self, name: str, default: int | None = None, *, lo: int | None = None,
            hi: int | None = None) -> int | None:
        """An integer in ``lo..hi``."""
        text = self.one(name)
        if text is None:
            return default
        return check_int(_SEX.get(text, text) if name == "sex" else text, name, lo, hi)

    def bool(self, name: str, default: bool = False) -> bool:
        """``true``/``false``/``1``/``0``."""
        text = self.one(name)
        return default if text is None else parse_bool(text, name)

    def list(self, name: str, convert: Callable[[str, str], T]) -> list[T] | None:
        """Every comma-separated item of every value of ``name``, converted (``None``: absent)."""
        values = self.raw.get(name)
        if values is None:
            return None
        items = [item.strip() for value in values for item in value.split(",")]
        if not items or any(not item for item in items):
            raise BadParam(f"{name} must be a comma-separated list without empty items",
                           param=name, value=",".join(values))
        return [convert(item, name) for item in items]

    def time(self, name: str) -> datetime.datetime | None:
        """An aware datetime (a date alone means its midnight UTC)."""
        text = self.one(name)
        return None if text is None else parse_time(text, name)


def _decode(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParam(f"{name} is not UTF-8 text", param=name, value=value[:32]) from None


def check_int(text: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``text`` (a str or an int) as an int within ``lo..hi``."""
    if isinstance(text, bool):
        raise BadParam(f"{name} must be an integer", param=name, value=text)
    try:
        value = int(text) if isinstance(text, int) else int(str(text).strip(), 10)
    except ValueError:
        raise BadParam(f"{name} must be an integer", param=name, value=text) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{'-inf' if lo is None else lo}..{'inf' if hi is None else hi}"
        raise BadParam(f"{name} must be in {bounds}", param=name, value=value)
    return value


def parse_bool(text: str, name: str) -> bool:
    """``true``/``false``/``1``/``0``/``yes``/``no`` in any case (the NeuroIO client sends
    ``True``/``False``)."""
    if text.strip().lower() in ("true", "1", "yes"):
        return True
    if text.strip().lower() in ("false", "0", "no"):
        return False
    raise BadParam(f"{name} must be true or false", param=name, value=text)


def enum_value(item: str) -> str:
    """``EntryResult.NEW`` -> ``new`` (a NeuroIO enum member's name, as its client on Python 3.11
    writes it); any other text unchanged."""
    head, dot, member = item.partition(".")
    if dot and head in _ENUMS and member.isupper():
        return member.lower()
    return item


def choice(options: Iterable[str]) -> Callable[[str, str], str]:
    """A list converter that accepts only ``options`` (or their NeuroIO enum names)."""
    allowed = tuple(options)

    def convert(item: str, name: str) -> str:
        item = enum_value(item)
        if item not in allowed:
            raise BadParam(f"{name} items must be among {', '.join(allowed)}", param=name,
                           value=item)
        return item
    return convert


def int_item(item: str, name: str) -> int:
    """A list converter for non-negative ints (that fit SQLite's INTEGER)."""
    return check_int(item, name, 0, (1 << 63) - 1)


def parse_uuid(text: Any, name: str) -> str:
    """A canonical lower-case UUID string."""
    try:
        return str(uuid.UUID(str(text)))
    except (ValueError, AttributeError):
        raise BadParam(f"{name} must be a UUID", param=name, value=text) from None


def parse_pid(text: Any, name: str = "pid") -> str:
    """A pid: a UUID (what this service makes), or hex digits in dash-separated groups as in the
    reference's samples (``abcdef01-abcd-abcd01-abcdef01``), lower-cased. Such a pid names no
    person of this service, so it finds nothing, but it is not an error."""
    if isinstance(text, str):
        value = text.strip().lower()
        if _PID.fullmatch(value):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                return value
    raise BadParam(f"{name} must be a UUID (or hex digits in dash-separated groups, as "
                   "abcdef01-abcd-abcd01-abcdef01)", param=name, value=text)


def parse_time(text: str, name: str) -> datetime.datetime:
    """RFC 3339 (``Z`` or an offset; no offset means UTC) or ``YYYY-MM-DD``."""
    try:
        value = datetime.datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        raise BadParam(f"{name} must be an RFC 3339 time, e.g. 2024-05-01T12:30:00Z", param=name,
                       value=text) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def to_ms(value: datetime.datetime) -> int:
    """Unix milliseconds of an aware datetime."""
    return int(round(value.timestamp() * 1000))


def from_ms(ms: int) -> str:
    """RFC 3339 UTC text of Unix milliseconds."""
    when = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_object(body: bytes, what: str = "body") -> dict[str, Any]:
    """A JSON object body."""
    try:
        value = safejson.loads(body or b"{}")
    except safejson.JsonRefused as exc:
        raise BadParam(f"the {what} is not valid JSON: {exc}", param=what, value=None) from None
    if not isinstance(value, dict):
        raise BadParam(f"the {what} must be a JSON object", param=what, value=type(value).__name__)
    return value
