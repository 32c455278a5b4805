"""Parsing of query-string parameters into typed values with BAD_PARAM errors that name them."""
from __future__ import annotations

from typing import Mapping

from sfapi.errors import BadParam

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


def known_only(query: Mapping[str, str], allowed: set[str]) -> None:
    for key in query:
        if key not in allowed:
            raise BadParam(key, query[key], f"unknown query parameter {key!r}")
