"""The in-memory search index of one gallery.

A contiguous float32 matrix (rows x dim) with amortized growth, the face ids as a uint64 array, an
alive mask, typed meta columns (sfapi.gallery.columns) and, per row, the JSON text of the face's
meta and features. Rows are append-only: an update appends the new version and tombstones the old
one; when tombstones pass a quarter of the rows the index is compacted into fresh arrays.

Concurrency: one writer thread mutates (the store's commit thread, after a commit), any number of
searches read. Both take ``lock`` briefly; a search holds it only to build its filter mask and
capture a :class:`Snapshot` (views of the first ``n`` rows, which are never written again: appends
go past ``n``, growth and compaction allocate new arrays), then scans without it.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sfapi.gallery.columns import Column, _grown, make_column
from sfapi.gallery.types import IdFilter, MetaFilter, Schema

_COMPACT_MIN = 4096


@dataclass(frozen=True)
class Snapshot:
    """What a search reads, consistent as of one instant."""

    vecs: np.ndarray  # (n, dim) float32, or (0, 0) for an empty gallery
    ids: np.ndarray  # (n,) uint64
    docs: list[str]  # JSON text [meta, features] per row (read only below n)
    mask: np.ndarray | None  # (n,) bool: alive and matching every filter; None = every row
    max_norm: float = 1.0  # no row of vecs is longer (bounds the rounding of a float32 product)

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])


def doc_text(meta_json: str, features_json: str) -> str:
    """The per-row JSON text kept in memory for building records."""
    return f"[{meta_json},{features_json}]"


def parse_doc(doc: str) -> tuple[dict[str, Any], dict[str, Any]]:
    meta, features = json.loads(doc)
    return meta, features


class GalleryIndex:
    """Vectors, ids and typed meta of one gallery, searchable with vectorized filters."""

    def __init__(self, schema: Schema, dim: int | None = None) -> None:
        self.schema = dict(schema)
        self.dim = dim
        self.lock = threading.Lock()
        self._vecs = np.zeros((0, dim or 0), np.float32)
        self._ids = np.zeros(0, np.uint64)
        self._alive = np.zeros(0, bool)
        self._docs: list[str] = []
        self._row_of: dict[int, int] = {}
        self._columns: dict[str, Column] = {k: make_column(t) for k, t in self.schema.items()}
        self._n = 0
        self._max_norm = 0.0

    # -- reads -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._row_of

    def get(self, face_id: int) -> tuple[np.ndarray, str] | None:
        """A copy of the face's vector and its doc text, or None."""
        with self.lock:
            row = self._row_of.get(face_id)
            if row is None:
                return None
            return self._vecs[row].copy(), self._docs[row]

    def snapshot(self, ids: Sequence[IdFilter] = (), meta: Sequence[MetaFilter] = ()) -> Snapshot:
        """Capture the rows and the mask of rows alive and matching every filter."""
        return self.snapshots([(ids, meta)])[0]

    def snapshots(self, filters: Sequence[tuple[Sequence[IdFilter], Sequence[MetaFilter]]]) -> list[Snapshot]:
        """One snapshot per (id filters, meta filters), all of the same instant (same rows)."""
        with self.lock:
            n = self._n
            vecs = self._vecs[:n] if self.dim else np.zeros((0, 0), np.float32)
            alive = self._alive[:n] if len(self._row_of) != n else None
            out = []
            for ids, meta in filters:
                mask = None if alive is None else alive.copy()
                for idf in ids:
                    mask = _and(mask, self._id_mask(idf, n))
                for mf in meta:
                    mask = _and(mask, self._columns[mf.field].mask(mf.op, mf.value, n))
                out.append(Snapshot(vecs=vecs, ids=self._ids[:n], docs=self._docs, mask=mask,
                                    max_norm=max(self._max_norm, 1.0)))
            return out

    def _id_mask(self, flt: IdFilter, n: int) -> np.ndarray:
        ids = self._ids[:n]
        if flt.op == "lte":
            return ids <= np.uint64(flt.value)
        if flt.op == "gte":
            return ids >= np.uint64(flt.value)
        wanted = flt.value if isinstance(flt.value, (tuple, list)) else (flt.value,)
        m = np.zeros(n, bool)
        rows = [r for r in (self._row_of.get(int(v)) for v in wanted) if r is not None and r < n]
        m[rows] = True
        return m

    def nbytes(self) -> int:
        """Bytes held by the arrays (capacity included), not counting the per-row Python objects."""
        return (self._vecs.nbytes + self._ids.nbytes + self._alive.nbytes
                + sum(c.nbytes() for c in self._columns.values()))

    # -- writes (the commit thread only) ---------------------------------------------------------
    def append(self, ids: Sequence[int], vecs: np.ndarray, metas: Sequence[dict[str, Any]],
               docs: Sequence[str]) -> None:
        """Add faces (ids not in the index; the caller checked). ``vecs`` is (k, dim) float32."""
        k = len(ids)
        if k == 0:
            return
        vecs = np.asarray(vecs, np.float32).reshape(k, -1)
        with self.lock:
            if self.dim is None:
                self.dim = int(vecs.shape[1])
                self._vecs = np.zeros((0, self.dim), np.float32)
            start, end = self._n, self._n + k
            self._vecs = _grown(self._vecs, end)
            self._ids = _grown(self._ids, end)
            self._alive = _grown(self._alive, end)
            self._vecs[start:end] = vecs
            self._max_norm = max(self._max_norm, float(np.sqrt(np.max(np.einsum("ij,ij->i", vecs, vecs)))))
            self._ids[start:end] = np.asarray(ids, np.uint64)
            self._alive[start:end] = True
            for key, col in self._columns.items():
                col.append(start, [m.get(key) for m in metas])
            self._docs.extend(docs)
            for i, face_id in enumerate(ids):
                self._row_of[int(face_id)] = start + i
            self._n = end

    def remove(self, face_id: int) -> bool:
        """Tombstone a face; False when it is not here."""
        with self.lock:
            row = self._row_of.pop(face_id, None)
            if row is None:
                return False
            self._alive[row] = False
        self._maybe_compact()
        return True

    def replace(self, face_id: int, meta: dict[str, Any], doc: str) -> None:
        """New meta for a face: the current row is tombstoned and a new version appended."""
        with self.lock:
            row = self._row_of.get(face_id)
            vec = None if row is None else self._vecs[row].copy()
        if vec is None:
            return
        self.remove(face_id)
        self.append([face_id], vec[None, :], [meta], [doc])

    def _maybe_compact(self) -> None:
        dead = self._n - len(self._row_of)
        if dead < max(_COMPACT_MIN, self._n // 4):
            return
        self.compact()

    def compact(self) -> None:
        """Drop tombstoned rows. Builds new arrays (searches in flight keep the old ones)."""
        n = self._n
        keep = np.flatnonzero(self._alive[:n])
        new_of_old = np.full(n, -1, np.int64)
        new_of_old[keep] = np.arange(keep.size)
        vecs = self._vecs[keep] if self.dim else self._vecs
        ids = self._ids[keep]
        alive = np.ones(keep.size, bool)
        columns = {k: c.take(keep, new_of_old) for k, c in self._columns.items()}
        docs = [self._docs[i] for i in keep.tolist()]
        row_of = dict(zip(ids.tolist(), range(keep.size)))
        with self.lock:
            self._vecs, self._ids, self._alive = vecs, ids, alive
            self._columns, self._docs, self._row_of = columns, docs, row_of
            self._n = int(keep.size)


def _and(mask: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    if mask is None:
        return other
    mask &= other
    return mask
