"""The one face detector shared by every camera of the worker.

The MTCNN of the model pack (:class:`facestack.vision.engines.mtcnn.MtcnnDetector`) is loaded
once. Its R-Net and O-Net run behind :class:`facestack.vision.engines.batching.DynamicBatcher`, so
the candidates of frames from different cameras analysed at the same time share forward passes;
P-Net (whose input size follows each frame) runs directly, and so does an R-Net / O-Net call made
while no other is in flight (:class:`BatchedSession`). Frames are analysed on a bounded thread
pool: the event loop only awaits.

Each camera gets a light :class:`MtcnnDetector` view on the shared sessions with its own settings
(the smallest face searched for follows the camera's ``filter_min_size``), and with the ``regions``
pipeline (the default, :mod:`video_worker.regions`) views for the zones it re-detects in.

The pose network of the pack (:mod:`facestack.vision.engines.pose`) is loaded here too: the
analyzers use it for the pose factor of quality.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from facestack.vision.settings import default_models_dir
from facestack.vision.engines.batching import DynamicBatcher
from facestack.vision.engines.mtcnn import PNET_CELL, MtcnnDetector, MtcnnSettings
from facestack.vision.engines.pose import PoseEstimator
from facestack.vision.engines.runtime import Session, check_runtime, create_runtime
from facestack.core.errors import FacestackError
from facestack.vision.errors import ModelPackError
from video_worker.config import DetectorSection, ModelsSection
from video_worker.errors import EngineError
from video_worker.regions import RangeMtcnn, ViewSource

__all__ = ["SharedDetector", "BatchedSession"]

log = logging.getLogger(__name__)


class BatchedSession(Session):
    """A :class:`Session` whose concurrent ``run`` calls share forward passes (one input).

    A call made while no other call of this session is in flight (one camera, or cameras taking
    turns) has nothing to share a pass with: it runs at once on the caller's thread, without the
    hand-over to the batcher thread and its ``max_wait``. Calls that overlap one in flight go
    through the :class:`DynamicBatcher` and are batched together.
    """

    def __init__(self, inner: Session, max_batch: int, max_wait_s: float) -> None:
        self.name = inner.name
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self._inner = inner
        self._batcher = DynamicBatcher(inner.name, lambda rows: inner.run(rows), max_batch, max_wait_s)
        self._in_flight = 0
        self._count_lock = threading.Lock()
        #: calls run directly (nothing in flight) and calls batched, since the start
        self.direct_calls = 0
        self.batched_calls = 0

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != 1:
            raise ValueError(f"{self.name}: expected 1 input, got {len(inputs)}")
        with self._count_lock:
            alone = self._in_flight == 0
            self._in_flight += 1
            if alone:
                self.direct_calls += 1
            else:
                self.batched_calls += 1
        try:
            if alone:
                return self._inner.run(inputs[0])
            return self._batcher.submit(inputs[0]).result()
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Stop the batcher thread."""
        self._batcher.close()


def check_detector(models: ModelsSection) -> None:
    """Fail as :class:`SharedDetector` would at start: the runtime is available and the pack holds
    the detector networks (what ``--check-config`` runs); raises :class:`EngineError`."""
    from facestack.vision.models.pack import network_path

    models_dir = Path(models.dir) if models.dir is not None else default_models_dir()
    try:
        check_runtime(models.runtime)
        for name in ("detector_pnet", "detector_rnet", "detector_onet", "pose"):
            if not network_path(models_dir, name).is_file():
                raise ModelPackError(f"network {name} is missing (run: sfapi models fetch --dir {models_dir})")
    except (FacestackError, OSError) as exc:
        raise EngineError(f"cannot load the detector from {models_dir}: {exc}") from exc


class SharedDetector(ViewSource):
    """Owns the detector networks, the pose network and the analysis thread pool."""

    def __init__(self, models: ModelsSection, cfg: DetectorSection) -> None:
        self.cfg = cfg
        models_dir = Path(models.dir) if models.dir is not None else default_models_dir()
        try:
            from facestack.vision.models.pack import network_path

            runtime = create_runtime(models.runtime, cfg.intra_op_threads)
            pnet, rnet, onet = (runtime.load(network_path(models_dir, f"detector_{n}"), f"detector_{n}")
                                for n in ("pnet", "rnet", "onet"))
            pose = PoseEstimator(runtime.load(network_path(models_dir, "pose"), "pose"))
        except (FacestackError, OSError) as exc:
            raise EngineError(f"cannot load the detector from {models_dir}: {exc} "
                              "(a pack built before the pose network: run sfapi models fetch)") from exc
        self.pose = pose
        if cfg.opencv_threads:
            cv2.setNumThreads(cfg.opencv_threads)  # process-wide: this process is the worker
        wait = cfg.max_wait_ms / 1000.0
        self._pnet = pnet
        self._rnet: Session = BatchedSession(rnet, cfg.max_batch, wait) if cfg.batching else rnet
        self._onet: Session = BatchedSession(onet, cfg.max_batch, wait) if cfg.batching else onet
        self.executor = ThreadPoolExecutor(cfg.threads, thread_name_prefix="detect")
        self._views: dict[tuple[int, int, int], MtcnnDetector] = {}
        self._zone_views: dict[tuple[int, int], MtcnnDetector] = {}
        self._lock = threading.Lock()
        log.info("detector loaded from %s (%s, %d threads)", models_dir, models.runtime, cfg.threads)

    def detector_for(self, min_face_px: int, height: int, width: int) -> MtcnnDetector:
        """A detector view finding faces of ``min_face_px`` and up in ``height`` x ``width`` frames.

        MTCNN's ``min_face_size`` counts P-Net pixels; when the frame is shrunk for P-Net
        (``max_image_side``) the smallest face searched for shrinks with it.
        """
        key = (min_face_px, height, width)
        with self._lock:
            view = self._views.get(key)
            if view is None:
                shrink = min(1.0, self.cfg.max_image_side / max(height, width, 1))
                settings = MtcnnSettings(min_face_size=max(float(PNET_CELL), min_face_px * shrink),
                                         thresholds=self.cfg.thresholds,
                                         max_image_side=self.cfg.max_image_side)
                view = self._views[key] = MtcnnDetector(self._pnet, self._rnet, self._onet, settings)
            return view

    def zone_view(self, min_face_px: float, max_face_px: float | None) -> MtcnnDetector:
        """A detector view for a crop of a frame at full resolution: the P-Net scales (relative to
        full-resolution pixels) of a full scan for faces of ``min_face_px``, stopping at faces of
        ``max_face_px`` (None: no limit). Sizes are rounded to keep the number of views small."""
        lo = max(float(PNET_CELL), float(int(min_face_px) // 4 * 4))
        hi = None if max_face_px is None else max(lo, float(round(max_face_px / 8.0) * 8 or 8))
        key = (int(lo), -1 if hi is None else int(hi))
        with self._lock:
            view = self._zone_views.get(key)
            if view is None:
                settings = MtcnnSettings(min_face_size=lo, thresholds=self.cfg.thresholds, max_image_side=None)
                view = self._zone_views[key] = RangeMtcnn(self._pnet, self._rnet, self._onet, settings, hi)
            return view

    def refiner(self) -> RangeMtcnn:
        """A view whose ``refine`` runs O-Net alone on candidate boxes (tracked faces)."""
        return self.zone_view(float(PNET_CELL), None)  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the pool and the batchers (after the cameras stopped)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        for sess in (self._rnet, self._onet):
            if isinstance(sess, BatchedSession):
                sess.close()
