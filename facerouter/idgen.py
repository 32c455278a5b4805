"""Unique, time-ordered 64-bit ids for events (``ctx.idgen()``).

Layout of an id (63 bits used, so it fits signed and unsigned 64-bit columns alike)::

    | 41 bits: milliseconds since 2024-01-01 UTC | 10 bits: node id | 12 bits: sequence |

Ids from one generator strictly increase. Several facerouter processes give unique ids as long as
each has its own ``node_id`` (0..1023). More than 4096 ids in one millisecond borrow the next
millisecond instead of waiting, and a clock that steps back never makes an id go back: the generator
keeps counting from the last millisecond it used.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["IdGenerator", "EPOCH_MS", "NODE_BITS", "SEQUENCE_BITS", "split_id"]

#: 2024-01-01T00:00:00Z in Unix milliseconds.
EPOCH_MS = 1_704_067_200_000
NODE_BITS = 10
SEQUENCE_BITS = 12
TIME_BITS = 41
_MAX_NODE = (1 << NODE_BITS) - 1
_MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class IdGenerator:
    """Callable id generator; thread-safe (plugins' sync hooks run in worker threads).

    Args:
        node_id: this process's number among the routers sharing galleries (0..1023).
        clock_ms: source of Unix time in milliseconds (tests pass a fake clock).
    """

    def __init__(self, node_id: int = 0, clock_ms: Callable[[], int] | None = None) -> None:
        if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 <= node_id <= _MAX_NODE:
            raise ValueError(f"node_id must be an int in 0..{_MAX_NODE}, got {node_id!r}")
        self._node = node_id
        self._clock = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    @property
    def node_id(self) -> int:
        """The node id written into every id."""
        return self._node

    def __call__(self) -> int:
        """A new id, larger than every id this generator gave before."""
        with self._lock:
            now = self._clock() - EPOCH_MS
            if now < 0:
                raise RuntimeError("the system clock is before 2024-01-01; cannot make ids")
            if now > self._last_ms:
                self._last_ms = now
                self._sequence = 0
            elif self._sequence < _MAX_SEQUENCE:
                self._sequence += 1
            else:  # this millisecond is used up (or the clock stepped back): borrow the next one
                self._last_ms += 1
                self._sequence = 0
            if self._last_ms >= 1 << TIME_BITS:
                raise RuntimeError("id time field overflow (year 2093)")
            return ((self._last_ms << (NODE_BITS + SEQUENCE_BITS))
                    | (self._node << SEQUENCE_BITS) | self._sequence)


def split_id(value: int) -> tuple[int, int, int]:
    """``(unix_ms, node_id, sequence)`` of an id made by :class:`IdGenerator`."""
    ms = (value >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS
    return ms, (value >> SEQUENCE_BITS) & _MAX_NODE, value & _MAX_SEQUENCE
