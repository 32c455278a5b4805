"""Strict, bounded JSON parsing shared by the three services' HTTP edges.

Untrusted bodies are parsed with a size limit, a nesting-depth limit and without the non-standard
constants ``NaN``/``Infinity`` (a value that strict parsers downstream would reject). Every refusal
is a :class:`JsonRefused` carrying a short machine-readable ``why`` the caller maps to its 4xx.
"""
from __future__ import annotations

import json
from typing import Any

from facestack.core.errors import FacestackError

#: Deepest nesting of arrays/objects accepted by default (the APIs need fewer than 8 levels).
MAX_DEPTH = 32
#: Largest JSON document accepted by default, in bytes.
MAX_BYTES = 1 << 20


class JsonRefused(FacestackError, ValueError):
    """A JSON document that is malformed, too large, too deep or uses non-standard constants."""

    def __init__(self, why: str, detail: str) -> None:
        super().__init__(detail)
        self.why = why  # "malformed" | "too_large" | "too_deep" | "non_standard"
        self.detail = detail


def _refuse_constant(name: str) -> Any:
    raise JsonRefused("non_standard", f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonRefused("non_standard", f"number {text[:40]} is out of range")
    return value


def depth_of(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counting no further than ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``data`` as strict JSON within the limits, or raise :class:`JsonRefused`."""
    if len(data) > max_bytes:
        raise JsonRefused("too_large", f"JSON body over {max_bytes} bytes")
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise JsonRefused("too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except JsonRefused:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonRefused("malformed", f"invalid JSON: {exc}") from None
    if depth_of(value, max_depth) > max_depth:
        raise JsonRefused("too_deep", f"JSON nested deeper than {max_depth} levels")
    return value
