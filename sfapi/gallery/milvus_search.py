"""Exact paging over Milvus: which faces make a page, in the embedded store's order.

Milvus returns at most ``window`` rows per query or search (the server's top-k / result window
limit, 16384 by default) and does not sort query results by key. The page semantics of the
embedded store (sfapi.gallery.scan) are kept exactly by:

* ``id`` / ``-id`` (with or without a look-alike filter): key-window narrowing. Ask for the keys of
  up to ``window`` matching faces inside a key window (initially everything after the cursor). If
  fewer than ``window`` come back they are all the matches: sort, done. Otherwise the ``k``-th
  smallest returned key bounds the first ``k`` matches, so the window shrinks to ``pk <= that key``
  (``>=`` for ``-id``) and the query runs again; each round keeps at least ``k`` matches and
  ``k < window``, so it converges (in one extra round when Milvus happens to answer in key order).
* ``-confidence``: a range search (``radius`` just under the threshold's cosine, ``range_filter``
  just over the cursor's) for the best ``t`` faces; the cursor's tie-break (same confidence, larger
  id) and the exact threshold are applied here on the returned scores. The page is complete when
  fewer than ``t`` faces came back, when the worst returned face is below the threshold, or when
  at least ``k`` kept faces score strictly better than the worst returned one (any face not
  returned scores no better than that); otherwise ``t`` grows.

Range search is used only where it is a true range search: a server with the FLAT (exact) index.
milvus-lite applies a range to its top 5 x limit only, and a server's range search on an
approximate index drops faces far inside the range (Milvus 2.3.5, IVF_FLAT: faces at cosine 0.9
missing at a threshold of cosine 0.3 even with every list probed; HNSW: whole answers empty now
and then), while its plain top-k search finds them. There no range is sent: the search asks for
the best ``t`` faces and the threshold and the cursor are applied here alone, so paging by
confidence reaches the best ``window`` faces.

Confidence = ``similarity(cos)`` on the float32 inner products Milvus returns (facestack.vision.engines.
similarity), compared as float32 as the embedded store does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from facestack.vision.engines.similarity import cosine_threshold, similarity
from sfapi.errors import StorageError
from sfapi.gallery.milvus_conn import MilvusConn
from sfapi.gallery.milvus_expr import NOTHING, PK, VECTOR, Expr, conjunction, pk_after, pk_upto, to_pk
from sfapi.gallery.types import Cursor, Sort

#: confidence slack of cursor bounds (as sfapi.gallery.scan._MARGIN)
_MARGIN = 1e-5
#: cosine slack of the Milvus-side threshold (the exact threshold is applied on the scores)
_COS_SLACK = 1e-5
#: narrowing rounds before giving up (each keeps >= k of < window rows: a few suffice)
_MAX_ROUNDS = 64
#: extra rows asked for beyond k in a confidence search (cursor ties are dropped here)
_SLACK_ROWS = 32
#: a confidence search of at most this many rows returns whole rows (vector, meta, features), so
#: the page needs no second read (on a server a Strong read waits for a time tick)
_ROWS_WITH_SEARCH = 1024


@dataclass(frozen=True)
class PageSpec:
    """One page request against one collection."""

    collection: str
    expr: Expr  # the id / meta filters (sfapi.gallery.milvus_expr)
    vec: np.ndarray | None  # look-alike vector
    cos_min: float | None  # the threshold's cosine; None = no threshold
    sort: Sort
    k: int  # rows wanted: the page limit + 1 (to know whether there is a next page)
    after: Cursor | None
    window: int
    index_type: str = "FLAT"
    search_params: dict[str, Any] = field(default_factory=dict)
    #: whether Milvus range search is a true range search (a server with the FLAT index; see the
    #: module docstring). Otherwise no range is sent and threshold and cursor are applied here
    exact_range: bool = True
    #: every field of a face row: a small confidence search returns the rows with the hits
    row_fields: tuple[str, ...] = ()


#: rows by face id, when the search returned them whole (else None: read them by id)
Rows = Union[dict[int, dict[str, Any]], None]


def find_page(conn: MilvusConn, spec: PageSpec) -> tuple[list[int], list[float] | None, Rows]:
    """Face ids of the page in page order (at most ``spec.k``), their confidences (None without a
    look-alike vector) and, when the search brought them, their rows. Blocking."""
    if spec.k >= spec.window:
        raise StorageError(f"a page of {spec.k - 1} faces needs a Milvus result window over {spec.k}, "
                           f"the store's is {spec.window} (gallery.milvus_window)")
    if spec.expr is NOTHING:
        return [], None, None
    if spec.vec is not None and spec.sort == "-confidence":
        return _by_confidence(conn, spec)
    ids, confs = _by_key(conn, spec)
    return ids, confs, None


# -- id / -id ---------------------------------------------------------------------------------
def _by_key(conn: MilvusConn, spec: PageSpec) -> tuple[list[int], list[float] | None]:
    descending = spec.sort == "-id"
    base = conjunction([spec.expr, pk_after(spec.after)])
    bound: Expr = None
    for _ in range(_MAX_ROUNDS):
        expr = conjunction([base, bound])
        if expr is NOTHING:
            return [], None
        pks, cos, more = _fetch_keys(conn, spec, expr)
        order = np.argsort(pks, kind="stable")
        if descending:
            order = order[::-1]
        if not more:
            order = order[: spec.k]
            return pks[order].tolist(), (None if cos is None else similarity(cos[order]).tolist())
        bound = pk_upto(to_pk(int(pks[order[spec.k - 1]])), descending=descending)
    raise StorageError(f"paging by id did not converge in {_MAX_ROUNDS} Milvus rounds")


def _fetch_keys(conn: MilvusConn, spec: PageSpec, expr: Expr) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Face ids (and cosines, with a look-alike vector) of up to ``window`` faces matching ``expr``;
    with a threshold, only those passing it exactly. Also whether more matches may exist: Milvus
    filled the window and (with a threshold) none of it fell below the threshold, else every face
    not returned scores lower still."""
    text = expr if isinstance(expr, str) else ""
    if spec.vec is None:
        rows = conn.call("query", "query", spec.collection, filter=text, output_fields=[PK], limit=spec.window)
        pks = _ids(rows)
        return pks, None, len(rows) >= spec.window
    hits = _search(conn, spec, text, spec.window, radius=_radius(spec.cos_min), range_filter=None)
    pks = _ids(hits)
    cos = np.fromiter((h["distance"] for h in hits), np.float32, len(hits))
    more = len(hits) >= spec.window
    if spec.cos_min is not None:
        keep = cos >= spec.cos_min
        more = more and bool(keep.all())
        pks, cos = pks[keep], cos[keep]
    return pks, cos, more


# -- -confidence --------------------------------------------------------------------------------
def _by_confidence(conn: MilvusConn, spec: PageSpec) -> tuple[list[int], list[float] | None, Rows]:
    after = spec.after
    upper: float | None = None
    last = None
    if after is not None:
        last = np.float32(after.last_confidence)
        if float(last) + _MARGIN < 1.0 and spec.exact_range:
            upper = cosine_threshold(float(last) + _MARGIN)
    if upper is not None and spec.cos_min is not None and upper < spec.cos_min:
        return [], [], None
    text = spec.expr if isinstance(spec.expr, str) else ""
    t = min(spec.window, spec.k + _SLACK_ROWS)
    while True:
        whole = bool(spec.row_fields) and t <= _ROWS_WITH_SEARCH
        hits = _search(conn, spec, text, t, radius=_radius(spec.cos_min, upper), range_filter=upper,
                       fields=spec.row_fields if whole else (PK,))
        pks = _ids(hits)
        cos = np.fromiter((h["distance"] for h in hits), np.float32, len(hits))
        conf = similarity(cos)
        keep = np.ones(pks.size, bool)
        if spec.cos_min is not None:
            keep &= cos >= spec.cos_min
        if after is not None:
            keep &= (conf < last) | ((conf == last) & (pks > np.uint64(after.last_id)))
        kept = np.flatnonzero(keep)
        order = kept[np.lexsort((pks[kept], -conf[kept]))]
        worst = float(conf.min()) if pks.size else 0.0
        below = spec.cos_min is not None and bool(pks.size) and float(cos.min()) < spec.cos_min
        if pks.size < t or below or int(np.count_nonzero(conf[order] > worst)) >= spec.k:
            order = order[: spec.k]
            rows = {int(pks[i]): _entity(hits[i]) for i in order} if whole else None
            return pks[order].tolist(), conf[order].tolist(), rows
        if t >= spec.window:
            if not spec.exact_range:
                raise StorageError(f"milvus-lite and approximate indexes ({spec.index_type}) page by confidence "
                                   f"only through the best {spec.window} faces")
            raise StorageError(f"more than {spec.window} faces share the confidence at this page boundary; "
                               "Milvus cannot page through them exactly")
        t = min(spec.window, t * 4)


# -- Milvus calls -------------------------------------------------------------------------------
def _ids(rows: list[dict[str, Any]]) -> np.ndarray:
    """The face ids (uint64) of query rows or search hits."""
    return np.fromiter((int(r[PK] if PK in r else r["id"], 16) for r in rows), np.uint64, len(rows))


def _radius(cos_min: float | None, upper: float | None = None) -> float | None:
    """The Milvus ``radius`` (exclusive lower bound of the inner product) for a threshold; a range
    search needs one whenever it has a ``range_filter``."""
    if cos_min is not None:
        return cos_min - _COS_SLACK
    return -2.0 if upper is not None else None


def _entity(hit: Any) -> dict[str, Any]:
    """The row fields of a search hit."""
    entity = hit.get("entity") if hasattr(hit, "get") else None
    return dict(entity) if entity else dict(hit)


def _search(conn: MilvusConn, spec: PageSpec, expr: str, limit: int, *, radius: float | None,
            range_filter: float | None, fields: tuple[str, ...] = (PK,)) -> list[dict[str, Any]]:
    assert spec.vec is not None
    params: dict[str, Any] = dict(spec.search_params)
    if spec.index_type == "HNSW":
        params["ef"] = max(int(params.get("ef", 0) or 0), limit)
    if radius is not None and spec.exact_range:
        params["radius"] = float(radius)
    if range_filter is not None and spec.exact_range:
        params["range_filter"] = float(range_filter)
    res = conn.call("search", "search", spec.collection, data=[spec.vec.tolist()], anns_field=VECTOR,
                    limit=limit, filter=expr, output_fields=list(fields),
                    search_params={"metric_type": "IP", "params": params})
    return list(res[0]) if res else []
