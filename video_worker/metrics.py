"""Prometheus metrics of the worker, in a registry of its own (one per :class:`Worker`).

Per camera (label ``camera``, the job id):

* ``video_worker_frames_decoded_total``, ``video_worker_frames_analysed_total``,
  ``video_worker_frames_dropped_total`` (live frames analysis could not keep up with),
  ``video_worker_frames_skipped_motion_total`` (sampled frames the motion gate let pass unanalysed),
  ``video_worker_decode_fps`` (decoded frames per second over the last few seconds);
* ``video_worker_detect_seconds`` (histogram), ``video_worker_faces_total``,
  ``video_worker_tracks_total``;
* ``video_worker_posts_total{result}`` with result ``ok`` | ``rejected`` (4xx: not retried) |
  ``failed`` (an attempt that will be retried) | ``spooled`` (written to disk to wait) |
  ``dropped`` (the spool was full, or the post outlived ``delivery.spool_max_age_s``);
* ``video_worker_spool_bytes``, ``video_worker_spool_posts``, ``video_worker_reconnects_total``,
  ``video_worker_job_up`` (1 while the stream is being read).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["WorkerMetrics", "POST_RESULTS"]

POST_RESULTS = ("ok", "rejected", "failed", "spooled", "dropped")
_DETECT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class WorkerMetrics:
    """The worker's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.frames_decoded = Counter("video_worker_frames_decoded", "Frames decoded", ["camera"], registry=reg)
        self.frames_analysed = Counter("video_worker_frames_analysed", "Frames analysed (detection ran)",
                                       ["camera"], registry=reg)
        self.frames_dropped = Counter("video_worker_frames_dropped",
                                      "Sampled frames dropped because analysis fell behind", ["camera"],
                                      registry=reg)
        self.frames_skipped_motion = Counter("video_worker_frames_skipped_motion",
                                             "Sampled frames not analysed: no motion, no live track",
                                             ["camera"], registry=reg)
        self.decode_fps = Gauge("video_worker_decode_fps", "Frames decoded per second (recent)", ["camera"],
                                registry=reg)
        self.detect_seconds = Histogram("video_worker_detect_seconds", "Detection time of one frame",
                                        ["camera"], buckets=_DETECT_BUCKETS, registry=reg)
        self.faces = Counter("video_worker_faces", "Faces detected", ["camera"], registry=reg)
        self.tracks = Counter("video_worker_tracks", "Tracks started", ["camera"], registry=reg)
        self.posts = Counter("video_worker_posts", "Posts to facerouter by result", ["camera", "result"],
                             registry=reg)
        self.spool_bytes = Gauge("video_worker_spool_bytes", "Bytes in the camera's spool", ["camera"],
                                 registry=reg)
        self.spool_posts = Gauge("video_worker_spool_posts", "Posts in the camera's spool", ["camera"],
                                 registry=reg)
        self.reconnects = Counter("video_worker_reconnects", "Stream reconnects", ["camera"], registry=reg)
        self.job_up = Gauge("video_worker_job_up", "1 while the camera's stream is being read", ["camera"],
                            registry=reg)

    def forget(self, camera: str) -> None:
        """Drop every series of a deleted camera."""
        for metric in (self.frames_decoded, self.frames_analysed, self.frames_dropped,
                       self.frames_skipped_motion, self.decode_fps,
                       self.detect_seconds, self.faces, self.tracks, self.spool_bytes, self.spool_posts,
                       self.reconnects, self.job_up):
            try:
                metric.remove(camera)
            except KeyError:
                pass
        for result in POST_RESULTS:
            try:
                self.posts.remove(camera, result)
            except KeyError:
                pass

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
