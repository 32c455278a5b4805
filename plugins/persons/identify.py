"""What happens to each face from the video worker: source, size, identification, auto-create.

``preprocess`` resolves the frame's source: the label named by ``source_label`` (default
``source``), else the frame's ``cam_id``. A frame whose source does not exist is not processed
(the plugin asks for nothing, so sfapi does no work for it); it is counted per name in
``GET /status`` and logged (a warning the first time a name is seen, debug after).

``process`` then makes the entry:

1. the face's bbox area (px^2, photo pixels) below ``identify_facesize_threshold`` -> ``det``;
2. otherwise the best person in the gallery scores ``s`` -> ``exact`` / ``ha`` / ``junk`` / ``nm``
   (:func:`~.thresholds.classify`);
3. ``auto_create_persons`` turns ``nm`` (and ``ha`` / ``junk`` with ``auto_create_on_ha`` /
   ``auto_create_on_junk``) into a new person, result ``new``, when every gate passes: area at least
   ``auto_create_facesize_threshold``, blur / exposure / face angle when their checks are on, and
   never with ``auto_create_liveness_only`` (liveness is always undetermined: no model ships);
4. age, sex and mood with ``auto_identify_asm``; the frame's own timestamp with ``use_pps_time``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest

from .config import PersonsConfig
from .gates import FaceChecks, landmarks_of, measure
from .persons import PersonService, face_area
from .sources import Source, SourceRepo
from .writer import EntryWriter, NewEntry, asm_of

__all__ = ["FrameProcessor", "ASM_FEATURES"]

log = logging.getLogger(__name__)

ASM_FEATURES = ("gender", "age", "emotions")


class FrameProcessor:
    """The plugin's frame hooks."""

    def __init__(self, config: PersonsConfig, sources: SourceRepo, persons: PersonService,
                 writer: EntryWriter) -> None:
        self.config = config
        self.sources = sources
        self.persons = persons
        self.writer = writer
        self.unknown_sources: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        #: the auto-create face checks (OpenCV on the face image): two at a time, off the loop
        self._checks = ThreadPoolExecutor(2, thread_name_prefix="persons-checks")

    def close(self) -> None:
        """Stop the face-check threads (after the last frame)."""
        self._checks.shutdown(wait=True, cancel_futures=True)

    def source_of(self, params: Any) -> tuple[str, Source | None]:
        """The frame's source name and source (``None`` when no such source exists)."""
        name = params.labels.get(self.config.source_label) or params.cam_id
        return name, self.sources.by_name(name)

    async def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """facen (and age/sex/mood with auto_identify_asm) for a known source; nothing otherwise."""
        name, src = self.source_of(request.params)
        if src is None:
            self.unknown_sources[name] += 1
            level = logging.WARNING if self.unknown_sources[name] == 1 else logging.DEBUG
            log.log(level, "persons: frame from unknown source %r not processed (%d so far); "
                    "create the source to process its faces", name, self.unknown_sources[name])
            return ()
        asm = ASM_FEATURES if src.settings.auto_identify_asm else ()
        return ("facen", *asm)

    async def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]],
                      event_id: int, detection: DetectFace) -> None:
        """Identify the face and write its entry."""
        params = request.params
        name, src = self.source_of(params)
        if src is None:  # deleted between preprocess and process
            self.unknown_sources[name] += 1
            return
        s = src.settings
        area = face_area(bbox[0])
        ts_ms = (int(params.timestamp.timestamp() * 1000) if s.use_pps_time
                 else int(time.time() * 1000))
        entry = NewEntry(id=event_id, source=src, result="det", ts_ms=ts_ms, face_size=area,
                         bbox=bbox, cam_id=params.cam_id,
                         asm=asm_of(detection.features) if s.auto_identify_asm else {},
                         images={"face": params.face0 or b"", "photo": photo})
        if area >= s.identify_facesize_threshold and detection.id is not None:
            match = await self.persons.identify(detection)
            entry.result, entry.pid, entry.confidence = match.result, match.pid, match.score
            if await self._may_create(src, match.result, area, params, bbox[0], detection):
                entry.pid = await self.persons.create(detection, src.id, event_id)
                entry.result = "new"
        await self.writer.write(entry)

    async def _may_create(self, src: Source, result: str, area: float, params: Any,
                          box: list[float], detection: DetectFace) -> bool:
        s = src.settings
        if not s.auto_create_persons:
            return False
        if not (result == "nm" or (result == "ha" and s.auto_create_on_ha)
                or (result == "junk" and s.auto_create_on_junk)):
            return False
        why = await self._gate(src, area, params, box, detection)
        if why:
            self.refused[why] += 1
            log.debug("persons: no auto-create from source %s: %s", src.name, why)
            return False
        return True

    async def _gate(self, src: Source, area: float, params: Any, box: list[float],
                    detection: DetectFace) -> str | None:
        """The first gate the face fails, or ``None``."""
        s, g = src.settings, self.config.gates
        if area < s.auto_create_facesize_threshold:
            return "facesize"
        if s.auto_create_liveness_only:
            return "liveness"
        if not (s.auto_create_check_blur or s.auto_create_check_exposure
                or s.auto_check_face_angle):
            return None
        on_photo = params.face0 is None
        lm = landmarks_of(params.detectorParams,
                          detection.landmarks if on_photo else None)
        image = params.photo if on_photo else params.face0
        checks: FaceChecks = await asyncio.get_running_loop().run_in_executor(
            self._checks, measure, image, box if on_photo else None, lm)
        if s.auto_create_check_blur and not checks.blur_ok(g):
            return "blur"
        if s.auto_create_check_exposure and not checks.exposure_ok(g):
            return "exposure"
        if s.auto_check_face_angle and not checks.angle_ok(g):
            return "face_angle"
        return None

    def status(self) -> dict[str, Any]:
        """Counters for ``GET /status``."""
        return {"unknown_sources": dict(self.unknown_sources),
                "auto_create_refused": dict(self.refused)}
