"""Parsing of query-string parameters and JSON bodies into typed values, with errors that name them."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from aiohttp import web

from facestack.core import safejson
from sfapi.errors import BadParam, MalformedRequest, PayloadTooLarge

_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


def flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    if name not in query:
        return default
    raw = query[name].strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadParam(name, query[name], f"{name} must be true or false")


def choice(query: Mapping[str, str], name: str, options: tuple[str, ...], default: str) -> str:
    raw = query.get(name, default) or default
    if raw not in options:
        raise BadParam(name, raw, f"{name} must be one of {', '.join(options)}")
    return raw


def known_only(query: Mapping[str, str], allowed: set[str], repeatable: Iterable[str] = ()) -> None:
    """Refuse unknown parameters and scalar parameters given more than once."""
    multi = set(repeatable)
    getall = getattr(query, "getall", None)
    for key in query:
        if key not in allowed:
            raise BadParam(key, query[key], f"unknown query parameter {key!r}")
        if getall is not None and key not in multi:
            values = getall(key)
            if len(values) > 1:
                raise BadParam(key, values[-1], f"query parameter {key!r} given {len(values)} times; give it once")


async def json_body(request: web.Request, default: Any = None) -> Any:
    """The request body parsed as strict, bounded JSON (:mod:`facestack.core.safejson`); ``default`` when empty."""
    raw = await request.read()
    if not raw:
        return default
    try:
        return safejson.loads(raw)
    except safejson.JsonRefused as exc:
        if exc.why == "too_large":
            raise PayloadTooLarge("body", len(raw), f"JSON body of {len(raw)} bytes exceeds the limit of "
                                  f"{safejson.MAX_BYTES} bytes") from None
        raise MalformedRequest(f"body is not acceptable JSON: {exc.detail}") from None
