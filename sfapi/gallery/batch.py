"""Search batching: concurrent look-alike searches of one gallery share one pass over its matrix.

A search over a large gallery is bound by memory bandwidth: reading the float32 matrix costs about
as much for one query as for sixteen (one ``(n, d) @ (d, k)`` product instead of ``k`` passes). The
:class:`SearchBatcher` of a gallery queues the searches that arrive while its previous batch runs
(or within ``window_s`` of the first one) and hands them to one blocking call in a worker thread,
at most ``max_batch`` at a time. One batch runs per gallery at a time. Every query keeps its own
filters, threshold, order, limit and cursor; its result is the one it would get alone
(sfapi.gallery.scan.run_many).

The batcher lives on the event loop and does no CPU work there: queuing, scheduling and handing
results back only.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")

class SearchBatcher(Generic[Q, R]):
    """Coalesces concurrent calls into batches run by ``execute`` (an awaitable that runs the
    blocking batch in a worker thread and returns one result or exception per query)."""

    def __init__(self, execute: Callable[[list[Q]], Awaitable[Sequence[R | BaseException]]], *,
                 window_s: float = 0.0, max_batch: int = 64) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s >= 0 and max_batch >= 1")
        self._execute = execute
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: list[tuple[Q, asyncio.Future[R]]] = []
        self._scheduled: asyncio.Handle | None = None
        self._running: asyncio.Task[None] | None = None

    async def submit(self, query: Q) -> R:
        """Queue ``query`` for the next batch and wait for its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((query, fut))
        self._schedule(loop)
        return await fut

    async def drain(self) -> None:
        """Wait until every queued and running batch has finished."""
        while self._running is not None or self._pending:
            if self._running is not None:
                await asyncio.shield(self._running)
            else:
                await asyncio.sleep(0)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._running is not None or self._scheduled is not None or not self._pending:
            return
        # call_soon: every search submitted in this loop iteration (asyncio.gather) joins the batch
        if self.window_s > 0:
            self._scheduled = loop.call_later(self.window_s, self._start)
        else:
            self._scheduled = loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = None
        if self._running is not None:
            return
        batch = [(q, f) for q, f in self._pending[: self.max_batch] if not f.done()]
        del self._pending[: self.max_batch]
        if not batch:
            self._schedule(asyncio.get_running_loop())
            return
        self._running = asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[Q, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | BaseException] = await self._execute([q for q, _ in batch])
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:  # the whole batch failed (store closed, a bug): every caller sees it
            log.debug("search batch of %d failed: %s", len(batch), exc)
            outcomes = [exc] * len(batch)
        finally:
            self._running = None
        for (_, fut), outcome in zip(batch, outcomes):
            if fut.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
        self._schedule(asyncio.get_running_loop())
