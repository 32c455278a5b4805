"""A fleet of real video worker processes on loopback, for the fleet tests and ``bench/fleet.py``.

* :func:`fresh_database`: a new PostgreSQL database on the test server (dropped afterwards);
* :class:`Router`: a facerouter stand-in that records every delivery with its idempotency key,
  stores each key once (a key delivered again is answered as facerouter does, ``duplicate``), and
  answers 503 to the workers named in ``refuse`` (so they spool);
* :class:`Proxy`: a TCP proxy (its own process) between a worker and PostgreSQL, to cut the database
  off (``cut``: every connection dropped, new ones refused) and bring it back (``resume``);
* :class:`WorkerProc`: one ``video-worker`` process (``start``, ``kill9``, ``stop``, ``api``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import numpy as np
import yaml
from aiohttp import web

from facestack.stack import clips

REPO = Path(__file__).resolve().parents[3]

#: camera settings of the fleet's jobs: a post per second while a face is in view, real time
CAMERA = {"filter_min_size": 40, "detect_fps": 2, "overall_only": False, "realtime_post_interval": 1.0,
          "play_speed": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_scene(seconds: float = 3.0) -> clips.Scene:
    """320x240 at 25 fps: one person walks across the whole clip (one track per loop)."""
    n = int(25 * seconds)
    return clips.Scene((320, 240), 25, n, 100, (clips.Appearance("obama", 0, n, (10, 60), (210, 60)),))


def make_clip(patches: dict[str, np.ndarray], path: Path) -> Path:
    """The small scene as an H.264 MP4 (``patches``: the tests' face patches)."""
    import cv2

    small = {k: cv2.resize(v, (100, 100), interpolation=cv2.INTER_AREA) for k, v in patches.items()}
    return clips.encode(small_scene(), small, path)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url`` (``postgresql+asyncpg://...``);
    yields its SQLAlchemy URL and drops it at the end."""
    import asyncpg
    import sqlalchemy as sa

    url = sa.engine.make_url(server_url)
    name = f"fleet_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class Delivery:
    """One post the router took (or refused)."""

    key: str
    cam: str
    worker: str
    epoch: int | None
    decoded_at: float
    ok: bool
    #: the key was stored before (a post sent again: its answer was lost, or the worker stopped
    #: before it saw it); facerouter answers it from its idempotency store
    duplicate: bool = False
    #: when the router got it (unix seconds)
    at: float = 0.0

    @property
    def run(self) -> str:
        return self.key.split(":")[1]

    @property
    def seq(self) -> int:
        return int(self.key.split(":")[3])


@dataclass
class Router:
    """A facerouter stand-in on loopback recording every delivery."""

    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    _stored: dict[str, str] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def taken(self) -> list[Delivery]:
        """The posts stored (each key once)."""
        return [d for d in self.deliveries if d.ok and not d.duplicate]

    async def handle(self, request: web.Request) -> web.Response:
        form: dict[str, str] = {}
        reader = await request.multipart()  # part by part: no spooled files left to the GC
        while (part := await reader.next()) is not None:
            assert isinstance(part, aiohttp.BodyPartReader)
            data = await part.read()
            if not part.filename:
                form[part.name or ""] = bytes(data).decode()
        params = json.loads(form["detectorParams"])
        worker = params["worker_id"]
        ok = worker not in self.refuse
        key = request.headers.get("Idempotency-Key", "")
        duplicate = ok and key in self._stored
        self.deliveries.append(Delivery(key, str(form["cam_id"]), worker, params.get("epoch"),
                                        params["decoded_at"], ok, duplicate, time.time()))
        if not ok:
            return web.json_response({"code": "OVER_CAPACITY"}, status=503, headers={"Retry-After": "0"})
        if duplicate:
            return web.json_response({"event_id": self._stored[key], "duplicate": True})
        self._stored[key] = str(len(self._stored) + 1)
        return web.json_response({"event_id": self._stored[key]})

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v0/frame", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Proxy:
    """A loopback TCP proxy to ``target`` (host, port) in its own process (so that nothing in the
    test process can slow the worker's database connection): ``cut`` kills it (every connection
    dropped, new ones refused), ``resume`` starts it again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def resume(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.video_worker.fleet.tcpproxy",
                                      str(self.port), self.target[0], str(self.target[1])],
                                     env=env, cwd=str(REPO))

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        await until(listening, 30, "the database proxy listening", step=0.1)

    async def cut(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class WorkerProc:
    """One ``video-worker`` process with its own config, state folder and log."""

    def __init__(self, name: str, root: Path, store_url: str, router_url: str, models_dir: Path,
                 clip_root: Path, capacity: int, lease_s: float) -> None:
        self.name = name
        self.port = free_port()
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "video_worker.yaml"
        self.log = self.dir / "worker.log"
        self.cfg: dict[str, Any] = {
            "worker_id": name, "host": "127.0.0.1", "port": self.port, "state_dir": str(self.dir / "state"),
            "router_url": router_url, "models": {"dir": str(models_dir)},
            "detector": {"threads": 1, "batching": False},
            "delivery": {"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "timeout_s": 5},
            "source": {"allowed_file_roots": [str(clip_root)], "reconnect_backoff_initial_s": 0.2,
                       "reconnect_backoff_max_s": 1.0},
            "defaults": dict(CAMERA),
            "fleet": {"store": store_url, "capacity": capacity, "lease_s": lease_s},
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spool(self) -> Path:
        return self.dir / "state" / "spool"

    def spooled(self) -> int:
        """Posts in this worker's spools (on disk)."""
        return sum(1 for _ in self.spool.glob("*/*.post")) if self.spool.is_dir() else 0

    async def start(self, wait: bool = True) -> None:
        self.config.write_text(yaml.safe_dump(self.cfg))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "video_worker.cli", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        if wait:
            await self.ready()

    async def ready(self, timeout: float = 120.0) -> None:
        async def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited {self.proc.returncode}: {self.tail()}")
            try:
                status, _ = await self.api("GET", "/healthz")
            except aiohttp.ClientError:
                return False
            return status == 200

        await until(up, timeout, f"worker {self.name} up")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    async def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.request(method, self.url + path, **kw) as resp:
                text = await resp.text()
                body = json.loads(text) if text and resp.content_type == "application/json" else text
                return resp.status, body

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> None:
    """Poll ``predicate`` (sync or async) until it is true; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not in time: {what}")
        await asyncio.sleep(step)


def runs_overlap(deliveries: list[Delivery]) -> list[str]:
    """Jobs two of whose runs decoded frames at the same time (per job, each run's frames must all
    come before the next run's): should be empty."""
    spans: dict[str, dict[str, tuple[float, float]]] = {}
    for d in deliveries:
        runs = spans.setdefault(d.cam, {})
        lo, hi = runs.get(d.run, (d.decoded_at, d.decoded_at))
        runs[d.run] = (min(lo, d.decoded_at), max(hi, d.decoded_at))
    bad = []
    for cam, runs in spans.items():
        ordered = sorted(runs.values())
        bad += [cam for a, b in zip(ordered, ordered[1:]) if a[1] >= b[0]]
    return bad


def gaps_and_strays(deliveries: list[Delivery]) -> tuple[list[str], list[str]]:
    """Runs whose stored posts miss a sequence number below their highest one (a post lost), and
    keys delivered by more than one worker (a post made twice, not sent again): both should be
    empty."""
    seqs: dict[str, set[int]] = {}
    senders: dict[str, set[str]] = {}
    for d in deliveries:
        if d.ok and not d.duplicate:
            seqs.setdefault(f"{d.cam}:{d.run}", set()).add(d.seq)
        senders.setdefault(d.key, set()).add(d.worker)
    gaps = [run for run, s in seqs.items() if s != set(range(max(s) + 1))]
    return gaps, [key for key, who in senders.items() if len(who) > 1]
