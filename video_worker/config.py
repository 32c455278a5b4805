"""Typed, validated config of the video worker (``config/video_worker.yaml``) and of camera jobs.

Loaded with :func:`facestack.core.configfile.load_config`, so a bad file fails at start with
``file:line key.path: message (got value)``. The per-camera settings follow FindFace's names
(``filter_min_size``, ``overall_only``, ``realtime_post_interval``, ``track_miss_interval`` ...);
``defaults`` holds them for every job, and each job may override any of them in ``settings``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from facestack.core import errors as core_errors
from facestack.core.auth import AuthConfig, Authenticator, AuthSetupError, bearer
from facestack.core.tls import ClientTls, ServerTls
from facestack.core.audit_store import AuditStoreConfig
from facestack.core.configfile import StrictModel, load_config, validate
from video_worker.errors import BadJob, ConfigError

__all__ = ["CameraSettings", "JobSpec", "ModelsSection", "DetectorSection", "DeliverySection",
           "SourceSection", "FleetSection", "WorkerConfig", "load", "job_from_api", "authenticator", "JOB_ID", "SERVICE"]

DEFAULT_PORT = 18999
#: the service's name in messages (the console script's name)
SERVICE = "video-worker"
#: Job ids: what fits in a URL path segment, a file name and a Prometheus label.
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class CameraSettings(StrictModel):
    """Per-camera processing settings (FindFace video worker names where one exists)."""

    #: frames analysed per second of stream time (the rest are only decoded)
    detect_fps: float = Field(5.0, gt=0, le=120)
    #: files: -1 = as fast as possible, 1 = real time, 2 = twice as fast ...; live streams ignore it
    play_speed: float = -1.0
    #: degrees the picture is turned clockwise before analysis
    rot: Literal[0, 90, 180, 270] = 0
    #: region analysed, [x1, y1, x2, y2] in (rotated) frame pixels; null: the whole frame
    roi: tuple[int, int, int, int] | None = None
    #: smallest and largest face side (pixels) posted; the detector's pyramid starts near the minimum,
    #: so much smaller faces cost nothing (some a little smaller are still found, then filtered)
    filter_min_size: int = Field(60, ge=12, le=8192)
    filter_max_size: int = Field(8192, ge=12, le=16384)
    #: opt-in floor: lowest quality (0..1: detector score x size x pose x sharpness) of a face that is
    #: posted. 0 (default): every track with a face of filter_min_size is posted once whatever its
    #: pose; quality only ranks the faces of a track (detectorParams carries it and its parts)
    filter_min_quality: float = Field(0.0, ge=0.0, le=1.0)
    #: true: one post per track (bs_type overall); false: realtime posts too, and the overall one
    overall_only: bool = True
    realtime_post_interval: float = Field(1.0, gt=0)
    #: post the best face of every interval even when it is not better than the last one posted
    realtime_post_every_interval: bool = False
    #: post the first face of a track at once instead of waiting for the first interval to end
    realtime_post_first_immediately: bool = False
    #: tracker (simple IoU): minimal overlap to continue a track, and how long a track may miss
    track_overlap_threshold: float = Field(0.25, gt=0.0, lt=1.0)
    track_miss_interval: float = Field(1.0, gt=0)
    #: a track reaching this many analysed frames is closed (and posted) and a new one starts; 0: no limit
    track_max_duration_frames: int = Field(0, ge=0)
    #: photo: the full frame, or a crop around the face (crop_scale x the face box, clipped)
    photo: Literal["full", "crop"] = "full"
    crop_scale: float = Field(3.0, ge=1.0, le=20.0)
    jpeg_quality: int = Field(95, ge=10, le=100)
    #: timestamps: stream time (start_stream_timestamp, or the time the stream opened, + pts) or wall clock
    use_stream_timestamp: bool = False
    start_stream_timestamp: float | None = None
    #: live streams: never drop frames when analysis falls behind (files never drop)
    disable_drops: bool = False
    #: rtsp transport for rtsp:// URLs
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    #: extra FFmpeg demuxer/protocol options, e.g. {probesize: "32768"}
    ffmpeg_params: dict[str, str] = {}
    #: motion gate (:mod:`video_worker.motion`): a sampled frame is analysed only when the fraction
    #: (0..1) of a 64x36 grey thumbnail (of the roi) that changed since the last analysed frame is
    #: above this, a track is live, or ``motion_gate_max_skip_s`` passed; e.g. 0.005. 0: off
    imotion_threshold: float = Field(0.0, ge=0.0, le=1.0)
    #: with the gate on, analyse at least one sampled frame this often (stream seconds), so a face
    #: standing still in view is still found; 0: only motion and live tracks wake the detector
    motion_gate_max_skip_s: float = Field(2.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> "CameraSettings":
        if self.filter_max_size < self.filter_min_size:
            raise ValueError("filter_max_size must be >= filter_min_size")
        if self.play_speed != -1 and self.play_speed <= 0:
            raise ValueError("play_speed must be -1 (as fast as possible) or > 0")
        if self.roi is not None:
            x1, y1, x2, y2 = self.roi
            if min(self.roi) < 0 or x2 <= x1 or y2 <= y1:
                raise ValueError("roi must be [x1, y1, x2, y2] with 0 <= x1 < x2 and 0 <= y1 < y2")
        return self


class JobSpec(StrictModel):
    """A camera job: what to read, where to post, how to process."""

    id: str
    stream_url: str = Field(min_length=1)
    labels: dict[str, str] = {}
    #: facerouter's frame endpoint base, e.g. http://127.0.0.1:18820 (/v0/frame is appended);
    #: null: the worker's router_url
    router_url: str | None = None
    #: files: stop at the end instead of starting over; streams: stop instead of reconnecting
    single_pass: bool = False
    settings: dict[str, Any] = {}

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # each key checked here, so an error names its own line and jobs.<n>.settings.<key>;
        # the merge with the worker's ``defaults`` is checked again by WorkerConfig
        CameraSettings.model_validate({**CameraSettings().model_dump(), **value})
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not JOB_ID.match(value):
            raise ValueError("job id must be 1-128 characters of letters, digits, '_', '.', '-'")
        return value


class ModelsSection(StrictModel):
    """The sfapi model pack the detector is loaded from."""

    dir: Path | None = None  # null: sfapi's default (``$SFAPI_MODELS_DIR`` or the user cache)
    runtime: Literal["onnxruntime", "onnxruntime-cuda", "tensorrt"] = "onnxruntime"


class DetectorSection(StrictModel):
    """The one detector engine shared by every camera."""

    #: detection threads shared by all cameras (each runs one frame at a time)
    threads: int = Field(2, ge=1, le=64)
    #: ONNX Runtime threads inside one network call
    intra_op_threads: int = Field(1, ge=0, le=64)
    #: OpenCV threads inside one image operation (resizes, colour conversion), for the whole worker
    #: process; the cameras already run in parallel, and splitting one small operation over more
    #: threads costs CPU (~7% of the analysis on the bench); 0: OpenCV's default (one per core)
    opencv_threads: int = Field(1, ge=0, le=64)
    #: R-Net / O-Net candidates of concurrent frames (all cameras) share forward passes; false runs
    #: each frame's R-Net / O-Net directly on its analysis thread (as a call with none other in
    #: flight is run either way)
    batching: bool = True
    max_batch: int = Field(64, ge=1, le=1024)
    max_wait_ms: float = Field(1.0, ge=0, le=100)
    #: P-Net works on frames shrunk to this side at most (boxes stay in full-frame pixels)
    max_image_side: int = Field(1280, ge=64, le=8192)
    #: regions: MTCNN over the whole frame every full_scan_interval_s (stream time), in between only
    #: around live tracks and where the frame changed (video_worker.regions); mtcnn: the whole frame
    #: every sampled frame
    pipeline: Literal["regions", "mtcnn"] = "regions"
    full_scan_interval_s: float = Field(8.0, gt=0, le=3600)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.95)
    #: size and padding of the normalized face (face0): sfapi's ``normalized`` settings
    normalized_size: int = Field(200, ge=64, le=1024)
    normalized_padding: float = Field(0.4, ge=0.25, le=2.0)


class DeliverySection(StrictModel):
    """Posting to facerouter."""

    timeout_s: float = Field(15.0, gt=0)  # FindFace router_timeout_ms 15000
    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(10.0, gt=0)
    #: posts of one camera waiting in memory; past it they go to the spool
    memory_queue: int = Field(64, ge=1)
    #: on-disk spool of one camera: past this size the oldest posts are dropped (and counted)
    spool_max_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    #: retention of spooled posts: a post made more than this many seconds ago is dropped (and
    #: counted as dropped) instead of delivered; checked before every delivery attempt, so at least
    #: every ``backoff_max_s`` while the router is down, and at start-up. null: kept until delivered
    spool_max_age_s: float | None = Field(None, gt=0)
    #: JSON lines, one per acknowledged post: its wall-clock times (decoded, analysed, sent, acked)
    #: and the router's timings (bench/e2e.py reads it); null: no trace (relative: to the config file)
    trace_path: Path | None = None


#: FFmpeg options a job's ``settings.ffmpeg_params`` may set by default (demuxer and protocol tuning;
#: none of them names another file, protocol or host)
FFMPEG_PARAMS_ALLOWED = ("analyzeduration", "probesize", "fflags", "flags", "max_delay",
                         "reorder_queue_size", "buffer_size", "fifo_size", "rtsp_flags",
                         "allowed_media_types", "min_port", "max_port", "stimeout", "timeout",
                         "rw_timeout", "listen_timeout", "user_agent", "framerate", "video_size",
                         "input_format", "pixel_format", "seekable", "multiple_requests",
                         "reconnect", "reconnect_streamed", "reconnect_delay_max")


class HostRules(StrictModel):
    """Which hosts a job's URL may name: ``allow`` and ``deny`` entries are address categories
    (``loopback``, ``private``, ``link_local``, ``multicast``, ``unspecified``, ``reserved``,
    ``public``), CIDRs / addresses, or host names; deny wins. A host name listed is taken as is;
    any other is resolved and each of its addresses must be allowed and not denied."""

    allow: list[str] = []
    deny: list[str] = []

    @field_validator("allow", "deny")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        from video_worker.policy import check_host_rule
        return [check_host_rule(rule) for rule in value]


class SourceSection(StrictModel):
    """Opening and reading streams, and what jobs created over the API may read
    (:mod:`video_worker.policy`)."""

    open_timeout_s: float = Field(10.0, gt=0)
    #: no packet for this long is a stall: the job reconnects
    read_timeout_s: float = Field(10.0, gt=0)
    reconnect_backoff_initial_s: float = Field(0.5, gt=0)
    reconnect_backoff_max_s: float = Field(30.0, gt=0)
    #: decoded frames waiting for analysis, per camera
    frame_queue: int = Field(4, ge=1, le=256)
    #: decoder threads per stream (0: FFmpeg's choice)
    decoder_threads: int = Field(0, ge=0, le=64)
    #: URL schemes an API job's stream_url may use
    allowed_schemes: list[str] = ["rtsp", "rtsps", "http", "https"]
    #: directories whose files an API job may read (symbolic links resolved); none by default
    allowed_file_roots: list[Path] = []
    #: devices an API job may open, e.g. [/dev/video0]; none by default
    allowed_devices: list[str] = []
    #: hosts an API job's stream_url may name: cameras live on private networks (loopback,
    #: link-local and the rest are refused unless allowed here)
    stream_hosts: HostRules = HostRules(allow=["private", "public"])
    #: hosts an API job's router_url may name besides the host of the worker's own router_url
    router_hosts: HostRules = HostRules()
    #: FFmpeg options an API job's settings.ffmpeg_params may set
    ffmpeg_params_allowed: list[str] = list(FFMPEG_PARAMS_ALLOWED)

    @field_validator("allowed_schemes")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        for scheme in value:
            if not re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme) or scheme == "file":
                raise ValueError(f"{scheme!r} is not a URL scheme name (files: allowed_file_roots)")
        return value


class FleetSection(StrictModel):
    """The job store shared by the workers of a fleet, and this worker's share of it
    (:mod:`video_worker.jobstore`, :mod:`video_worker.manager`)."""

    #: SQLAlchemy URL of the job store: ``postgresql+asyncpg://user:password@host/db`` for a fleet
    #: (every worker names the same one); null: SQLite in ``<state_dir>/jobs.db`` (one worker).
    #: Never logged with its password.
    store: SecretStr | None = None
    #: cameras this worker runs at most
    capacity: int = Field(100, ge=1, le=10000)
    #: how long a claim or a renewal holds a job (seconds); a worker that cannot renew stops its
    #: jobs when it runs out, and the others claim them once it has run out in the database
    lease_s: float = Field(10.0, ge=0.5, le=600)
    #: heartbeat (lease renewal, claiming) interval; null: a third of the lease, at most 2 s
    heartbeat_s: float | None = Field(None, gt=0)
    #: how other workers and operators reach this worker's job API (shown by ``GET /workers``);
    #: null: http://<host>:<port>
    advertise_url: str | None = None

    @field_validator("store")
    @classmethod
    def _store(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = value.get_secret_value().split("://", 1)[0]
            if scheme not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
                raise ValueError("store must be a postgresql+asyncpg:// or sqlite+aiosqlite:/// URL")
        return value

    @model_validator(mode="after")
    def _check(self) -> "FleetSection":
        if self.heartbeat_s is not None and self.heartbeat_s * 2 > self.lease_s:
            raise ValueError("heartbeat_s must be at most half of lease_s")
        return self

    @property
    def tick_s(self) -> float:
        """The heartbeat interval in use."""
        return self.heartbeat_s if self.heartbeat_s is not None else min(self.lease_s / 3, 2.0)


class WorkerConfig(StrictModel):
    """The whole ``video_worker.yaml``."""

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    #: unique in a fleet: a worker starting frees the jobs its previous run (same id) held
    worker_id: str = Field("video-worker-1", min_length=1, max_length=128)
    #: where API-created jobs and the spool live (relative paths: to the config file)
    state_dir: Path = Path("video_worker_state")
    router_url: str = "http://127.0.0.1:18820"
    #: API token sent to facerouter (``Authorization: Bearer``) with every frame; null when the router
    #: checks none. Never logged; a read-write token of the router's ``auth.tokens``.
    router_token: SecretStr | None = None
    #: tokens clients of the job API must send (/healthz is open); checked by default whenever the
    #: API binds to a non-loopback address, and for writes (POST, DELETE) whenever any token is
    #: configured
    auth: AuthConfig = AuthConfig()
    #: HTTPS (cert + key) and mutual TLS (client_ca) for the job API: facestack.core.tls
    tls: ServerTls = ServerTls()
    #: verifying the router over https: CA bundle, and the client certificate for mutual TLS
    router_tls: ClientTls = ClientTls()
    #: audit records of the job API also stored in a database (the persons database)
    audit: AuditStoreConfig = AuditStoreConfig()
    models: ModelsSection = ModelsSection()
    detector: DetectorSection = DetectorSection()
    delivery: DeliverySection = DeliverySection()
    source: SourceSection = SourceSection()
    fleet: FleetSection = FleetSection()
    defaults: CameraSettings = CameraSettings()
    jobs: list[JobSpec] = []

    @model_validator(mode="after")
    def _check(self) -> "WorkerConfig":
        seen: set[str] = set()
        for job in self.jobs:
            if job.id in seen:
                raise ValueError(f"job id {job.id!r} is declared twice")
            seen.add(job.id)
            self.camera_settings(job)  # each job's overrides must validate
        return self

    def camera_settings(self, job: JobSpec) -> CameraSettings:
        """The job's settings: ``defaults`` with the job's overrides."""
        merged = {**self.defaults.model_dump(), **job.settings}
        return CameraSettings.model_validate(merged)

    def router_of(self, job: JobSpec) -> str:
        """The facerouter base URL of ``job``."""
        return (job.router_url or self.router_url).rstrip("/")

    def store_url(self) -> str:
        """The job store's SQLAlchemy URL (with its password: never log it)."""
        if self.fleet.store is not None:
            return self.fleet.store.get_secret_value()
        return f"sqlite+aiosqlite:///{Path(self.state_dir) / 'jobs.db'}"

    def router_headers(self) -> dict[str, str]:
        """Headers of every request to facerouter (the token, when there is one)."""
        return bearer(self.router_token.get_secret_value() if self.router_token else None)


def authenticator(cfg: WorkerConfig, host: str | None = None) -> Authenticator:
    """The job API's token check for a bind to ``host`` (default: ``cfg.host``); raises
    :class:`ConfigError` (with :class:`facestack.core.auth.AuthSetupError`'s message) when it must check
    tokens and has none."""
    try:
        return Authenticator.from_config(cfg.auth, host if host is not None else cfg.host, SERVICE,
                                         guard_writes=True)
    except AuthSetupError as exc:
        raise ConfigError(str(exc)) from None


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> WorkerConfig:
    """Read and validate the worker config; relative ``state_dir`` / ``models.dir`` /
    ``delivery.trace_path`` / ``source.allowed_file_roots`` are made relative to the file. Raises :class:`ConfigError` with
    file:line messages, or when the job API must check tokens (``auth``) and has none."""
    try:
        cfg = load_config(path, WorkerConfig, overrides)
    except core_errors.ConfigError as exc:
        raise ConfigError(str(exc)) from None
    if path is not None:
        base = Path(path).resolve().parent
        update: dict[str, Any] = {}
        if not cfg.state_dir.is_absolute():
            update["state_dir"] = base / cfg.state_dir
        if cfg.models.dir is not None and not cfg.models.dir.is_absolute():
            update["models"] = cfg.models.model_copy(update={"dir": base / cfg.models.dir})
        trace = cfg.delivery.trace_path
        if trace is not None and not trace.is_absolute():
            update["delivery"] = cfg.delivery.model_copy(update={"trace_path": base / trace})
        roots = cfg.source.allowed_file_roots
        if any(not r.is_absolute() for r in roots):
            update["source"] = cfg.source.model_copy(update={
                "allowed_file_roots": [r if r.is_absolute() else base / r for r in roots]})
        if update:
            cfg = cfg.model_copy(update=update)
    authenticator(cfg)  # a worker that must check tokens and has none fails here, as --check-config
    return cfg


def job_from_api(job_id: str, body: Any, cfg: WorkerConfig) -> JobSpec:
    """Validate a job posted over the API (``{"stream_url", "labels", "router_url",
    "single_pass", "settings"}``); raises :class:`BadJob` naming the bad key."""
    if not isinstance(body, dict):
        raise BadJob("the job must be a JSON object", param="body")
    try:
        job = validate(JobSpec, {**body, "id": job_id}, f"job {job_id}")
        cfg.camera_settings(job)
    except core_errors.ConfigError as exc:
        raise BadJob(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadJob(f"settings.{where}: {first['msg']}", param=f"settings.{where}") from None
    return job
