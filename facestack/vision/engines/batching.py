"""Dynamic batching: concurrent callers of one network share forward passes.

A :class:`DynamicBatcher` owns one worker thread per network. Callers ``submit`` a block of inputs
(k, ...) and get a ``concurrent.futures.Future`` of the outputs for exactly those rows. The worker
takes the first waiting block, then keeps collecting until ``max_batch`` rows or ``max_wait`` seconds
have passed, runs one forward pass and hands every caller its slice.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray], list[np.ndarray]]
BatchObserver = Callable[[str, int, float], None]


@dataclass
class _Job:
    rows: np.ndarray
    future: Future[list[np.ndarray]]


class DynamicBatcher:
    """Batches blocks of rows for one forward function on a dedicated thread."""

    def __init__(self, name: str, forward: Forward, max_batch: int = 16, max_wait_s: float = 0.002,
                 observer: BatchObserver | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.name = name
        self._forward = forward
        self._max_batch = max_batch
        self._max_wait = max_wait_s
        self._observer = observer
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Rows submitted and not yet answered (the queue depth)."""
        return self._pending

    def submit(self, rows: np.ndarray) -> Future[list[np.ndarray]]:
        fut: Future[list[np.ndarray]] = Future()
        if len(rows) == 0:
            fut.set_exception(ValueError(f"{self.name}: empty block"))
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError(f"batcher {self.name} is closed")
            self._pending += len(rows)
        self._queue.put(_Job(rows, fut))
        return fut

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is None:
                return
            jobs = [first]
            rows = len(first.rows)
            deadline = time.monotonic() + self._max_wait
            stop = False
            while rows < self._max_batch:
                left = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                if rows + len(job.rows) > self._max_batch:
                    carry = job
                    break
                jobs.append(job)
                rows += len(job.rows)
            self._run(jobs, rows)
            if stop:
                return

    def _run(self, jobs: list[_Job], rows: int) -> None:
        started = time.perf_counter()
        try:
            batch = jobs[0].rows if len(jobs) == 1 else np.concatenate([j.rows for j in jobs])
            outputs = self._forward(batch)
        except BaseException as exc:  # every caller learns of the failure
            log.exception("batcher %s: forward pass of %d rows failed", self.name, rows)
            for job in jobs:
                job.future.set_exception(exc)
        else:
            start = 0
            for job in jobs:
                n = len(job.rows)
                job.future.set_result([out[start:start + n] for out in outputs])
                start += n
        finally:
            with self._lock:
                self._pending -= rows
        if self._observer is not None:
            self._observer(self.name, rows, time.perf_counter() - started)
