"""Admission control: at most ``limit`` requests in flight, the rest refused at once (never queued
without bound); the count can be awaited down to zero at shutdown.

Each service refuses with its own error (sfapi ``OVER_CAPACITY``, facerouter ``OVER_CAPACITY``
with ``Retry-After``); ``on_change`` keeps a gauge in step.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, Iterator

__all__ = ["Admission"]


class Admission:
    """Counts what is in flight; :meth:`admit` (or :meth:`enter`/:meth:`leave`) around each request."""

    def __init__(self, limit: int, refuse: Callable[[int, int], Exception],
                 on_change: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self.inflight = 0
        self._refuse = refuse
        self._on_change = on_change
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Count one more, or raise ``refuse(inflight, limit)`` when the limit is reached."""
        if self.inflight >= self.limit:
            raise self._refuse(self.inflight, self.limit)
        self.inflight += 1
        self._idle.clear()
        self._changed()

    def leave(self) -> None:
        """One admitted request is done."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()
        self._changed()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    async def drained(self, timeout: float) -> bool:
        """Wait until nothing is in flight (at most ``timeout`` seconds); whether it is."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.inflight)
