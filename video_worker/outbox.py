"""Delivering one camera's posts to facerouter, in order, without losing any to an outage.

:class:`Outbox` keeps fresh posts in memory and sends them one at a time (per-camera order). When
a delivery fails with something worth retrying (connection error, timeout, 5xx, 408, 429) the
failed post and everything queued behind it move to the camera's on-disk :class:`Spool`, and posts
keep going to the spool until it is empty again; the head of the spool is retried with exponential
back-off (at least ``Retry-After`` when the router says so). A 4xx answer (e.g. 422 no face) is
final: the post is counted as rejected and the next one goes -- except 401 and 403 (the router
refused the worker's ``router_token``) and 502 ``SFAPI_UNAUTHORIZED`` (sfapi refused the router's
token): those are the operator's mistake, so the posts stay spooled and are retried with back-off,
and the job shows ``status: unauthorized`` (:attr:`Outbox.unauthorized`) until a post goes through.

Every post carries its idempotency key in the ``Idempotency-Key`` header (see
:mod:`video_worker.posts`), so a post sent again (a retry after a lost answer, a replay from the
spool after a crash) is recognised by facerouter and stored once. At shutdown the posts still in
memory are written to the spool, which the next start delivers first. With
``delivery.spool_max_age_s`` set, spooled posts older than that are dropped (counted as
``dropped``, with a warning) before each delivery attempt instead of being sent late.

With ``delivery.trace_path`` set, every acknowledged post appends one JSON line to that file
(:class:`Trace`): ``{cam, track, frame_no, bs_type, event_id, decoded_at, analysed_at, sent_at,
acked_at, router}`` -- wall-clock unix seconds, and the ``timings`` facerouter answered
(``preprocess_s``, ``detect_s``, ``process_s``, ``total_s``, ``started_at``; null when it sent none).
``bench/e2e.py`` reads it. The router token (sent by the worker's HTTP session) is never logged.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp

from video_worker.config import DeliverySection
from video_worker.errors import PostRejected, RouterUnauthorized, RouterUnavailable, SpoolError
from video_worker.metrics import WorkerMetrics
from video_worker.posts import IDEMPOTENCY_HEADER, Post
from video_worker.spool import Spool

__all__ = ["Outbox", "Ack", "Trace", "send_post"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    """A delivered post: when the attempt started and was answered (unix seconds), the answer."""

    sent_at: float
    acked_at: float
    body: bytes


async def send_post(http: aiohttp.ClientSession, url: str, post: Post, timeout_s: float) -> Ack:
    """One attempt; raises :class:`RouterUnavailable` (retry) or :class:`PostRejected` (don't)."""
    sent_at = time.time()
    headers = {IDEMPOTENCY_HEADER: post.key} if post.key else None
    try:
        async with http.post(url, data=post.form(sent_at=sent_at), headers=headers,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            body = await resp.read()
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise RouterUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
    if 200 <= status < 300:
        return Ack(sent_at, time.time(), body)
    text = body[:300].decode("utf-8", "replace")
    if status in (401, 403):
        raise RouterUnauthorized(f"{url}: HTTP {status}: facerouter refused the worker's token "
                                 f"(router_token): {text}", status=status)
    if status == 502 and _code(body) == "SFAPI_UNAUTHORIZED":
        raise RouterUnauthorized(f"{url}: HTTP 502: sfapi refused facerouter's token "
                                 f"(facerouter's sfapi_token): {text}", status=status)
    if status in (408, 429) or status >= 500:
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        raise RouterUnavailable(f"{url}: HTTP {status} {text}", status=status, retry_after=wait)
    raise PostRejected(f"{url}: HTTP {status} {text}", status=status)


def _code(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("code") if isinstance(answer, dict) else None


class Trace:
    """Appends one JSON line per acknowledged post to ``path`` (shared by the cameras: each line is
    one ``write`` on an ``O_APPEND`` descriptor, so lines of different cameras never interleave)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def record(self, cam_id: str, post: Post, ack: Ack) -> dict[str, Any]:
        """Write (and return) the record of ``post`` delivered as ``ack``."""
        params = post.params
        try:
            answer = json.loads(ack.body) if ack.body else {}
        except ValueError:
            answer = {}
        timings = answer.get("timings") if isinstance(answer, dict) else None
        rec = {"cam": cam_id, "track": params.get("track"), "frame_no": params.get("frame_no"),
               "bs_type": post.fields.get("bs_type"),
               "event_id": answer.get("event_id") if isinstance(answer, dict) else None,
               "decoded_at": params.get("decoded_at"), "analysed_at": params.get("analysed_at"),
               "sent_at": round(ack.sent_at, 6), "acked_at": round(ack.acked_at, 6),
               "router": timings if isinstance(timings, dict) else None}
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, (json.dumps(rec) + "\n").encode())
        return rec

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Outbox:
    """The ordered, spooling sender of one camera.

    Invariant: while the spool holds posts (``_degraded``), new posts go to the spool too, so memory
    only ever holds posts newer than everything on disk when the spool is empty. ``_lock`` orders
    every move into the spool.
    """

    def __init__(self, cam_id: str, router_url: str, http: aiohttp.ClientSession, spool: Spool,
                 cfg: DeliverySection, metrics: WorkerMetrics,
                 on_result: Callable[[str, str | None], None] | None = None) -> None:
        self.cam_id = cam_id
        self.url = router_url.rstrip("/") + "/v0/frame"
        self.http = http
        self.spool = spool
        self.cfg = cfg
        self.metrics = metrics
        self.on_result = on_result
        self._mem: deque[Post] = deque()
        self._inflight = 0
        self._degraded = len(spool) > 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        #: why the last attempt was refused for its token (None once a post goes through)
        self.unauthorized: str | None = None
        self.trace = Trace(cfg.trace_path) if cfg.trace_path is not None else None
        self._update_spool_metrics()

    @property
    def pending(self) -> int:
        """Posts not yet delivered (memory, in flight and spool)."""
        return len(self._mem) + self._inflight + len(self.spool)

    def start(self) -> None:
        """Start the sender task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.cam_id}")

    async def put(self, post: Post) -> None:
        """Queue ``post`` after every earlier one of this camera."""
        async with self._lock:
            if self._degraded or len(self._mem) >= self.cfg.memory_queue:
                self._degraded = True
                moved = list(self._mem) + [post]
                self._mem.clear()
                await self._append(moved)
            else:
                self._mem.append(post)
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until every queued post was delivered or rejected."""
        while self.pending:
            self._idle.clear()
            await self._idle.wait()

    async def close(self) -> None:
        """Stop sending; posts still in memory go to the spool (delivered after a restart)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        async with self._lock:
            if self._mem:
                moved = list(self._mem)
                self._mem.clear()
                await self._append(moved)
        if self.trace is not None:
            self.trace.close()

    # --- the sender ----------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = self.cfg.backoff_initial_s
        while True:
            seq: int | None = None
            async with self._lock:
                if len(self.spool) and self.spool.max_age_s is not None:
                    await self._expire()
                if len(self.spool):
                    head = await asyncio.to_thread(self.spool.peek)
                    if head is None:
                        continue
                    seq, post = head
                elif self._mem:
                    post = self._mem.popleft()
                else:
                    post = None
                    self._degraded = False
                if post is not None:
                    self._inflight += seq is None
            if post is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                ack = await send_post(self.http, self.url, post, self.cfg.timeout_s)
            except RouterUnavailable as exc:
                if isinstance(exc, RouterUnauthorized):
                    if self.unauthorized is None:
                        log.error("camera %s: %s; posts are kept until the token is fixed",
                                  self.cam_id, exc)
                    self.unauthorized = str(exc)
                self._count("failed", str(exc))
                if seq is None:  # the failed post and all behind it wait on disk, in order
                    async with self._lock:
                        self._degraded = True
                        await self._append([post], front=True)
                        moved = list(self._mem)
                        self._mem.clear()
                        await self._append(moved)
                        self._inflight -= 1
                wait = max(backoff, exc.retry_after or 0.0)
                log.warning("camera %s: delivery failed (%s); retrying in %.1f s (%d waiting)",
                            self.cam_id, exc, wait, self.pending)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.cfg.backoff_max_s)
                continue
            except PostRejected as exc:
                self.unauthorized = None
                log.warning("camera %s: facerouter refused a post: %s", self.cam_id, exc)
                self._count("rejected", str(exc))
            except asyncio.CancelledError:
                if seq is None:  # stopped while sending: keep the post for the next start
                    self._mem.appendleft(post)
                    self._inflight -= 1
                raise
            else:
                if self.unauthorized is not None:
                    log.info("camera %s: facerouter accepts posts again", self.cam_id)
                self.unauthorized = None
                self._count("ok", None)
                self._trace(post, ack)
            backoff = self.cfg.backoff_initial_s
            if seq is not None:
                await asyncio.to_thread(self.spool.remove, seq)
                self._update_spool_metrics()
            else:
                self._inflight -= 1

    async def _append(self, posts: list[Post], front: bool = False) -> None:
        """Write ``posts`` to the spool (caller holds ``_lock``)."""
        for post in posts:
            try:
                write = self.spool.push_front if front else self.spool.append
                dropped = await asyncio.to_thread(write, post)
            except SpoolError as exc:  # disk trouble: the post is lost, say so
                log.error("camera %s: %s; post dropped", self.cam_id, exc)
                self._count("dropped", str(exc))
                continue
            self._count("spooled", None)
            for _ in range(dropped):
                self._count("dropped", "spool full: oldest post dropped")
        self._update_spool_metrics()

    async def _expire(self) -> None:
        """Drop the spooled posts past ``spool_max_age_s`` (caller holds ``_lock``). A cancel (the
        job claimed here while its spool was being drained) waits for the deleting thread, so every
        post it deleted is counted."""
        work = asyncio.ensure_future(asyncio.to_thread(self.spool.expire))
        try:
            await asyncio.shield(work)
        finally:
            self._count_expired(work.result() if work.done() else await work)

    def _count_expired(self, expired: int) -> None:
        if expired:
            reason = f"spooled post older than spool_max_age_s ({self.spool.max_age_s:g} s) dropped"
            for _ in range(expired):
                self._count("dropped", reason)
            self._update_spool_metrics()

    def _trace(self, post: Post, ack: Ack) -> None:
        if self.trace is None:
            return
        try:
            self.trace.record(self.cam_id, post, ack)
        except OSError as exc:  # tracing is a diagnostic: it never stops delivery
            log.error("camera %s: cannot write the trace %s: %s; tracing off", self.cam_id,
                      self.trace.path, exc)
            self.trace.close()
            self.trace = None

    def _count(self, result: str, error: str | None) -> None:
        self.metrics.posts.labels(self.cam_id, result).inc()
        if error is not None and result != "rejected":
            self.last_error = error
        if self.on_result is not None:
            self.on_result(result, error)

    def _update_spool_metrics(self) -> None:
        self.metrics.spool_bytes.labels(self.cam_id).set(self.spool.nbytes)
        self.metrics.spool_posts.labels(self.cam_id).set(len(self.spool))
