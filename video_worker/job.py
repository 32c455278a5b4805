"""One camera job: a decode thread, an analysis pipeline, an outbox.

* The **decode thread** opens the stream (:class:`VideoSource`), decodes every frame, keeps the
  frames due at ``detect_fps`` (by stream time), converts only those to RGB, and hands them to the
  pipeline through a bounded channel. With the motion gate on (``imotion_threshold`` > 0) it hands
  over the decoded frame with its grey thumbnail instead; the pipeline converts it only if the gate
  lets it through (:mod:`video_worker.motion`). A live stream drops a sampled frame when the pipeline is
  behind (counted) unless ``disable_drops``; a file waits instead. After an error or a stall it
  reconnects with exponential back-off, ending the live tracks (a discontinuity); a file starts
  over at its end unless ``single_pass``.
* The **pipeline task** (event loop) applies the motion gate (it knows the live tracks of every frame
  analysed before, so the decision does not depend on timing), awaits each frame's analysis on the
  shared detector's thread pool and queues the resulting posts in the camera's :class:`Outbox`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import av
import numpy as np

from video_worker.analysis import AnalysisFrame, AnalysisResult, CameraAnalyzer
from video_worker.config import CameraSettings, JobSpec, SourceSection
from video_worker.outbox import Outbox
from video_worker.detector import SharedDetector
from video_worker.errors import SourceError
from video_worker.metrics import WorkerMetrics
from video_worker.motion import MotionGate, thumbnail
from video_worker.posts import Post
from video_worker.source import VideoSource, to_rgb

__all__ = ["CameraJob", "GatedFrame", "JobStats", "Sampler"]

log = logging.getLogger(__name__)

Status = Literal["starting", "running", "reconnecting", "finished", "stopped", "unauthorized"]
_SEGMENT_END = object()  # the stream broke or ended: end the live tracks
_STOP = object()  # the decode thread is done


@dataclass
class JobStats:
    """Counters shown in the job API's ``statistic``."""

    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    frames_skipped_motion: int = 0
    faces_detected: int = 0
    tracks: int = 0
    faces_posted: int = 0
    posts_rejected: int = 0
    posts_failed: int = 0
    posts_spooled: int = 0
    posts_dropped: int = 0
    processed_duration: float = 0.0
    reconnects: int = 0
    decode_fps: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True, eq=False)
class GatedFrame:
    """A sampled frame waiting for the motion gate: not converted yet, with its grey thumbnail."""

    frame_no: int
    t: float
    timestamp: float
    frame: av.VideoFrame
    thumb: np.ndarray

    def to_analysis(self, rot: int) -> AnalysisFrame:
        """The frame converted to RGB for analysis (on the detector's pool)."""
        return AnalysisFrame(self.frame_no, self.t, self.timestamp, to_rgb(self.frame, rot))


class Sampler:
    """Picks the frames analysed at ``detect_fps`` by stream time (half a frame of tolerance)."""

    def __init__(self, detect_fps: float) -> None:
        self.period = 1.0 / detect_fps
        self._next: float | None = None

    def take(self, t: float, source_fps: float) -> bool:
        """Whether the frame at stream time ``t`` is analysed."""
        if self._next is None or t + 0.5 / max(source_fps, 1.0) >= self._next:
            nxt = (self._next if self._next is not None else t) + self.period
            self._next = nxt if nxt > t else t + self.period
            return True
        return False

    def reset(self) -> None:
        """Start over (a new connection)."""
        self._next = None


class CameraJob:
    """A running camera job."""

    def __init__(self, spec: JobSpec, settings: CameraSettings, router_url: str, source_cfg: SourceSection,
                 detector: SharedDetector, outbox: Outbox, analyzer: CameraAnalyzer,
                 metrics: WorkerMetrics) -> None:
        self.spec = spec
        self.id = spec.id
        self.settings = settings
        self.router_url = router_url
        self.source_cfg = source_cfg
        self.detector = detector
        self.outbox = outbox
        self.analyzer = analyzer
        self.metrics = metrics
        self.stats = JobStats()
        self.status: Status = "starting"
        self.status_msg = ""
        #: set once a single_pass job read its stream to the end and queued every post
        self.finished = asyncio.Event()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(source_cfg.frame_queue)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None
        self._pipeline: asyncio.Task[None] | None = None
        self._gate = (MotionGate(settings.imotion_threshold, settings.motion_gate_max_skip_s)
                      if settings.imotion_threshold > 0 else None)

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start reading, analysing and posting."""
        self.outbox.start()
        self._pipeline = asyncio.create_task(self._run_pipeline(), name=f"pipeline-{self.id}")
        self._thread = threading.Thread(target=self._decode_main, name=f"decode-{self.id}", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop reading; the live tracks are still posted (or spooled) before the outbox closes."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        if self._pipeline is not None:
            try:
                await asyncio.wait_for(self._pipeline, timeout)
            except asyncio.TimeoutError:
                log.warning("job %s: pipeline did not stop in %.0f s", self.id, timeout)
        await self.outbox.close()
        if self.status != "finished":
            self.status, self.status_msg = "stopped", "stopped"
        self.metrics.job_up.labels(self.id).set(0)

    def view(self) -> dict[str, Any]:
        """The job as the API shows it."""
        stats = asdict(self.stats)
        stats["processed_duration"] = round(stats["processed_duration"], 3)
        stats["decode_fps"] = round(stats["decode_fps"], 2)
        stats["posts_pending"] = self.outbox.pending
        stats["spool_bytes"] = self.outbox.spool.nbytes
        status, msg = self.status, self.status_msg
        if self.outbox.unauthorized is not None:  # posts are held back: say so before anything else
            status, msg = "unauthorized", (f"posts kept ({self.outbox.pending} waiting) until the "
                                           f"token is fixed: {self.outbox.unauthorized}")
        return {"id": self.id, "stream_url": self.spec.stream_url, "labels": self.spec.labels,
                "router_url": self.router_url, "single_pass": self.spec.single_pass,
                "settings": self.spec.settings, "status": status, "status_msg": msg,
                "statistic": stats}

    def on_post_result(self, result: str, error: str | None) -> None:
        """Outbox callback: keep the job's counters."""
        field = {"ok": "faces_posted", "rejected": "posts_rejected", "failed": "posts_failed",
                 "spooled": "posts_spooled", "dropped": "posts_dropped"}[result]
        setattr(self.stats, field, getattr(self.stats, field) + 1)
        if error is not None and result in ("failed", "dropped"):
            self.stats.last_error = error

    # --- decode thread -------------------------------------------------------------------------
    def _decode_main(self) -> None:
        cfg, s = self.source_cfg, self.settings
        backoff = cfg.reconnect_backoff_initial_s
        sampler = Sampler(s.detect_fps)
        t_offset = 0.0
        frame_no = -1  # index of the decoded frame across reconnects (0-based)
        base_ts = s.start_stream_timestamp if s.start_stream_timestamp is not None else time.time()
        try:
            while not self._stop.is_set():
                src = VideoSource(self.spec.stream_url, s, cfg)
                error: SourceError | None = None
                seg_wall = time.monotonic()
                last_pts = 0.0
                try:
                    src.open()
                    self._set_status("running", f"reading {src.width}x{src.height} at {src.fps:.2f} fps")
                    self.metrics.job_up.labels(self.id).set(1)
                    sampler.reset()
                    fps_count, fps_t0 = 0, time.monotonic()
                    for raw in src.frames(self._stop):
                        backoff = cfg.reconnect_backoff_initial_s
                        frame_no += 1
                        fps_count += 1
                        self.stats.frames_decoded += 1
                        self.stats.processed_duration += max(raw.pts - last_pts, 0.0)
                        last_pts = raw.pts
                        self.metrics.frames_decoded.labels(self.id).inc()
                        now = time.monotonic()
                        if now - fps_t0 >= 2.0:
                            self.stats.decode_fps = fps_count / (now - fps_t0)
                            self.metrics.decode_fps.labels(self.id).set(self.stats.decode_fps)
                            fps_count, fps_t0 = 0, now
                        t = t_offset + raw.pts
                        if not sampler.take(t, src.fps):
                            continue
                        ts = base_ts + t if s.use_stream_timestamp else time.time()
                        item: AnalysisFrame | GatedFrame
                        if self._gate is not None:
                            item = GatedFrame(frame_no, t, ts, raw.frame, thumbnail(raw.frame, s.rot, s.roi))
                        else:
                            item = AnalysisFrame(frame_no, t, ts, to_rgb(raw.frame, s.rot))
                        self._hand_over(item, droppable=not src.is_file and not s.disable_drops)
                except SourceError as exc:
                    error = exc
                finally:
                    src.close()
                    self.metrics.job_up.labels(self.id).set(0)
                # the next segment starts after a gap at least as long as the real one
                t_offset += last_pts + max(1.0 / src.fps, time.monotonic() - seg_wall - last_pts)
                self._put(_SEGMENT_END)
                if self._stop.is_set():
                    break
                if error is None:
                    if self.spec.single_pass:
                        self._set_status("finished", "end of stream (single_pass)")
                        break
                    if src.is_file:
                        continue  # play the file again
                    error = SourceError("the stream ended")
                self.stats.reconnects += 1
                self.stats.last_error = str(error)
                self.metrics.reconnects.labels(self.id).inc()
                self._set_status("reconnecting", f"{error}; reconnecting in {backoff:.1f} s")
                log.warning("job %s: %s; reconnecting in %.1f s", self.id, error, backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, cfg.reconnect_backoff_max_s)
        except Exception as exc:  # a bug: say so in the status instead of dying silently
            log.exception("job %s: decode thread failed", self.id)
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self._set_status("stopped", f"internal error: {exc}")
        finally:
            self._put(_STOP)

    def _hand_over(self, item: AnalysisFrame, droppable: bool) -> None:
        if droppable:
            if not self._slots.acquire(blocking=False):
                self.stats.frames_dropped += 1
                self.metrics.frames_dropped.labels(self.id).inc()
                return
        else:
            while not self._slots.acquire(timeout=0.2):
                if self._stop.is_set():
                    return
        self._put(item)

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the worker is gone
            pass

    def _set_status(self, status: Status, msg: str) -> None:
        def apply() -> None:
            self.status, self.status_msg = status, msg

        try:
            self._loop.call_soon_threadsafe(apply)
        except RuntimeError:
            pass

    # --- pipeline (event loop) -----------------------------------------------------------------
    async def _run_pipeline(self) -> None:
        loop = asyncio.get_running_loop()
        pool = self.detector.executor
        while True:
            item = await self._queue.get()
            if item is _STOP:
                break
            if item is _SEGMENT_END:
                await self._queue_posts(await loop.run_in_executor(pool, self.analyzer.finish))
                if self._gate is not None:
                    self._gate.reset()
                continue
            if isinstance(item, GatedFrame) and not self._gate_lets_through(item):
                continue
            try:
                if isinstance(item, GatedFrame):
                    result = await loop.run_in_executor(pool, self._analyse_gated, item)
                else:
                    result = await loop.run_in_executor(pool, self.analyzer.process, item)
            except Exception as exc:
                log.exception("job %s: analysis of frame %d failed", self.id, item.frame_no)
                self.stats.last_error = f"analysis: {type(exc).__name__}: {exc}"
                continue
            finally:
                self._slots.release()
            st = self.stats
            st.frames_analysed += 1
            st.faces_detected += len(result.faces)
            st.tracks += result.tracks_started
            m = self.metrics
            m.frames_analysed.labels(self.id).inc()
            m.detect_seconds.labels(self.id).observe(result.detect_s)
            m.faces.labels(self.id).inc(len(result.faces))
            m.tracks.labels(self.id).inc(result.tracks_started)
            await self._queue_posts(result.posts)
        await self._queue_posts(await loop.run_in_executor(pool, self.analyzer.finish))
        if self.status == "finished":  # every frame analysed and every post queued
            self.finished.set()

    def _gate_lets_through(self, item: GatedFrame) -> bool:
        """The motion gate's decision (tracks are those left by the frames analysed before);
        a skipped frame is counted and its slot freed."""
        assert self._gate is not None
        if self._gate.analyse(item.thumb, item.t, bool(self.analyzer.tracker.live)):
            return True
        self._slots.release()
        self.stats.frames_skipped_motion += 1
        self.metrics.frames_skipped_motion.labels(self.id).inc()
        return False

    def _analyse_gated(self, item: GatedFrame) -> AnalysisResult:
        return self.analyzer.process(item.to_analysis(self.settings.rot))

    async def _queue_posts(self, posts: list[Post]) -> None:
        for post in posts:
            await self.outbox.put(post)
