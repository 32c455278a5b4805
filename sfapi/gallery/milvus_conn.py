"""The Milvus connection of the gallery backend: one pymilvus client, blocking calls with a
timeout, every pymilvus / gRPC error turned into :class:`~sfapi.errors.StorageError` (or a
:class:`MissingCollection` the store turns into GALLERY_NOT_FOUND), and the collection layouts.

Nothing here runs on the event loop: the store calls these methods from its executor.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

from sfapi.errors import StorageError
from sfapi.gallery.milvus_expr import FEATURES, PK, PK_LEN, PRESENT, VECTOR, meta_fields
from sfapi.gallery.types import Schema
from facestack.core.errors import FacestackError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Milvus limits the typed meta columns are declared with (bytes of UTF-8 for VARCHAR)
MAX_VARCHAR = 65535
MAX_ARRAY = 4096
#: codes of "collection not found" and "collection not loaded" (Milvus servers from 2.3, milvus-lite)
_COLLECTION_NOT_FOUND = 100
_COLLECTION_NOT_LOADED = 101
_CATALOG_DIM = 2


class MissingCollection(FacestackError):
    """A face collection is gone (its gallery was dropped, maybe by another sfapi instance)."""


class NotLoaded(StorageError):
    """A collection is not loaded for reads (a restarted server still loading it, an operator
    released it): the store loads it and tries once more."""


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:  # the optional dependency is not installed
        raise StorageError("gallery backend 'milvus' needs pymilvus: pip install 'facestack[milvus]'") from exc
    return pymilvus


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "code", None)
    text = str(getattr(exc, "message", "") or exc).lower()
    return code == _COLLECTION_NOT_FOUND or ("collection" in text and ("not exist" in text or "not found" in text))


class MilvusConn:
    """A pymilvus ``MilvusClient`` whose calls raise sfapi errors.

    ``uri``: ``http(s)://host:port`` of a Milvus server / proxy, or a ``*.db`` path (milvus-lite, in
    this process). ``timeout_s`` bounds every call. ``consistency``: the level of every read
    (query, get, search) that does not name its own: ``Strong`` sees every write acknowledged
    before it, by any client; ``Session`` those of this process; ``Bounded`` / ``Eventually`` may
    lag. On a server a Strong read waits for the next time tick (``proxy.timeTickInterval``,
    200 ms by default); the others answer at once.
    """

    _READS = frozenset({"query", "get", "search"})

    def __init__(self, uri: str, *, token: str = "", db_name: str = "", timeout_s: float = 10.0,
                 consistency: str = "Strong") -> None:
        self.uri = uri
        self.token = token
        self.db_name = db_name
        self.timeout_s = timeout_s
        self.consistency = consistency
        self._client: Any = None

    @property
    def is_lite(self) -> bool:
        """A local ``*.db`` path: milvus-lite in this process (pymilvus' own rule)."""
        return "://" not in self.uri and self.uri.endswith(".db")

    def connect(self) -> None:
        """Connect (start milvus-lite for a ``.db`` path). Blocking."""
        pm = _pymilvus()
        if self.is_lite:  # milvus-lite: the path's directory must exist
            Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout_s}
        if self.token:
            kwargs["token"] = self.token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        try:
            self._client = pm.MilvusClient(**kwargs)
        except Exception as exc:  # pymilvus raises MilvusException, gRPC and OS errors here
            raise StorageError(f"cannot connect to Milvus at {self.uri}: {_reason(exc)}") from exc

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing a dead connection must not fail a shutdown
                log.warning("closing the Milvus connection to %s failed: %s", self.uri, _reason(exc))

    def call(self, op: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(*args, **kwargs)`` with the timeout; errors become sfapi errors.
        ``op`` names the operation in the error reason."""
        if self._client is None:
            raise StorageError("the Milvus gallery store is not open")
        fn: Callable[..., Any] = getattr(self._client, method)
        kwargs.setdefault("timeout", self.timeout_s)
        if method in self._READS:
            kwargs.setdefault("consistency_level", self.consistency)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _is_pymilvus_error(exc):
                raise
            if _is_missing(exc):
                raise MissingCollection(str(args[0]) if args else "") from exc
            if getattr(exc, "code", None) == _COLLECTION_NOT_LOADED:
                raise NotLoaded(f"Milvus {op} failed at {self.uri}: {_reason(exc)}") from exc
            raise StorageError(f"Milvus {op} failed at {self.uri}: {_reason(exc)}") from exc

    # -- collection layouts ----------------------------------------------------------------------
    def create_faces_collection(self, name: str, schema: Schema, dim: int, index_type: str,
                                index_params: dict[str, Any], consistency: str) -> None:
        """The collection of one gallery (sfapi.gallery.milvus_expr.LAYOUT): pk (hex id), facen (IP
        metric), one field per meta key, the presence list and the features JSON. No field is
        nullable: Milvus servers before 2.5 have no nullable fields."""
        pm = _pymilvus()
        dt = pm.DataType
        fields = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        fields.add_field(PK, dt.VARCHAR, max_length=PK_LEN, is_primary=True)
        fields.add_field(VECTOR, dt.FLOAT_VECTOR, dim=dim)
        for key, field in meta_fields(schema).items():
            kind = schema[key]
            if kind == "int":
                fields.add_field(field, dt.INT64)
            elif kind == "string":
                fields.add_field(field, dt.VARCHAR, max_length=MAX_VARCHAR)
            else:
                fields.add_field(field, dt.ARRAY, element_type=dt.VARCHAR, max_capacity=MAX_ARRAY,
                                 max_length=MAX_VARCHAR)
        if schema:
            fields.add_field(PRESENT, dt.ARRAY, element_type=dt.INT64, max_capacity=len(schema))
        fields.add_field(FEATURES, dt.VARCHAR, max_length=MAX_VARCHAR)
        index = pm.MilvusClient.prepare_index_params()
        index.add_index(VECTOR, index_type=index_type, metric_type="IP", params=dict(index_params))
        self._create(name, fields, index, consistency)

    def _create(self, name: str, fields: Any, index: Any, consistency: str) -> None:
        """Create, index and load a collection. The index is registered without waiting for it to
        be built (pymilvus would poll every 0.5 s; a new collection is empty), then loaded."""
        self.call("create collection", "create_collection", name, schema=fields, consistency_level=consistency)
        self.call("create index", "create_index", name, index, sync=False)
        self.call("load collection", "load_collection", name)

    def create_catalog(self, name: str, consistency: str) -> None:
        """The catalog collection: one row per gallery (name -> JSON of schema, collection, model,
        dimension). Milvus collections need a vector field: a constant 2-d one."""
        pm = _pymilvus()
        dt = pm.DataType
        fields = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        fields.add_field("name", dt.VARCHAR, max_length=64, is_primary=True)
        fields.add_field("info", dt.VARCHAR, max_length=MAX_VARCHAR)
        fields.add_field("v", dt.FLOAT_VECTOR, dim=_CATALOG_DIM)
        index = pm.MilvusClient.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self._create(name, fields, index, consistency)

    @staticmethod
    def catalog_row(name: str, info_json: str) -> dict[str, Any]:
        return {"name": name, "info": info_json, "v": [0.0] * _CATALOG_DIM}


def _is_pymilvus_error(exc: Exception) -> bool:
    """Errors raised by pymilvus or the gRPC / network layer below it."""
    module = type(exc).__module__ or ""
    return (module.startswith(("pymilvus", "grpc", "milvus_lite"))
            or isinstance(exc, (ConnectionError, TimeoutError, OSError)))


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    code = getattr(exc, "code", None)
    if callable(code):  # a gRPC error: its status name and details, not its multi-line repr
        try:
            code, message = code().name, exc.details()  # type: ignore[attr-defined]
        except Exception:  # not a call (grpc.RpcError without status): the text below
            code = None
    text = " ".join(str(message if message else exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{text} (code {code})" if code not in (None, 0) else text
