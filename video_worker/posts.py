"""What the worker sends to facerouter: one :class:`Post` per picked face, and its wire forms.

A post holds the multipart parts of ``POST /v0/frame`` (see ``facerouter/request.py``): ``photo``
(JPEG of the full analysed frame or of a crop around the face), ``face0`` (JPEG of the normalized
face, ``facestack.vision.engines.align.extract_chip(frame, landmarks, 200, 0.4)``, which sfapi reads with
``detector=normalized``), ``bbox`` (``[[x1, y1, x2, y2]]`` in photo pixels), ``cam_id``,
``timestamp`` (RFC 3339), ``detectorParams`` (JSON), ``bs_type`` and ``labels``.

Posts are built in a worker thread (JPEG encoding is CPU work) and serialized to bytes for the
on-disk spool with :meth:`Post.to_bytes` / :meth:`Post.from_bytes`.

``detectorParams`` carries three wall-clock times (unix seconds) for latency tracing:
``decoded_at`` (the posted frame left the decoder: its timestamp, so null with
``use_stream_timestamp``), ``analysed_at`` (detection, tracking and selection done, before the JPEG
encoding) and ``sent_at`` (set by :meth:`Post.form` when an attempt starts).

Every post has an idempotency key, sent in the ``Idempotency-Key`` header and kept with the post in
the spool: ``<job id>:<run id>:<track>:<sequence>``. The run id is a UUID made when the job's run
starts (each start of the job, each start of the worker); the sequence counts the run's posts. Track
ids start at 1 again on every run, so the run id keeps a new person's post from being taken for an
old one; and a post replayed from the spool after a crash keeps the key it was built with, so
facerouter stores it once.
"""
from __future__ import annotations

import datetime
import itertools
import json
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import cv2
import numpy as np

from facestack.vision.engines.align import extract_chip
from video_worker.config import CameraSettings
from video_worker.errors import SpoolError
from video_worker.selector import Pick

__all__ = ["Post", "PostBuilder", "rfc3339", "IDEMPOTENCY_HEADER"]

#: the HTTP header carrying a post's idempotency key
IDEMPOTENCY_HEADER = "Idempotency-Key"

_MAGIC = b"VWP1"
_HEADER = struct.Struct("<4sIII")  # magic, meta length, photo length, face0 length


def rfc3339(epoch_s: float) -> str:
    """``2024-05-01T12:30:00.250Z`` for seconds since the epoch."""
    dt = datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Post:
    """One face event for facerouter: text ``fields`` plus the two JPEG parts."""

    cam_id: str
    fields: dict[str, str]  # bbox, cam_id, timestamp, detectorParams, bs_type, labels
    photo: bytes
    face0: bytes
    #: idempotency key (empty for posts spooled by a worker that made none)
    key: str = ""

    @property
    def nbytes(self) -> int:
        """Approximate size on the wire and in the spool."""
        return len(self.photo) + len(self.face0) + sum(len(v) for v in self.fields.values()) + 64

    @property
    def params(self) -> dict[str, Any]:
        """``detectorParams`` decoded."""
        return json.loads(self.fields["detectorParams"])

    def form(self, sent_at: float | None = None) -> aiohttp.FormData:
        """The multipart body (a fresh one per attempt: FormData is single-use); ``sent_at``
        (unix seconds) goes into ``detectorParams``."""
        form = aiohttp.FormData()
        form.add_field("photo", self.photo, filename="photo.jpg", content_type="image/jpeg")
        form.add_field("face0", self.face0, filename="face0.jpg", content_type="image/jpeg")
        for name, value in self.fields.items():
            if name == "detectorParams" and sent_at is not None:
                value = json.dumps({**json.loads(value), "sent_at": round(sent_at, 6)})
            form.add_field(name, value)
        return form

    def to_bytes(self) -> bytes:
        """Serialize for the spool."""
        meta = json.dumps({"cam_id": self.cam_id, "fields": self.fields, "key": self.key}).encode()
        return _HEADER.pack(_MAGIC, len(meta), len(self.photo), len(self.face0)) + meta + \
            self.photo + self.face0

    @classmethod
    def from_bytes(cls, data: bytes) -> "Post":
        """Read a spooled post; raises :class:`SpoolError` when it is damaged."""
        try:
            magic, n_meta, n_photo, n_face = _HEADER.unpack_from(data)
            if magic != _MAGIC or len(data) != _HEADER.size + n_meta + n_photo + n_face:
                raise ValueError("bad header or length")
            start = _HEADER.size
            meta = json.loads(data[start:start + n_meta])
            start += n_meta
            return cls(meta["cam_id"], dict(meta["fields"]), data[start:start + n_photo],
                       data[start + n_photo:start + n_photo + n_face], str(meta.get("key") or ""))
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise SpoolError(f"damaged spool entry: {exc}") from None


class PostBuilder:
    """Turns picks of one camera into posts (JPEG encoding, crops, the normalized face)."""

    def __init__(self, cam_id: str, labels: dict[str, str], settings: CameraSettings,
                 worker_id: str, normalized_size: int = 200, normalized_padding: float = 0.4,
                 run_id: str | None = None, epoch: int | None = None) -> None:
        self.cam_id = cam_id
        #: the job's lease epoch when this run started (``detectorParams.epoch``; None: not sent)
        self.epoch = epoch
        #: this run's id, part of every post's idempotency key
        self.run_id = run_id or uuid.uuid4().hex
        self._seq = itertools.count()
        self.labels_json = json.dumps(labels, sort_keys=True)
        self.s = settings
        self.worker_id = worker_id
        self.norm_size = normalized_size
        self.norm_padding = normalized_padding

    def build(self, pick: Pick) -> Post:
        """Encode ``pick`` (CPU work: call it off the event loop)."""
        analysed_at = time.time()
        obs = pick.obs
        frame = obs.frame
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (0, 0, w, h) if self.s.photo == "full" else self._crop(obs.box, w, h)
        photo = self._jpeg(frame[y0:y1, x0:x1])
        face0 = self._jpeg(extract_chip(frame, obs.landmarks, self.norm_size, self.norm_padding))
        shift = np.array([x0, y0, x0, y0], np.float64)
        bbox = [round(float(v), 1) for v in np.asarray(obs.box, np.float64) - shift]
        # the bbox may reach past the photo (a face cut by the border): keep it inside for the router
        bbox = [min(max(bbox[0], 0.0), x1 - x0 - 1.0), min(max(bbox[1], 0.0), y1 - y0 - 1.0),
                min(max(bbox[2], 1.0), float(x1 - x0)), min(max(bbox[3], 1.0), float(y1 - y0))]
        landmarks = (np.asarray(obs.landmarks, np.float64) - shift[:2]).round(1).tolist()
        params = {
            "score": round(obs.score, 5), "quality": round(obs.quality, 5),
            "sharpness": round(obs.sharpness, 4), "yaw": round(obs.yaw, 2), "pitch": round(obs.pitch, 2),
            "roll": round(obs.roll, 2),
            "quality_parts": {k: round(v, 4) for k, v in (obs.parts or {}).items()},
            "landmarks": landmarks, "frame_bbox": [round(float(v), 1) for v in obs.box],
            "frame_size": [w, h], "photo_offset": [x0, y0],
            "track": pick.track_id, "frame_no": obs.frame_no, "frame_time": round(obs.t, 4),
            "track_start_frame": pick.track_start_frame, "track_end_frame": pick.track_end_frame,
            "track_start": rfc3339(pick.track_start_timestamp),
            "track_end": rfc3339(obs.timestamp + (pick.track_end_t - obs.t))
            if pick.track_end_t is not None else None,
            "track_duration": round((pick.track_end_t if pick.track_end_t is not None else obs.t)
                                    - pick.track_start_t, 4),
            "track_frames": pick.track_frames, "worker_id": self.worker_id,
            # the frame's timestamp is the wall clock when it left the decoder, unless it is stream time
            "decoded_at": None if self.s.use_stream_timestamp else round(obs.timestamp, 6),
            "analysed_at": round(analysed_at, 6),
        }
        if self.epoch is not None:  # the fencing token of the run (video_worker.jobstore)
            params["epoch"] = self.epoch
        fields = {
            "bbox": json.dumps([bbox]), "cam_id": self.cam_id, "timestamp": rfc3339(obs.timestamp),
            "detectorParams": json.dumps(params), "bs_type": pick.bs_type, "labels": self.labels_json,
        }
        key = f"{self.cam_id}:{self.run_id}:{pick.track_id}:{next(self._seq)}"
        return Post(self.cam_id, fields, photo, face0, key)

    def _crop(self, box: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = max(box[2] - box[0], box[3] - box[1]) * self.s.crop_scale / 2
        x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
        x1, y1 = min(int(np.ceil(cx + half)), w), min(int(np.ceil(cy + half)), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return 0, 0, w, h
        return x0, y0, x1, y1

    def _jpeg(self, rgb: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, self.s.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()
