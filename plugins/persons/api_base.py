"""The base of the persons API handlers: JSON answers, one error path, input helpers.

Every error is JSON ``{"code", "reason", "param", "value"}``: :class:`~.errors.ApiError` with its
status; an sfapi outage 503; Tornado's own errors (bad multipart, 405) 4xx; anything unexpected
500 with a logged traceback (a bug: bad input is always a 400 naming the parameter).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable


from facestack.core.errors import WireError
from facestack.core.tornado_json import JsonHandler
from facestack.vision.engines.images import sniff_format
from sfapi.client import SFApiError

from .errors import ApiError, BadParam, Unavailable
from .entries import Shape, reshape
from .params import Query, check_int, json_object, parse_pid

if TYPE_CHECKING:
    from . import PersonsPlugin

__all__ = ["ApiHandler"]

log = logging.getLogger(__name__)


class ApiHandler(JsonHandler):
    """Base of every persons handler (``initialize`` gets the plugin)."""

    def initialize(self, plugin: PersonsPlugin, shape: Shape = "rich", prefix: str = "") -> None:
        self.plugin = plugin
        #: ``reference`` under ``api_prefix`` (NeuroIO shapes), ``rich`` under ``rich_api_prefix``
        self.shape: Shape = shape
        self.prefix = prefix or plugin.config.rich_api_prefix

    def entry(self, wire: dict[str, Any]) -> dict[str, Any]:
        """An entry's wire form for this route's shape."""
        return reshape(wire, self.prefix, self.shape)

    # --- answers -----------------------------------------------------------------------------

    def send(self, body: Any, status: int = 200) -> None:
        """Answer JSON."""
        self.send_json(status, body)

    def no_content(self) -> None:
        """Answer 204."""
        self.set_status(204)
        self.finish()

    def as_wire_error(self, exc: BaseException | None) -> WireError | None:
        if isinstance(exc, SFApiError):
            return Unavailable(f"sfapi is unavailable: {exc}")
        return super().as_wire_error(exc)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, (ApiError, SFApiError)):
            log.info("persons API %s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    # --- input -------------------------------------------------------------------------------

    def query(self, known: Iterable[str]) -> Query:
        """The query arguments, refusing unknown names."""
        return Query(self.request.query_arguments, known)

    def page(self, q: Query) -> tuple[int, int]:
        """``limit`` and ``offset`` of a query."""
        cfg = self.plugin.config
        limit = q.int("limit", cfg.default_limit, lo=1, hi=cfg.max_limit)
        offset = q.int("offset", 0, lo=0, hi=(1 << 63) - 1)  # SQLite's INTEGER
        assert limit is not None and offset is not None
        return limit, offset

    def body_json(self) -> dict[str, Any]:
        """The JSON object body."""
        ctype = self.request.headers.get("Content-Type", "application/json")
        if self.request.body and not ctype.startswith("application/json"):
            raise BadParam("the body must be JSON (Content-Type: application/json)",
                           param="Content-Type", value=ctype)
        return json_object(self.request.body)

    def form(self, known: Iterable[str]) -> tuple[dict[str, bytes], dict[str, str]]:
        """A multipart upload: its files and its text fields (a part given twice is an error)."""
        ctype = self.request.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise BadParam("the body must be multipart/form-data", param="Content-Type",
                           value=ctype)
        allowed = set(known)
        files: dict[str, bytes] = {}
        fields: dict[str, str] = {}
        names = set(self.request.files) | set(self.request.body_arguments)
        for name in names:
            if name not in allowed:
                raise BadParam(f"unknown part {name!r}; known: {', '.join(sorted(allowed))}",
                               param=name, value=None)
            parts = [f.body for f in self.request.files.get(name, ())] + \
                list(self.request.body_arguments.get(name, ()))
            if len(parts) != 1:
                raise BadParam(f"part {name!r} is given {len(parts)} times", param=name,
                               value=len(parts))
            if name in self.request.files:
                files[name] = parts[0]
            else:
                try:
                    fields[name] = parts[0].decode("utf-8")
                except UnicodeDecodeError:
                    raise BadParam(f"part {name!r} is not UTF-8", param=name, value=None) from None
        return files, fields

    def image(self, files: dict[str, bytes], fields: dict[str, str], name: str = "image") -> bytes:
        """The uploaded image part (a file or a field), checked for size and type."""
        data = files.get(name)
        if data is None and name in fields:
            data = fields[name].encode("latin-1", "replace")
        if not data:
            raise BadParam(f"part {name!r} (the photo) is missing or empty", param=name,
                           value=None)
        if len(data) > self.plugin.config.max_upload_bytes:
            raise BadParam(f"{name} is larger than {self.plugin.config.max_upload_bytes} bytes",
                           param=name, value=len(data))
        if sniff_format(data) not in ("jpeg", "png", "webp"):
            raise BadParam(f"{name} is not a JPEG, PNG or WEBP image", param=name,
                           value=data[:8])
        return data

    def photo_and_source(self, extra: Iterable[str] = ()) -> tuple[bytes, Any, dict[str, str]]:
        """The multipart upload of a person's photo: parts ``image`` and ``source`` (name or id),
        plus the optional text parts ``extra``; returns the image, the source and every text part."""
        files, fields = self.form(("image", "source", *extra))
        image = self.image(files, fields)
        if "source" not in fields:
            raise BadParam("part 'source' (a source name or id) is missing", param="source",
                           value=None)
        return image, self.plugin.sources.resolve(fields["source"]), fields

    @staticmethod
    def pid_arg(text: str) -> str:
        """A pid from the path."""
        return parse_pid(text, "pid")

    @staticmethod
    def id_arg(text: str, name: str = "id") -> int:
        """A positive 63-bit id from the path."""
        return check_int(text, name, 0, (1 << 63) - 1)
