"""A bounded on-disk FIFO of posts, one directory per camera.

Each post is one file ``<seq>.post`` (written to a temporary name, fsynced and renamed, so a crash
never leaves half a post under a real name). ``seq`` grows for the life of the directory (a
post put back at the head gets the head's ``seq`` - 1; numbering starts at 10**9 to leave room),
so reading the files in name order gives the camera's posts in order, across restarts. Past
``max_bytes`` the oldest posts are deleted and counted as dropped.

A file's modification time is set to the moment its post was made (the post's ``analysed_at``; the
time it was spooled for a post without one), so a post keeps its age across restarts and when it is
put back at the head. With ``max_age_s`` set, :meth:`Spool.expire` deletes the posts older than that
(a retention limit: faces waiting for an unreachable router are not kept for ever). Posts are made in
order, so the oldest are at the head and expiry stops at the first young one.

Blocking file I/O: the delivery task calls these methods through ``asyncio.to_thread``.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from pathlib import Path

from video_worker.errors import SpoolError
from video_worker.posts import Post

__all__ = ["Spool"]

log = logging.getLogger(__name__)

_SUFFIX = ".post"
_FIRST_SEQ = 10**9


class Spool:
    """The spool of one camera."""

    def __init__(self, directory: Path, max_bytes: int, max_age_s: float | None = None) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        #: posts older than this (seconds since they were made) are dropped by :meth:`expire`
        self.max_age_s = max_age_s
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for tmp in directory.glob("*.tmp"):
                tmp.unlink()
            entries = sorted((int(p.stem), st.st_size, st.st_mtime)
                             for p in directory.glob("*" + _SUFFIX) if p.stem.isdigit()
                             for st in (p.stat(),))
        except OSError as exc:
            raise SpoolError(f"spool {directory}: {exc}") from exc
        #: (seq, bytes, made at: unix seconds), oldest first
        self._entries: deque[tuple[int, int, float]] = deque(entries)
        self._bytes = sum(size for _, size, _ in entries)
        self._next = entries[-1][0] + 1 if entries else _FIRST_SEQ
        if entries:
            log.info("spool %s: %d posts (%d bytes) left from before", directory, len(entries), self._bytes)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes on disk."""
        return self._bytes

    def append(self, post: Post) -> int:
        """Store ``post`` after every other; returns how many old posts were dropped for room."""
        with self._lock:
            seq = self._next
            self._next += 1
        return self._store(seq, post, front=False)

    def push_front(self, post: Post) -> int:
        """Store ``post`` before every other (a post that was in flight when others were spooled)."""
        with self._lock:
            if self._entries:
                seq = self._entries[0][0] - 1
            else:
                seq = self._next
                self._next += 1
        if seq < 1:
            raise SpoolError(f"spool {self.dir}: no sequence number left before the head")
        return self._store(seq, post, front=True)

    def _store(self, seq: int, post: Post, front: bool) -> int:
        data = post.to_bytes()
        made_at = _made_at(post)
        path = self._path(seq)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.utime(tmp, (made_at, made_at))
            os.replace(tmp, path)
        except OSError as exc:
            raise SpoolError(f"spool {self.dir}: cannot write: {exc}") from exc
        with self._lock:
            if front:
                self._entries.appendleft((seq, len(data), made_at))
            else:
                self._entries.append((seq, len(data), made_at))
            self._bytes += len(data)
            dropped = 0
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                old, size, _ = self._entries.popleft()
                self._bytes -= size
                dropped += 1
                self._unlink(old)
            self.dropped += dropped
        if dropped:
            log.warning("spool %s over %d bytes: %d oldest posts dropped", self.dir, self.max_bytes, dropped)
        return dropped

    def peek(self) -> tuple[int, Post] | None:
        """The oldest post and its sequence number, or None when empty. A damaged file is
        dropped (and counted) rather than blocking the camera."""
        while True:
            with self._lock:
                if not self._entries:
                    return None
                seq = self._entries[0][0]
            try:
                return seq, Post.from_bytes(self._path(seq).read_bytes())
            except (OSError, SpoolError) as exc:
                log.error("spool %s: entry %d unreadable, dropped: %s", self.dir, seq, exc)
                self.remove(seq)
                with self._lock:
                    self.dropped += 1

    def remove(self, seq: int) -> None:
        """Delete the entry ``seq`` (delivered, refused, or dropped) if it is still there."""
        with self._lock:
            for i, (s, size, _) in enumerate(self._entries):
                if s == seq:
                    del self._entries[i]
                    self._bytes -= size
                    break
            else:
                return
        self._unlink(seq)

    def expire(self, now: float | None = None) -> int:
        """Delete the posts made more than ``max_age_s`` before ``now`` (default: the clock);
        returns how many (also counted in :attr:`dropped`). No-op without ``max_age_s``."""
        if self.max_age_s is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.max_age_s
        expired: list[int] = []
        with self._lock:
            while self._entries and self._entries[0][2] < cutoff:
                seq, size, _ = self._entries.popleft()
                self._bytes -= size
                expired.append(seq)
            self.dropped += len(expired)
        for seq in expired:
            self._unlink(seq)
        if expired:
            log.warning("spool %s: %d posts older than %g s dropped (spool_max_age_s)", self.dir,
                        len(expired), self.max_age_s)
        return len(expired)

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}{_SUFFIX}"

    def _unlink(self, seq: int) -> None:
        try:
            self._path(seq).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("spool %s: cannot delete entry %d: %s", self.dir, seq, exc)


def _made_at(post: Post) -> float:
    """When ``post`` was made (its ``analysed_at``), or now for a post that does not say."""
    try:
        made = post.params.get("analysed_at")
    except (KeyError, ValueError, AttributeError):
        made = None
    ok = isinstance(made, (int, float)) and math.isfinite(made) and 0 < made <= time.time() + 86400
    return float(made) if ok else time.time()
