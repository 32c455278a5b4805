"""Handlers for detection: POST /v2/detect, GET /v2/detect/{id}, POST|GET /v2/verify."""
from __future__ import annotations

import base64
import re
import logging
import uuid
from typing import Any

import numpy as np
from aiohttp import web

from facestack.vision.engines.analyzer import FEATURES, normalize_facen, postprocess
from facestack.vision.engines.faces import Faces
from facestack.vision.engines.images import decode_image
from facestack.vision.engines.similarity import DEFAULT_THRESHOLD, similarity
from facestack.vision.errors import ImageError
from sfapi.errors import BadParam, ExtractionError, MalformedRequest, NotFound, from_image_error
from sfapi.server.cache import CachedDetection
from sfapi.server.images_in import read_image
from sfapi.server.params import choice, flag, json_body, known_only
from sfapi.server.state import STATE, SfapiState

log = logging.getLogger(__name__)

DETECT_PARAMS = {"facen", "gender", "age", "emotions", "return_facen", "autorotate", "detector"}
#: Smallest side of a normalized face crop (detector=normalized) the landmark template is fitted to.
MIN_NORMALIZED_SIDE = 32
#: What a detection id can look like (ours are uuid4 hex); anything else is not looked up.
_DETECTION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


async def detect(request: web.Request) -> web.Response:
    st = request.app[STATE]
    q = request.query
    known_only(q, DETECT_PARAMS)
    wanted = [name for name in FEATURES if flag(q, name)]
    return_facen = flag(q, "return_facen")
    if return_facen and "facen" not in wanted:
        wanted.insert(0, "facen")
    autorotate = flag(q, "autorotate")
    detector = choice(q, "detector", ("nnd", "normalized"), "nnd")
    with st.admission():
        data = await read_image(request, st.cfg.limits, st.fetcher)
        try:
            image = await st.run_cpu(decode_image, data, st.cfg.limits.max_image_pixels)
        except ImageError as exc:
            raise from_image_error(exc) from None
        if detector == "normalized":
            h, w = image.rgb.shape[:2]
            if min(h, w) < MIN_NORMALIZED_SIDE:
                raise BadParam("image", f"{w}x{h}", f"detector=normalized needs a face crop of at least "
                               f"{MIN_NORMALIZED_SIDE}x{MIN_NORMALIZED_SIDE} pixels, got {w}x{h}")
            faces = st.analyzer.normalized_face(image.rgb)
        else:
            faces = await st.run_cpu(st.analyzer.detect, image.rgb, autorotate)
        st.metrics.faces.inc(len(faces))
        prepared = await st.run_cpu(st.analyzer.prepare, image.rgb, faces, wanted)
        try:
            raw = await st.analyzer.extract(prepared)
        except RuntimeError as exc:
            raise ExtractionError(f"feature extraction failed: {exc}") from exc
    facens = normalize_facen(raw["facen"]) if "facen" in raw else None
    out = []
    for i in range(len(faces)):
        face = _face_json(faces, i, float(prepared.quality[i]))
        features = postprocess(raw, i)
        if features:
            face["features"] = features
        if facens is not None:
            face["id"] = uuid.uuid4().hex
            face["facen_model"] = st.analyzer.facen_model
            await st.cache.put(CachedDetection(face["id"], dict(face), facens[i], st.analyzer.facen_model))
            if return_facen:
                face["facen"] = base64.b64encode(facens[i].astype("<f4").tobytes()).decode()
        out.append(face)
    return web.json_response({"orientation": image.orientation, "faces": out})


async def get_detection(request: web.Request) -> web.Response:
    st = request.app[STATE]
    known_only(request.query, {"return_facen"})
    det = await _cached(st, request.match_info["id"], "id")
    body = dict(det.face)
    if flag(request.query, "return_facen"):
        body["facen"] = base64.b64encode(det.facen.astype("<f4").tobytes()).decode()
    return web.json_response(body)


async def verify(request: web.Request) -> web.Response:
    st = request.app[STATE]
    known_only(request.query, {"first", "second"})
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        body = await json_body(request, {})
        if not isinstance(body, dict):
            raise MalformedRequest('body must be a JSON object {"first": id, "second": id}')
        unknown = set(body) - {"first", "second"}
        if unknown:
            key = sorted(unknown)[0]
            raise BadParam(key, body[key], f"unknown field {key!r}; expected first and second")
        params.update(body)
    first = await _cached(st, params.get("first"), "first")
    second = await _cached(st, params.get("second"), "second")
    if first.model != second.model:
        raise BadParam("second", second.model, f"facen model {second.model} differs from {first.model}")
    conf = float(similarity(float(np.dot(first.facen, second.facen))))
    return web.json_response({"confidence": round(conf, 6), "threshold": DEFAULT_THRESHOLD,
                              "match": conf >= DEFAULT_THRESHOLD})


async def _cached(st: SfapiState, det_id: object, param: str) -> CachedDetection:
    if not isinstance(det_id, str) or not det_id:
        raise BadParam(param, det_id, f"{param} must be a detection id returned by /v2/detect with facen=true")
    det = await st.cache.get(det_id) if _DETECTION_ID.fullmatch(det_id) else None
    if det is None:
        raise NotFound(f"detection {det_id} not found (expired or never made)", param=param, value=det_id)
    return det


def _face_json(faces: Faces, i: int, quality: float) -> dict[str, Any]:
    x1, y1, x2, y2 = (int(round(float(v))) for v in faces.boxes[i])
    return {
        "bbox": {"left": x1, "top": y1, "right": x2, "bottom": y2},
        "detection_score": round(float(faces.scores[i]), 5),
        "quality": round(quality, 4),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in faces.landmarks[i]],
        "rotation": int(faces.rotation[i]),
    }
