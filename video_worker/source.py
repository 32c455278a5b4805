"""Reading a camera with PyAV (FFmpeg on the CPU): open, demux, decode, pace.

:class:`VideoSource` opens one connection (a file, an RTSP/HTTP(S)/RTMP URL, a ``/dev/video*``
camera) and yields :class:`RawFrame` s with their stream time. It is blocking and runs on the
camera's decode thread; reconnecting is the job's business. A read that waits longer than the read
timeout raises :class:`SourceStalled` (FFmpeg's interrupt callback aborts it), the end of the stream
raises nothing (the iterator ends), other failures raise :class:`SourceError`.

NVDEC decoding (the GPU issue) will be another class with the same two methods.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import av
import numpy as np

from video_worker.config import CameraSettings, SourceSection
from video_worker.errors import SourceError, SourceOpenError, SourceStalled

__all__ = ["RawFrame", "VideoSource", "is_file_url", "to_rgb"]

log = logging.getLogger(__name__)

_LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://",
                 "tcp://", "srt://", "rtp://")


#: FFmpeg protocols a source of each scheme may use, itself and whatever it opens in turn (an HLS
#: playlist's segments, an RTSP stream's RTP): a file never reaches the network, a network stream
#: never reads a local file
_NET = "tcp,tls,udp,rtp,srtp,crypto,http,https,httpproxy"
_PROTOCOLS = {"file": "file,crypto", "http": _NET, "https": _NET, "rtsp": "rtsp,rtsps," + _NET,
              "rtsps": "rtsp,rtsps," + _NET}


def is_file_url(url: str) -> bool:
    """A local file (paced by ``play_speed``, never dropping frames), not a live stream."""
    if url.startswith("file://"):
        return True
    if url.startswith(_LIVE_SCHEMES) or url.startswith("/dev/"):
        return False
    return "://" not in url


@dataclass(frozen=True, eq=False)
class RawFrame:
    """A decoded frame not yet converted: ``pts`` is seconds since the first frame."""

    index: int
    pts: float
    frame: av.VideoFrame


def to_rgb(frame: av.VideoFrame, rot: int) -> np.ndarray:
    """RGB ``(h, w, 3)`` uint8 of ``frame`` turned ``rot`` degrees clockwise."""
    rgb = frame.to_ndarray(format="rgb24")
    if rot:
        rgb = np.ascontiguousarray(np.rot90(rgb, -(rot // 90)))
    return rgb


class VideoSource:
    """One open stream."""

    def __init__(self, url: str, settings: CameraSettings, cfg: SourceSection) -> None:
        self.url = url
        self.settings = settings
        self.cfg = cfg
        self.is_file = is_file_url(url)
        self.fps: float = 25.0
        self.width = 0
        self.height = 0
        self._container: Any = None
        self._stream: Any = None

    def open(self) -> None:
        """Connect and find the video stream; raises :class:`SourceOpenError`."""
        url = self.url[len("file://"):] if self.url.startswith("file://") else self.url
        options = dict(self.settings.ffmpeg_params)
        fmt = None
        if url.startswith(("rtsp://", "rtsps://")):
            options.setdefault("rtsp_transport", self.settings.rtsp_transport)
        scheme = "file" if self.is_file else url.split("://", 1)[0].lower()
        if scheme in _PROTOCOLS:  # what FFmpeg may open for this source (nested opens included)
            options.setdefault("protocol_whitelist", _PROTOCOLS[scheme])
        if url.startswith("/dev/video"):
            fmt = "v4l2"
        if self.is_file and not os.path.exists(url):
            raise SourceOpenError(f"no such file: {url}")
        try:
            self._container = av.open(url, format=fmt, options=options,
                                      timeout=(self.cfg.open_timeout_s, self.cfg.read_timeout_s))
        except (av.FFmpegError, OSError, ValueError) as exc:  # ValueError: a format FFmpeg lacks
            raise SourceOpenError(f"cannot open {self.url}: {exc}") from exc
        try:
            self._stream = self._container.streams.video[0]
        except IndexError:
            self.close()
            raise SourceOpenError(f"{self.url} has no video stream") from None
        ctx = self._stream.codec_context
        if self.cfg.decoder_threads:
            ctx.thread_count = self.cfg.decoder_threads
        ctx.thread_type = "AUTO" if self.is_file else "SLICE"  # frame threading adds latency live
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.width, self.height = ctx.width, ctx.height
        log.info("opened %s: %s %dx%d at %.2f fps", self.url, ctx.name, self.width, self.height, self.fps)

    def frames(self, stop: threading.Event) -> Iterator[RawFrame]:
        """Decoded frames until the end of the stream or ``stop``; paced for files with
        ``play_speed`` > 0."""
        if self._container is None:
            raise SourceError("source is not open")
        speed = self.settings.play_speed if self.is_file else -1.0
        first_pts: float | None = None
        wall0 = time.monotonic()
        index = 0
        try:
            for packet in self._container.demux(self._stream):
                if stop.is_set():
                    return
                try:
                    decoded = packet.decode()
                except av.InvalidDataError as exc:  # one damaged packet: skip it, keep the stream
                    log.debug("%s: undecodable packet skipped: %s", self.url, exc)
                    continue
                for frame in decoded:
                    t = frame.time
                    if t is None:
                        t = index / self.fps
                    if first_pts is None:
                        first_pts = t
                    pts = max(t - first_pts, 0.0)
                    if speed > 0:
                        delay = wall0 + pts / speed - time.monotonic()
                        if delay > 0 and stop.wait(delay):
                            return
                    yield RawFrame(index, pts, frame)
                    index += 1
        except (av.ExitError, av.TimeoutError) as exc:  # the interrupt callback fired: read timeout
            raise SourceStalled(f"{self.url}: no data for {self.cfg.read_timeout_s:g} s") from exc
        except av.EOFError:
            return
        except (av.FFmpegError, OSError) as exc:
            if _is_timeout(exc):
                raise SourceStalled(f"{self.url}: no data for {self.cfg.read_timeout_s:g} s") from exc
            raise SourceError(f"{self.url}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):  # closing a broken stream
                pass
            self._container = None


def _is_timeout(exc: BaseException) -> bool:
    errno = getattr(exc, "errno", None)
    return errno in (110, 1414092869) or "timed out" in str(exc).lower()
