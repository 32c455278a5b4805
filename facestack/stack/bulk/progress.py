"""Progress of a bulk run: a one-line bar (count, rate, ETA) redrawn on a terminal, plain log lines
otherwise (one per person, and a summary line every ``interval_s``)."""
from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import TextIO

__all__ = ["Progress", "format_eta"]

log = logging.getLogger(__name__)


def format_eta(seconds: float | None) -> str:
    """``h:mm:ss``, or ``?`` while unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Counts what happened to ``total`` persons; draws or logs it.

    ``tty``: draw a bar on ``stream`` (default: when ``stream`` is a terminal). ``skipped``:
    persons a previous run settled (counted as done, not in the rate).
    """

    def __init__(self, total: int, skipped: int = 0, *, stream: TextIO | None = None,
                 tty: bool | None = None, interval_s: float = 10.0, clock=time.monotonic) -> None:
        self.total = total
        self.skipped = skipped
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = interval_s
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.start = clock()
        self._drawn = 0.0
        self._logged = self.start

    @property
    def done(self) -> int:
        """Persons settled in this run."""
        return sum(self.counts.values())

    def rate(self) -> float:
        """Persons per second in this run."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the current rate."""
        rate = self.rate()
        left = self.total - self.skipped - self.done
        return left / rate if rate > 0 else None

    def line(self) -> str:
        """The one-line summary."""
        done = self.skipped + self.done
        pct = 100.0 * done / self.total if self.total else 100.0
        parts = [f"{done}/{self.total} ({pct:.0f}%)",
                 f"enrolled {self.counts['enrolled']}", f"refused {self.counts['refused']}"]
        if self.counts["error"]:
            parts.append(f"errors {self.counts['error']}")
        if self.skipped:
            parts.append(f"skipped {self.skipped}")
        return (" | ".join(parts) + f" | {self.rate():.2f}/s | ETA {format_eta(self.eta())}")

    def update(self, name: str, status: str, reason: str | None, detail: str) -> None:
        """One person settled."""
        self.counts[status] += 1
        now = self.clock()
        if self.tty:
            if now - self._drawn >= 0.2 or self.skipped + self.done >= self.total:
                self._draw()
                self._drawn = now
            return
        why = f" ({reason}: {detail})" if reason else (f" ({detail})" if detail else "")
        log.info("%s: %s%s", name, status, why)
        if now - self._logged >= self.interval_s:
            self._logged = now
            log.info("progress: %s", self.line())

    def _draw(self) -> None:
        width = 24
        frac = (self.skipped + self.done) / self.total if self.total else 1.0
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        self.stream.write(f"\r[{bar}] {self.line()}\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line (terminal) or log the last summary."""
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        else:
            log.info("progress: %s", self.line())
