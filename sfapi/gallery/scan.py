"""The search kernel over an index snapshot: filtered exact scoring, top-k and keyset paging.

A search is split into parts (row blocks, or blocks of the selected rows when a filter selects few
of them: those are gathered and scored without touching the rest of the matrix). Every part yields
a small superset of its own first ``k`` rows in the page order; merging the parts and ordering that
union exactly gives the page. Parts run in parallel threads when the store is sharded (BLAS and
most numpy loops release the GIL).

Batches (:func:`run_many`): look-alike queries of one snapshot instant share their products (one
``(k, d) @ (d, rows)`` per row block instead of ``k`` passes over the matrix); each applies its own
mask, threshold, cursor and top-k to its row of scores.

Exact results whatever the batch: BLAS sums a dot product in an order that depends on the kernel
(sgemv for one query, sgemm for several), so the same row can score a few ulps apart. Those scores
(within :func:`cos_error` of the exact cosine) only pick candidates; every decision they could flip
(the threshold, the cursor) is taken on :func:`exact_cos` for the rows near the boundary, top-k
supersets are widened by the error bound, and the page is ordered on :func:`exact_cos`.

Orders: ``id`` / ``-id``, and ``-confidence`` = (confidence desc, id asc), where confidence is
``similarity(cos)`` (facestack.vision.engines.similarity), a non-decreasing function of the cosine. A
confidence superset is therefore a cosine bound, widened by ``_MARGIN`` on the confidence scale so
that float32 rounding of the confidence can never leave out a tie.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from facestack.vision.engines.similarity import cosine_threshold, similarity
from sfapi.gallery.index import Snapshot
from sfapi.gallery.types import Cursor, Sort

#: confidence slack for cosine bounds (float32 rounding of the confidence is ~1e-7)
_MARGIN = 1e-5
#: score only the selected rows when a filter selects at most this fraction of the gallery
GATHER_FRACTION = 0.3
#: rows gathered per chunk (the chunk stays in cache between the copy and the product)
_GATHER_CHUNK = 2048
#: rows gathered per chunk for a batch of queries: one sgemm per 16 MiB of rows. Many small
#: multi-threaded sgemm calls measured 3-8x slower than a few large ones on a busy 2-core machine
#: (each call waits for every BLAS thread); one query's sgemv per 2048 rows runs single-threaded.
_BATCH_GATHER_CHUNK = 32768
#: a part smaller than this is not split further across shards
MIN_PART_ROWS = 32768
#: float32 scores held at once by a batched product (queries x rows): 16 MiB
_SCORE_ELEMENTS = 4 * 1024 * 1024
#: split contiguous full scans across shards too. Off: OpenBLAS already runs one large sgemv on
#: every core, and splitting it measured slower (bench/search.py, 2 cores, 1M rows: 20 -> 26 ms).
#: Gathered scans (numpy take + small products, single-threaded) are split; on 2 cores that gained
#: nothing measurable (memory-bound), on more cores it may.
SPLIT_FULL_SCAN = False

Part = tuple[int, int, "np.ndarray | None"]
MapFn = Callable[[Callable[[Part], Any], Sequence[Part]], Iterable[Any]]


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
    return run_many([snap], [plan], shards, map_fn)[0]


def run_many(snaps: Sequence[Snapshot], plans: Sequence[Plan], shards: int,
             map_fn: MapFn | None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Several queries over snapshots of one instant (same rows, own masks) with shared products.

    Look-alike queries that scan the whole matrix share one product per row block; those whose
    filters select few rows share one gather of the union of their rows. Every query then applies
    its own mask, threshold, cursor and top-k. Results equal those of running each query alone.
    """
    out: list[tuple[np.ndarray, np.ndarray | None] | None] = [None] * len(plans)
    full: list[int] = []
    gathered: list[int] = []
    for i, (snap, plan) in enumerate(zip(snaps, plans)):
        if snap.n == 0 or (plan.vec is not None and snap.vecs.shape[1] != plan.vec.shape[0]):
            out[i] = _EMPTY
            continue
        selected = snap.n if snap.mask is None else int(np.count_nonzero(snap.mask))
        if selected == 0:
            out[i] = _EMPTY
        elif plan.vec is None:
            out[i] = _run_listing(snap, plan, shards, map_fn)
        elif snap.mask is None or selected > GATHER_FRACTION * snap.n:
            full.append(i)
        else:
            gathered.append(i)
    if len(gathered) > 1:
        union = np.logical_or.reduce([snaps[i].mask for i in gathered])
        rows = np.flatnonzero(union)
        if rows.size > GATHER_FRACTION * union.shape[0]:
            full += gathered
            gathered = []
    elif gathered:
        rows = np.flatnonzero(snaps[gathered[0]].mask)
    for group, group_rows in ((full, None), (gathered, rows if gathered else None)):
        if group:
            found = _scan_group(snaps[group[0]], [snaps[i].mask for i in group], [plans[i] for i in group],
                                group_rows, shards, map_fn)
            for i, results in zip(group, found):
                out[i] = _merge(snaps[i], plans[i], results)
    return [r if r is not None else _EMPTY for r in out]


_EMPTY: tuple[np.ndarray, None] = (np.zeros(0, np.int64), None)


def _run_listing(snap: Snapshot, plan: Plan, shards: int, map_fn: MapFn | None) -> tuple[np.ndarray, None]:
    rows = None if snap.mask is None else np.flatnonzero(snap.mask)
    parts = _split(snap.n if rows is None else rows.size, shards if rows is not None or SPLIT_FULL_SCAN else 1, rows)

    def one(part: Part) -> tuple[np.ndarray, np.ndarray | None]:
        lo, hi, prow = part
        ids = snap.ids[lo:hi] if prow is None else snap.ids[prow]
        local, _ = _select(plan, None, ids, None, 0.0, _no_exact)
        return ((local + lo) if prow is None else prow[local]).astype(np.int64, copy=False), None

    results = [one(p) for p in parts] if len(parts) == 1 or map_fn is None else list(map_fn(one, parts))
    rows_out, _ = _merge(snap, plan, results)
    return rows_out, None


def _split(total: int, shards: int, rows: np.ndarray | None) -> list[Part]:
    count = max(1, min(shards, total // MIN_PART_ROWS))
    bounds = [total * i // count for i in range(count + 1)]
    if rows is None:
        return [(bounds[i], bounds[i + 1], None) for i in range(count)]
    return [(0, 0, rows[bounds[i]:bounds[i + 1]]) for i in range(count)]


def _no_exact(pos: np.ndarray) -> np.ndarray:
    raise AssertionError("no cosines without a look-alike vector")


def _scan_group(snap: Snapshot, masks: list[np.ndarray | None], plans: list[Plan], rows: np.ndarray | None,
                shards: int, map_fn: MapFn | None) -> list[list[tuple[np.ndarray, np.ndarray | None]]]:
    """Per query of the group, the candidate (rows, cosines) of every block of the shared scan."""
    queries = np.stack([p.vec for p in plans]).astype(np.float32, copy=False)
    qnorm = np.linalg.norm(queries.astype(np.float64), axis=1)
    eps = [cos_error(snap.vecs.shape[1], float(qn), snap.max_norm) for qn in qnorm]
    subs: list[np.ndarray | None] = list(masks)
    if rows is not None:  # masks restricted to the gathered rows; None where every row matches
        subs = [None if m is None else m[rows] for m in masks]
        subs = [None if s is not None and s.all() else s for s in subs]
    total = snap.n if rows is None else rows.size
    parts = _split(total, shards if rows is not None or SPLIT_FULL_SCAN else 1, rows)
    step = max(MIN_PART_ROWS, _SCORE_ELEMENTS // len(plans))

    def scan_part(part: Part) -> list[list[tuple[np.ndarray, np.ndarray | None]]]:
        lo, hi, prow = part
        found: list[list[tuple[np.ndarray, np.ndarray | None]]] = [[] for _ in plans]
        count = hi - lo if prow is None else prow.size
        offset = 0 if prow is None else int(np.searchsorted(rows, prow[0])) if prow.size else 0
        for a in range(0, count, step):
            b = min(count, a + step)
            if prow is None:
                block_rows = None
                scores = _product(snap.vecs[lo + a:lo + b], queries)
                ids = snap.ids[lo + a:lo + b]
            else:
                block_rows = prow[a:b]
                scores = _gather_product(snap.vecs, block_rows, queries)
                ids = snap.ids[block_rows]
            for j, plan in enumerate(plans):
                sub = subs[j]
                if sub is None:
                    valid = None
                elif prow is None:
                    valid = sub[lo + a:lo + b].copy()
                else:
                    valid = sub[offset + a:offset + b].copy()

                def exact(pos: np.ndarray, j: int = j) -> np.ndarray:
                    glob = (pos + lo + a) if block_rows is None else block_rows[pos]
                    return exact_cos(snap.vecs, glob, plans[j].vec)

                local, cos = _select(plan, scores[j], ids, valid, eps[j], exact)
                glob = (local + lo + a) if block_rows is None else block_rows[local]
                found[j].append((glob.astype(np.int64, copy=False), cos))
        return found

    results = [scan_part(p) for p in parts] if len(parts) == 1 or map_fn is None else list(map_fn(scan_part, parts))
    return [[r for res in results for r in res[j]] for j in range(len(plans))]


def cos_error(dim: int, qnorm: float, max_norm: float) -> float:
    """A bound on |BLAS float32 dot - exact dot| for a row of norm <= max_norm: the summation order
    of a float32 product depends on the kernel (sgemv for one query, sgemm for several), each
    rounding is at most 2**-24 relative and the sum of |a_i q_i| is at most |a| |q|; doubled."""
    return float(dim) * 2.0**-23 * qnorm * max_norm + 1e-30


def exact_cos(vecs: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The cosines the results carry: float64 per-row sums rounded to float32, the same value for a
    row whatever product scored it (one query or a batch, the full matrix or a gathered block)."""
    out = np.empty(rows.size, np.float32)
    q64 = q.astype(np.float64)
    for a in range(0, rows.size, _GATHER_CHUNK):
        block = vecs[rows[a:a + _GATHER_CHUNK]].astype(np.float64)
        block *= q64
        out[a:a + block.shape[0]] = np.add.reduce(block, axis=1)
    return out


def _product(block: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(k, rows) float32 cosines of a contiguous block; one BLAS call (sgemv for one query)."""
    if queries.shape[0] == 1:
        return (block @ queries[0])[None, :]
    return queries @ block.T


def _gather_product(vecs: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``queries @ vecs[rows].T`` gathered in chunks (for one query, cache-sized: the chunk stays in
    cache between the copy and the product)."""
    k = queries.shape[0]
    out = np.empty((k, rows.size), np.float32)
    if rows.size == 0:
        return out
    chunk = _GATHER_CHUNK if k == 1 else _BATCH_GATHER_CHUNK
    buf = np.empty((min(chunk, rows.size), vecs.shape[1]), np.float32)
    for a in range(0, rows.size, chunk):
        r = rows[a:a + chunk]
        b = buf[: r.size]
        np.take(vecs, r, axis=0, out=b, mode="clip")  # rows are in range: skip the bounds check
        if k == 1:
            np.dot(b, queries[0], out=out[0, a:a + r.size])
        else:
            out[:, a:a + r.size] = queries @ b.T
    return out


def _select(plan: Plan, cos: np.ndarray | None, ids: np.ndarray, valid: np.ndarray | None, eps: float,
            exact: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions (and cosines) of a superset of the block's first ``k`` rows in page order.

    ``cos`` (float32, owned: it is modified) holds BLAS cosines within ``eps`` of the exact ones;
    every decision that a difference of ``eps`` could flip (the threshold, the cursor) is taken on
    exact cosines of the rows near the boundary, and the top-k superset is widened by ``eps``."""
    if cos is not None and plan.cos_min is not None:
        valid = _and(valid, cos >= plan.cos_min - eps)
        band = np.flatnonzero(valid & (cos < plan.cos_min + eps))
        if band.size:
            c = exact(band)
            cos[band] = c
            valid[band] = c >= plan.cos_min
    after = plan.after
    if after is not None and plan.sort == "id":
        valid = _and(valid, ids > np.uint64(after.last_id))
    elif after is not None and plan.sort == "-id":
        valid = _and(valid, ids < np.uint64(after.last_id))
    elif after is not None and cos is not None:
        valid = _after_confidence(cos, ids, valid, after, eps, exact)
    if plan.sort == "-confidence" and cos is not None:
        if valid is not None:
            np.putmask(cos, ~valid, -np.inf)
        local = _best_cos(cos, plan.k, eps)
    else:
        pos = np.flatnonzero(valid) if valid is not None else None
        keys = ids if pos is None else ids[pos]
        local = _extreme(keys, plan.k, largest=plan.sort == "-id")
        if pos is not None:
            local = pos[local]
    return local, (None if cos is None else cos[local])


def _and(mask: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    if mask is None:
        return other
    mask &= other
    return mask


def _after_confidence(cos: np.ndarray, ids: np.ndarray, valid: np.ndarray | None, after: Cursor, eps: float,
                      exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Rows strictly after the cursor in (confidence desc, id asc) order; rows near the cursor's
    confidence are decided on exact cosines."""
    last = np.float32(after.last_confidence)
    if float(last) + _MARGIN < 1.0:
        valid = _and(valid, cos <= cosine_threshold(float(last) + _MARGIN) + eps)
    elif valid is None:
        valid = np.ones(cos.shape[0], bool)
    band_lo = cosine_threshold(float(last) - _MARGIN) - eps if float(last) - _MARGIN > 0 else -np.inf
    band = np.flatnonzero(valid & (cos >= band_lo))
    if band.size:
        c = exact(band)
        cos[band] = c
        conf = similarity(c)
        ok = (conf < last) | ((conf == last) & (ids[band] > np.uint64(after.last_id)))
        valid[band[~ok]] = False
    return valid


def _best_cos(cos: np.ndarray, k: int, eps: float) -> np.ndarray:
    """Positions of a superset of the ``k`` best finite entries by (similarity(exact cos) desc, any
    id): every entry whose exact confidence could tie with or beat the k-th best."""
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
    cand = _cos_superset(cos, kth, eps)
    if cand.size > 4 * k + 1024:  # a loose sample bound: tighten it with the exact k-th cosine
        kth = float(np.partition(cos[cand], cand.size - k)[cand.size - k])
        cand = cand[_cos_superset(cos[cand], kth, eps)]
    return cand


def _cos_superset(cos: np.ndarray, kth: float, eps: float) -> np.ndarray:
    """Positions of every finite entry whose exact confidence may reach that of cosine ``kth``
    (both known within ``eps``)."""
    conf_k = float(similarity(kth - eps))
    lo = cosine_threshold(conf_k - _MARGIN) - eps if conf_k - _MARGIN > 0 else -np.inf
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
    """The page from the blocks' candidates, ordered on exact cosines."""
    if not results:
        return _EMPTY
    rows = np.concatenate([r for r, _ in results]) if len(results) > 1 else results[0][0]
    ids = snap.ids[rows]
    if plan.vec is None:
        order = np.argsort(ids)[::-1] if plan.sort == "-id" else np.argsort(ids)
        return rows[order[: plan.k]], None
    if plan.sort == "-confidence":
        conf = similarity(exact_cos(snap.vecs, rows, plan.vec))
        order = np.lexsort((ids, -conf))[: plan.k]
        return rows[order], conf[order]
    order = (np.argsort(ids)[::-1] if plan.sort == "-id" else np.argsort(ids))[: plan.k]
    rows = rows[order]
    return rows, similarity(exact_cos(snap.vecs, rows, plan.vec))
