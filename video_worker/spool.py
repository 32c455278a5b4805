"""A bounded on-disk FIFO of posts, one directory per camera.

Each post is one file ``<seq>.post`` (written to a temporary name, fsynced and renamed, so a crash
never leaves half a post under a real name). ``seq`` grows for the life of the directory (a
post put back at the head gets the head's ``seq`` - 1; numbering starts at 10**9 to leave room),
so reading the files in name order gives the camera's posts in order, across restarts. Past
``max_bytes`` the oldest posts are deleted and counted as dropped.

Blocking file I/O: the delivery task calls these methods through ``asyncio.to_thread``.
"""
from __future__ import annotations

import logging
import os
import threading
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

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for tmp in directory.glob("*.tmp"):
                tmp.unlink()
            entries = sorted((int(p.stem), p.stat().st_size) for p in directory.glob("*" + _SUFFIX)
                             if p.stem.isdigit())
        except OSError as exc:
            raise SpoolError(f"spool {directory}: {exc}") from exc
        self._entries: deque[tuple[int, int]] = deque(entries)
        self._bytes = sum(size for _, size in entries)
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
        path = self._path(seq)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise SpoolError(f"spool {self.dir}: cannot write: {exc}") from exc
        with self._lock:
            if front:
                self._entries.appendleft((seq, len(data)))
            else:
                self._entries.append((seq, len(data)))
            self._bytes += len(data)
            dropped = 0
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                old, size = self._entries.popleft()
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
            for i, (s, size) in enumerate(self._entries):
                if s == seq:
                    del self._entries[i]
                    self._bytes -= size
                    break
            else:
                return
        self._unlink(seq)

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}{_SUFFIX}"

    def _unlink(self, seq: int) -> None:
        try:
            self._path(seq).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("spool %s: cannot delete entry %d: %s", self.dir, seq, exc)
