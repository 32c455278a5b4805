"""Typed meta columns of the in-memory index and their vectorized filter masks.

Rows are append-only (an update appends a new row and tombstones the old one; compaction rebuilds
with :meth:`take`), which keeps every structure here simple: a column only ever grows at the end.

- ``int``: an int64 array and a presence mask.
- ``string``: categorical codes (int32, 0 = absent) into a vocabulary.
- ``strings`` (list of strings): per value, the sorted rows holding it (a posting list), so
  ``subset`` is an intersection of a few precomputed lists.

``mask(op, value, n)`` answers a bool array over the first ``n`` rows. A face without the field
never matches a filter on it (except ``subset`` of no values, which every face matches).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

_MIN_CAP = 1024


def _grown(arr: np.ndarray, need: int) -> np.ndarray:
    """``arr`` or a copy with room for ``need`` entries (amortized doubling)."""
    if need <= arr.shape[0]:
        return arr
    cap = max(_MIN_CAP, arr.shape[0])
    while cap < need:
        cap *= 2
    out = np.zeros((cap,) + arr.shape[1:], dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class Column:
    """Interface of a typed meta column."""

    def append(self, start: int, values: Sequence[Any]) -> None:
        """Values (None = absent) for rows ``start .. start + len(values) - 1``."""
        raise NotImplementedError

    def mask(self, op: str, value: Any, n: int) -> np.ndarray:
        raise NotImplementedError

    def take(self, keep: np.ndarray, new_of_old: np.ndarray) -> "Column":
        """The column restricted to rows ``keep`` (sorted), renumbered by ``new_of_old``."""
        raise NotImplementedError

    def nbytes(self) -> int:
        raise NotImplementedError


class IntColumn(Column):
    def __init__(self) -> None:
        self.values = np.zeros(0, np.int64)
        self.present = np.zeros(0, bool)

    def append(self, start: int, values: Sequence[Any]) -> None:
        end = start + len(values)
        self.values = _grown(self.values, end)
        self.present = _grown(self.present, end)
        pres = np.fromiter((v is not None for v in values), bool, len(values))
        self.values[start:end] = np.fromiter((0 if v is None else v for v in values), np.int64, len(values))
        self.present[start:end] = pres

    def mask(self, op: str, value: Any, n: int) -> np.ndarray:
        vals = self.values[:n]
        if op == "lte":
            m = vals <= int(value)
        elif op == "gte":
            m = vals >= int(value)
        elif op == "oneof":
            wanted = [int(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
            m = vals == wanted[0] if len(wanted) == 1 else np.isin(vals, np.asarray(wanted, np.int64))
        else:
            raise ValueError(f"int column: no filter {op!r}")
        m &= self.present[:n]
        return m

    def take(self, keep: np.ndarray, new_of_old: np.ndarray) -> "IntColumn":
        out = IntColumn()
        out.values = self.values[keep]
        out.present = self.present[keep]
        return out

    def nbytes(self) -> int:
        return self.values.nbytes + self.present.nbytes


class StringColumn(Column):
    def __init__(self) -> None:
        self.codes = np.zeros(0, np.int32)
        self.words: list[str | None] = [None]  # code 0: absent
        self.code_of: dict[str, int] = {}

    def _code(self, value: str | None) -> int:
        if value is None:
            return 0
        code = self.code_of.get(value)
        if code is None:
            code = self.code_of[value] = len(self.words)
            self.words.append(value)
        return code

    def append(self, start: int, values: Sequence[Any]) -> None:
        end = start + len(values)
        self.codes = _grown(self.codes, end)
        self.codes[start:end] = np.fromiter((self._code(v) for v in values), np.int32, len(values))

    def mask(self, op: str, value: Any, n: int) -> np.ndarray:
        codes = self.codes[:n]
        if op == "oneof":
            wanted = value if isinstance(value, (tuple, list)) else (value,)
            hits = [self.code_of[w] for w in wanted if w in self.code_of]
            if not hits:
                return np.zeros(n, bool)
            if len(hits) == 1:
                return codes == hits[0]
        elif op in ("lte", "gte"):
            cmp = (lambda w: w <= value) if op == "lte" else (lambda w: w >= value)
            hits = [c for c, w in enumerate(self.words) if w is not None and cmp(w)]
        else:
            raise ValueError(f"string column: no filter {op!r}")
        lut = np.zeros(len(self.words), bool)
        lut[hits] = True
        return lut[codes]

    def take(self, keep: np.ndarray, new_of_old: np.ndarray) -> "StringColumn":
        out = StringColumn()
        out.codes = self.codes[keep]
        out.words = list(self.words)
        out.code_of = dict(self.code_of)
        return out

    def nbytes(self) -> int:
        return self.codes.nbytes


class _Postings:
    """A growable sorted array of row numbers."""

    __slots__ = ("rows", "size")

    def __init__(self, rows: np.ndarray | None = None) -> None:
        self.rows = rows if rows is not None else np.zeros(4, np.int64)
        self.size = 0 if rows is None else rows.shape[0]

    def extend(self, rows: np.ndarray) -> None:
        end = self.size + rows.shape[0]
        if end > self.rows.shape[0]:
            cap = max(4, self.rows.shape[0])
            while cap < end:
                cap *= 2
            grown = np.zeros(cap, np.int64)
            grown[: self.size] = self.rows[: self.size]
            self.rows = grown
        self.rows[self.size:end] = rows
        self.size = end

    def upto(self, n: int) -> np.ndarray:
        rows = self.rows[: self.size]
        return rows[: int(np.searchsorted(rows, n))]


class StringsColumn(Column):
    def __init__(self) -> None:
        self.postings: dict[str, _Postings] = {}

    def append(self, start: int, values: Sequence[Any]) -> None:
        by_value: dict[str, list[int]] = {}
        for i, v in enumerate(values):
            if v:
                for word in set(v):
                    by_value.setdefault(word, []).append(start + i)
        for word, rows in by_value.items():
            post = self.postings.get(word)
            if post is None:
                post = self.postings[word] = _Postings()
            post.extend(np.asarray(rows, np.int64))

    def mask(self, op: str, value: Any, n: int) -> np.ndarray:
        if op != "subset":
            raise ValueError(f"strings column: no filter {op!r}")
        wanted = set(value if isinstance(value, (tuple, list)) else (value,))
        if not wanted:
            return np.ones(n, bool)
        lists = []
        for word in wanted:
            post = self.postings.get(word)
            if post is None:
                return np.zeros(n, bool)
            lists.append(post.upto(n))
        lists.sort(key=len)
        rows = lists[0]
        for other in lists[1:]:
            if rows.size == 0:
                break
            member = np.zeros(n, bool)
            member[other] = True
            rows = rows[member[rows]]
        m = np.zeros(n, bool)
        m[rows] = True
        return m

    def take(self, keep: np.ndarray, new_of_old: np.ndarray) -> "StringsColumn":
        out = StringsColumn()
        for word, post in self.postings.items():
            rows = new_of_old[post.rows[: post.size]]
            rows = rows[rows >= 0]
            if rows.size:
                out.postings[word] = _Postings(rows.copy())
        return out

    def nbytes(self) -> int:
        return sum(p.rows.nbytes for p in self.postings.values())


def make_column(kind: str) -> Column:
    """The column for a schema type."""
    if kind == "int":
        return IntColumn()
    if kind == "string":
        return StringColumn()
    if kind == "strings":
        return StringsColumn()
    raise ValueError(f"unknown meta type {kind!r}")
