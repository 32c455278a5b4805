"""The gallery backend interface. The embedded store and Milvus implement it; one contract test
suite (tests/sfapi/gallery/contract.py) holds every backend to the same behaviour.

Errors are the sfapi error types: GalleryNotFound, Conflict (gallery or face id taken), NotFound
(face), BadParam (meta key outside the schema or of the wrong type: param ``meta.<key>``; a facen
of another model: param ``facen``), StorageError (the store is unavailable).
"""
from __future__ import annotations

import abc

from sfapi.gallery.types import FaceRecord, GalleryInfo, MetaValue, Query, Schema, SearchResult


class GalleryBackend(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect / load everything; called once before use."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release; every acknowledged write is durable before this returns."""

    @abc.abstractmethod
    async def list_galleries(self) -> list[GalleryInfo]: ...

    @abc.abstractmethod
    async def create_gallery(self, name: str, schema: Schema) -> GalleryInfo: ...

    @abc.abstractmethod
    async def drop_gallery(self, name: str) -> None: ...

    @abc.abstractmethod
    async def schema(self, gallery: str) -> Schema: ...

    @abc.abstractmethod
    async def add(self, gallery: str, record: FaceRecord) -> FaceRecord:
        """Store ``record``; durable when this returns."""

    @abc.abstractmethod
    async def get(self, gallery: str, face_id: int) -> FaceRecord: ...

    @abc.abstractmethod
    async def update_meta(self, gallery: str, face_id: int, meta: dict[str, MetaValue | None]) -> FaceRecord:
        """Set the given keys; a None value leaves that key as it is."""

    @abc.abstractmethod
    async def delete(self, gallery: str, face_id: int) -> None: ...

    @abc.abstractmethod
    async def search(self, gallery: str, query: Query) -> SearchResult: ...
