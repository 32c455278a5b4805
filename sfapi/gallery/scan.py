"""The search kernel over an index snapshot: filtered exact scoring, top-k and keyset paging.

A search is split into parts (row blocks, or blocks of the selected rows when a filter selects few
of them: those are gathered and scored without touching the rest of the matrix). Every part yields
a small superset of its own first ``k`` rows in the page order; merging the parts and ordering that
union exactly gives the page. Parts run in parallel threads when the store is sharded (BLAS and
most numpy loops release the GIL).

Orders: ``id`` / ``-id``, and ``-confidence`` = (confidence desc, id asc), where confidence is
``similarity(cos)`` (sfapi.engines.similarity), a non-decreasing function of the cosine. A
confidence superset is therefore a cosine bound, widened by ``_MARGIN`` on the confidence scale so
that float32 rounding of the confidence can never leave out a tie.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from sfapi.engines.similarity import cosine_threshold, similarity
from sfapi.gallery.index import Snapshot
from sfapi.gallery.types import Cursor, Sort

#: confidence slack for cosine bounds (float32 rounding of the confidence is ~1e-7)
_MARGIN = 1e-5
#: score only the selected rows when a filter selects at most this fraction of the gallery
GATHER_FRACTION = 0.3
#: rows gathered per chunk (the chunk stays in cache between the copy and the product)
_GATHER_CHUNK = 2048
#: a part smaller than this is not split further across shards
MIN_PART_ROWS = 32768
#: split contiguous full scans across shards too. Off: OpenBLAS already runs one large sgemv on
#: every core, and splitting it measured slower (bench/search.py, 2 cores, 1M rows: 20 -> 26 ms).
#: Gathered scans (numpy take + small products, single-threaded) are split; on 2 cores that gained
#: nothing measurable (memory-bound), on more cores it may.
SPLIT_FULL_SCAN = False

Part = tuple[int, int, "np.ndarray | None"]
MapFn = Callable[[Callable[[Part], tuple[np.ndarray, np.ndarray | None]], Sequence[Part]],
                 Iterable[tuple[np.ndarray, np.ndarray | None]]]


@dataclass(frozen=True)
class Plan:
    """A query reduced to what the kernel needs."""

    vec: np.ndarray | None  # float32 (dim,) look-alike vector
    cos_min: float | None  # cosine at the look-alike threshold; None = no threshold
    sort: Sort
    k: int  # rows wanted (the page limit + 1, to know whether there is a next page)
    after: Cursor | None


def plan_for(vec: np.ndarray | None, threshold: float, sort: Sort, limit: int, after: Cursor | None) -> Plan:
    cos_min = cosine_threshold(threshold) if vec is not None and threshold > 0 else None
    return Plan(vec=vec, cos_min=cos_min, sort=sort, k=limit + 1, after=after)


def run(snap: Snapshot, plan: Plan, shards: int, map_fn: MapFn | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of the snapshot in page order (at most ``plan.k``) and their confidences."""
    n = snap.n
    if n == 0 or (plan.vec is not None and snap.vecs.shape[1] != plan.vec.shape[0]):
        return np.zeros(0, np.int64), None
    rows: np.ndarray | None = None
    if snap.mask is not None:
        selected = int(np.count_nonzero(snap.mask))
        if selected == 0:
            return np.zeros(0, np.int64), None
        if plan.vec is None or selected <= GATHER_FRACTION * n:
            rows = np.flatnonzero(snap.mask)
    parts = _split(n if rows is None else rows.size, shards if rows is not None or SPLIT_FULL_SCAN else 1, rows)
    if len(parts) == 1 or map_fn is None:
        results = [_scan_part(snap, plan, p) for p in parts]
    else:
        results = list(map_fn(lambda p: _scan_part(snap, plan, p), parts))
    return _merge(snap, plan, results)


def _split(total: int, shards: int, rows: np.ndarray | None) -> list[Part]:
    count = max(1, min(shards, total // MIN_PART_ROWS))
    bounds = [total * i // count for i in range(count + 1)]
    if rows is None:
        return [(bounds[i], bounds[i + 1], None) for i in range(count)]
    return [(0, 0, rows[bounds[i]:bounds[i + 1]]) for i in range(count)]


def gather_dot(vecs: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``vecs[rows] @ q`` in cache-sized chunks."""
    out = np.empty(rows.size, np.float32)
    if rows.size == 0:
        return out
    buf = np.empty((min(_GATHER_CHUNK, rows.size), vecs.shape[1]), np.float32)
    for a in range(0, rows.size, _GATHER_CHUNK):
        r = rows[a:a + _GATHER_CHUNK]
        b = buf[: r.size]
        np.take(vecs, r, axis=0, out=b)
        np.dot(b, q, out=out[a:a + r.size])
    return out


def _scan_part(snap: Snapshot, plan: Plan, part: Part) -> tuple[np.ndarray, np.ndarray | None]:
    """Global rows (and cosines) of a superset of the part's first ``k`` rows in page order."""
    lo, hi, rows = part
    if rows is None:
        valid = None if snap.mask is None else snap.mask[lo:hi].copy()
        ids = snap.ids[lo:hi]
        cos = snap.vecs[lo:hi] @ plan.vec if plan.vec is not None else None
    else:
        valid = None
        ids = snap.ids[rows]
        cos = gather_dot(snap.vecs, rows, plan.vec) if plan.vec is not None else None
    if cos is not None and plan.cos_min is not None:
        valid = _and(valid, cos >= plan.cos_min)
    after = plan.after
    if after is not None and plan.sort == "id":
        valid = _and(valid, ids > np.uint64(after.last_id))
    elif after is not None and plan.sort == "-id":
        valid = _and(valid, ids < np.uint64(after.last_id))
    elif after is not None and cos is not None:
        valid = _after_confidence(cos, ids, valid, after)
    if plan.sort == "-confidence" and cos is not None:
        if valid is not None:
            np.putmask(cos, ~valid, -np.inf)
        local = _best_cos(cos, plan.k)
    else:
        pos = np.flatnonzero(valid) if valid is not None else None
        keys = ids if pos is None else ids[pos]
        local = _extreme(keys, plan.k, largest=plan.sort == "-id")
        if pos is not None:
            local = pos[local]
    out_rows = (local + lo) if rows is None else rows[local]
    return out_rows.astype(np.int64, copy=False), (None if cos is None else cos[local])


def _and(mask: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    if mask is None:
        return other
    mask &= other
    return mask


def _after_confidence(cos: np.ndarray, ids: np.ndarray, valid: np.ndarray | None, after: Cursor) -> np.ndarray:
    """Rows strictly after the cursor in (confidence desc, id asc) order."""
    last = np.float32(after.last_confidence)
    if float(last) + _MARGIN < 1.0:
        valid = _and(valid, cos <= cosine_threshold(float(last) + _MARGIN))
    elif valid is None:
        valid = np.ones(cos.shape[0], bool)
    band_lo = cosine_threshold(float(last) - _MARGIN) if float(last) - _MARGIN > 0 else -np.inf
    band = np.flatnonzero(valid & (cos >= band_lo))
    if band.size:
        conf = similarity(cos[band])
        ok = (conf < last) | ((conf == last) & (ids[band] > np.uint64(after.last_id)))
        valid[band[~ok]] = False
    return valid


def _best_cos(cos: np.ndarray, k: int) -> np.ndarray:
    """Positions of a superset of the ``k`` best finite entries by (similarity(cos) desc, any id):
    every entry whose confidence could tie with or beat the k-th best."""
    m = cos.shape[0]
    kth: float | None = None
    if m > 8 * k + 1024:
        stride = max(1, min(256, m // (8 * k)))
        sample = cos[::stride]
        if sample.size >= k:
            kth = float(np.partition(sample, sample.size - k)[sample.size - k])
    if kth is None or kth == -np.inf:
        cand = np.flatnonzero(cos > -np.inf)
        if cand.size <= k:
            return cand
        kth = float(np.partition(cos[cand], cand.size - k)[cand.size - k])
    cand = _cos_superset(cos, kth)
    if cand.size > 4 * k + 1024:  # a loose sample bound: tighten it with the exact k-th cosine
        kth = float(np.partition(cos[cand], cand.size - k)[cand.size - k])
        cand = cand[_cos_superset(cos[cand], kth)]
    return cand


def _cos_superset(cos: np.ndarray, kth: float) -> np.ndarray:
    """Positions of every finite entry whose confidence may reach that of cosine ``kth``."""
    conf_k = float(similarity(kth))
    lo = cosine_threshold(conf_k - _MARGIN) if conf_k - _MARGIN > 0 else -np.inf
    if lo == -np.inf:
        return np.flatnonzero(cos > -np.inf)
    return np.flatnonzero(cos >= lo)


def _extreme(keys: np.ndarray, k: int, *, largest: bool) -> np.ndarray:
    """Positions of the ``k`` smallest (largest) keys; ids are unique so no ties matter."""
    m = keys.shape[0]
    if m <= k:
        return np.arange(m)
    if m > 8 * k + 1024:
        stride = max(1, min(256, m // (8 * k)))
        sample = keys[::stride]
        if sample.size >= k:
            cut = np.partition(sample, sample.size - k if largest else k - 1)[sample.size - k if largest else k - 1]
            cand = np.flatnonzero(keys >= cut if largest else keys <= cut)
            sub = keys[cand]
            if cand.size <= k:
                return cand
            part = np.argpartition(sub, cand.size - k if largest else k - 1)
            return cand[part[cand.size - k:] if largest else part[:k]]
    part = np.argpartition(keys, m - k if largest else k - 1)
    return part[m - k:] if largest else part[:k]


def _merge(snap: Snapshot, plan: Plan, results: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    rows = np.concatenate([r for r, _ in results]) if len(results) > 1 else results[0][0]
    cos: np.ndarray | None = None
    if plan.vec is not None:
        cos = np.concatenate([c for _, c in results]) if len(results) > 1 else results[0][1]
    ids = snap.ids[rows]
    conf = similarity(cos) if cos is not None else None
    if plan.sort == "-confidence" and conf is not None:
        order = np.lexsort((ids, -conf))
    elif plan.sort == "-id":
        order = np.argsort(ids)[::-1]
    else:
        order = np.argsort(ids)
    order = order[: plan.k]
    return rows[order], (None if conf is None else conf[order])
