"""What the router does with one parsed frame: event id, preprocess, detect, process.

1. ``event_id = ctx.idgen()`` -- or, for a frame with an ``Idempotency-Key``, the event id the key
   got on its first delivery; a key already handled is answered from the store with
   ``"duplicate": true`` and skips the rest (:mod:`facerouter.dedup`). Plugins see the id as
   ``request.event_id`` (and the ``event_id`` argument of ``process``), and ``request.redelivered``
   says whether this key was delivered before without being answered;
2. every plugin's ``preprocess`` concurrently; the union of the features asked for;
3. if any plugin asked for something: one sfapi detect -- on ``face0`` with
   ``detector=normalized``, or, without face0 and with config ``detector: nnd``, on ``photo`` taking
   the detected face that overlaps ``bbox`` best;
4. ``process`` of every plugin that asked for something, concurrently, with that detection.

sfapi failures on the router's own detect become :class:`SfapiUnavailable` (503: the sender
retries) when sfapi is unreachable, overloaded or failing, :class:`SfapiUnauthorized` (502
``SFAPI_UNAUTHORIZED``: the sender keeps the frame and retries) when sfapi refuses the router's
token, and a 4xx naming the part sfapi refused otherwise. Plugins' own failures never fail the frame; they are listed in the answer.

When any plugin asked for something, the answer carries ``timings`` (seconds): ``preprocess_s`` (every
preprocess done), ``detect_s`` (the sfapi detect) and ``process_s`` (every process done, e.g. the
persons plugin's entry stored); the frame handler adds ``total_s`` (parsing to answer) and
``started_at`` (unix seconds when the handler began).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from facerouter.dedup import EventStore, EventStoreError
from facerouter.driver import PluginDriver
from facerouter.errors import (BadFrame, FrameRefused, NoFaceFound, SfapiUnauthorized,
                               SfapiUnavailable, StoreUnavailable)
from facerouter.idgen import IdGenerator
from facerouter.metrics import RouterMetrics
from facerouter.objects import BBox, DetectFace, DetectResponse
from facerouter.plugin import FrHTTPRequest
from facerouter.request import FrameParams
from sfapi.client import Client, SFApiMalformedResponseError, SFApiRemoteError

__all__ = ["FramePipeline", "iou", "OUTAGE_CODES"]

log = logging.getLogger(__name__)

#: sfapi error codes that mean "try again later" (answered 503), whatever their HTTP status.
OUTAGE_CODES = frozenset({"OVER_CAPACITY", "STORAGE_ERROR", "CACHE_ERROR", "UNKNOWN_ERROR",
                          "LICENSE_ERROR"})


def iou(a: BBox, box: list[float]) -> float:
    """Intersection over union of an sfapi box and an ``[x1, y1, x2, y2]`` list."""
    x1, y1, x2, y2 = box
    iw = min(a.right, x2) - max(a.left, x1)
    ih = min(a.bottom, y2) - max(a.top, y1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a.width * a.height + (x2 - x1) * (y2 - y1) - inter
    return inter / union if union > 0 else 0.0


class FramePipeline:
    """Runs frames through the plugins; one per router."""

    def __init__(self, *, client: Client, driver: PluginDriver, idgen: IdGenerator,
                 metrics: RouterMetrics, detector: str, sfapi_timeout: float,
                 events: EventStore | None = None) -> None:
        self.client = client
        self.events = events
        self.driver = driver
        self.idgen = idgen
        self.metrics = metrics
        self.detector = detector
        self.sfapi_timeout = sfapi_timeout

    def check(self, params: FrameParams) -> None:
        """Refuse a frame this router cannot handle, before any plugin sees it."""
        if params.face0 is None and self.detector == "":
            raise FrameRefused("the frame has no face0 and this router has detector '' (set "
                               "detector: nnd to detect on photo)", param="face0", value=None)

    async def handle(self, request: FrHTTPRequest) -> dict[str, Any]:
        """Run one frame through the plugins; returns the answer body."""
        key = request.params.idempotency_key
        if key is None or self.events is None:
            return await self._run(request, self.idgen(), redelivered=False)
        try:
            async with self.events.exclusive(key):
                claim = await self.events.claim(key, self.idgen())
                if claim.answer is not None:
                    log.info("frame %s (key %s) delivered again: answered from the store",
                             claim.answer.get("event_id"), key)
                    self.metrics.duplicates.inc()
                    return {**claim.answer, "duplicate": True}
                body = await self._run(request, claim.event_id, redelivered=claim.seen)
                await self.events.done(key, {k: body[k] for k in ("event_id", "failed_plugins",
                                                                  "processed")})
                return body
        except EventStoreError as exc:
            log.error("%s", exc)
            raise StoreUnavailable("facerouter's event store failed; retry later") from exc

    async def _run(self, request: FrHTTPRequest, event_id: int, redelivered: bool) -> dict[str, Any]:
        params = request.params
        request.event_id = event_id
        request.redelivered = redelivered
        t0 = time.perf_counter()
        pre = await self.driver.preprocess(request, params.labels)
        t1 = time.perf_counter()
        failed = list(pre.failed)
        processed: list[str] = []
        timings: dict[str, float] | None = None
        if pre.wanted:
            detection = await self.detect(params, pre.features(), event_id)
            t2 = time.perf_counter()
            failed_process = await self.driver.process(pre.wanted, request, params.photo,
                                                       params.bbox, event_id, detection)
            t3 = time.perf_counter()
            failed += failed_process
            processed = [name for name in pre.wanted if name not in failed_process]
            timings = {"preprocess_s": round(t1 - t0, 6), "detect_s": round(t2 - t1, 6),
                       "process_s": round(t3 - t2, 6)}
        if failed:
            log.info("frame %d from camera %s: plugins failed: %s", event_id, params.cam_id,
                     ", ".join(failed))
        order = {name: i for i, name in enumerate(self.driver.registry.names())}
        body: dict[str, Any] = {"event_id": str(event_id),
                                "failed_plugins": sorted(failed, key=order.__getitem__),
                                "processed": processed}
        if timings is not None:
            body["timings"] = timings
        return body

    async def detect(self, params: FrameParams, features: frozenset[str],
                     event_id: int) -> DetectFace:
        """One sfapi detect with the requested features; the face the frame is about."""
        flags = {name: True for name in features}
        normalized = params.face0 is not None
        part = "face0" if normalized else "photo"
        image = params.face0 if normalized else params.photo
        assert image is not None
        started = time.perf_counter()
        try:
            faces = await self.client.detect(image=image, detector="normalized" if normalized
                                             else "nnd", timeout=self.sfapi_timeout,
                                             request_id=str(event_id), **flags)
        except SFApiMalformedResponseError as exc:
            raise SfapiUnavailable(f"sfapi unavailable: {exc}") from exc
        except SFApiRemoteError as exc:
            raise _remote_error(exc, part) from exc
        except RuntimeError as exc:
            if not self.client.closed:
                raise
            raise SfapiUnavailable("facerouter is stopping; retry later") from exc
        finally:
            log.debug("frame %d: sfapi detect on %s took %.1f ms", event_id, part,
                      (time.perf_counter() - started) * 1000)
        return self._pick(faces, params, part)

    def _pick(self, faces: DetectResponse, params: FrameParams, part: str) -> DetectFace:
        if not faces:
            raise NoFaceFound(f"sfapi found no face in {part}", param=part, value=None)
        if part == "face0":
            return faces[0]
        best = max(faces, key=lambda face: iou(face.bbox, params.bbox[0]))
        if iou(best.bbox, params.bbox[0]) <= 0.0:
            raise NoFaceFound("no face detected in photo overlaps bbox", param="bbox",
                              value=params.bbox)
        return best


def _remote_error(exc: SFApiRemoteError, part: str) -> Exception:
    if exc.code in ("UNAUTHORIZED", "FORBIDDEN") or exc.status in (401, 403):
        log.error("sfapi refused facerouter's token (sfapi_token): %s", exc.reason)
        return SfapiUnauthorized("sfapi refused facerouter's API token (check sfapi_token); "
                                 "retry once it is fixed")
    if exc.code in OUTAGE_CODES or (exc.status or 500) >= 500:
        return SfapiUnavailable(f"sfapi failed: {exc}")
    if exc.code == "EXTRACTION_ERROR":
        return NoFaceFound(f"sfapi could not extract the face from {part}: {exc.reason}",
                           param=part, value=None)
    return BadFrame(f"sfapi refused {part}: {exc}", param=part, value=exc.value)
