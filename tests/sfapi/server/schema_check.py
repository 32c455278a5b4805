"""A small validator for the JSON-Schema subset our OpenAPI document uses (enough to check answers)."""
from __future__ import annotations

from typing import Any


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(spec: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$") -> None:
    schema = resolve(spec, schema)
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
    if kind is not None:
        ok = isinstance(value, types[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
        assert ok, f"{path}: expected {kind}, got {type(value).__name__} {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{path}: {value} < {schema['minimum']}"
    if "maximum" in schema:
        assert value <= schema["maximum"], f"{path}: {value} > {schema['maximum']}"
    if kind == "object":
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                check(spec, props[key], sub, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{path}: unexpected key {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                check(spec, schema["additionalProperties"], sub, f"{path}.{key}")
    if kind == "array":
        assert len(value) >= schema.get("minItems", 0), f"{path}: too few items"
        assert len(value) <= schema.get("maxItems", 10**9), f"{path}: too many items"
        if "items" in schema:
            for i, item in enumerate(value):
                check(spec, schema["items"], item, f"{path}[{i}]")


def check_response(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    op = spec["paths"][path][method.lower()]
    resp = op["responses"].get(str(status))
    assert resp is not None, f"{method} {path}: status {status} not documented"
    schema = resp["content"]["application/json"]["schema"]
    check(spec, schema, body)
