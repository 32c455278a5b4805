"""YAML config files parsed into typed pydantic models with errors that point at the file line.

Shared by the three services: ``load_config(path, Model)`` returns a validated model or raises
:class:`facestack.core.errors.ConfigError` with ``file:line key.path: message (got value)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from facestack.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records the line of every mapping key, by key path."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.lines: dict[tuple[str | int, ...], int] = {}

    def record(self, node: yaml.Node, path: tuple[str | int, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value),)
                self.lines[sub] = key.start_mark.line + 1
                self.record(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.record(item, path + (i,))


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str | int, ...], int]]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        loader.record(node, ())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping (got {type(data).__name__})")
    return data, loader.lines


def validate(model: type[M], data: dict[str, Any], source: str,
             lines: dict[tuple[str | int, ...], int] | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, lines or {})) from None


def load_config(path: str | Path | None, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Read ``path`` (or only the embedded defaults when None) into ``model``."""
    data: dict[str, Any] = {}
    lines: dict[tuple[str | int, ...], int] = {}
    source = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
        data, lines = parse_yaml(text, source)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return validate(model, data, source, lines)


def _format_errors(exc: ValidationError, source: str, lines: dict[tuple[str | int, ...], int]) -> str:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line = _nearest_line(loc, lines)
        where = f"{source}:{line}" if line else source
        key = ".".join(str(p) for p in loc) or "<top>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        got = err.get("input")
        if err["type"] == "missing":
            shown = ""
        elif _is_secret(loc):
            shown = " (got a value that is not shown: it may be a secret)"
        else:
            shown = f" (got {got!r})"
        if len(shown) > 120:
            shown = shown[:117] + "...)"
        out.append(f"{where} {key}: {msg}{shown}")
    return "\n".join(out)


#: key names whose values are never echoed in config errors (any key path containing one)
_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential", "api_key", "apikey")


def _is_secret(loc: tuple[Any, ...]) -> bool:
    """Whether an error at ``loc`` may be about a secret (a token, a password ...)."""
    return any(isinstance(p, str) and any(w in p.lower() for w in _SECRET_WORDS) for p in loc)


def _nearest_line(loc: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for n in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:n]))
        if line:
            return line
    return None
