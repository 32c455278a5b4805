"""RTSP: a local camera (GStreamer's RTSP server on 127.0.0.1) killed and restarted mid-stream."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.video_worker.conftest import free_port, wait_for, worker_config

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def _gst_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _gst_rtsp_available(),
                                reason="needs GStreamer's RTSP server (apt: gir1.2-gst-rtsp-server-1.0 ...)")


class Camera:
    """The RTSP server process; ``start``/``kill`` it like a camera losing power."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, str(SERVER), str(self.clip), str(self.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert line.strip() == b"ready", line

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_rtsp_camera_killed_and_restarted(start_worker, tmp_path, router, long_clip, transport) -> None:
    cam = Camera(long_clip, free_port())
    await cam.start()
    try:
        worker = await start_worker(worker_config(
            tmp_path, router.url, [{"id": "door", "stream_url": cam.url,
                                    "settings": {"rtsp_transport": transport}}],
            source={"read_timeout_s": 1.5}))
        job = worker.manager.get("door")
        await wait_for(lambda: job.stats.frames_decoded >= 25 and job.status == "running", 30)
        await cam.kill()
        await wait_for(lambda: job.status == "reconnecting", 15)
        before = job.stats.frames_decoded
        assert job.stats.reconnects >= 1 and job.stats.last_error
        view = job.view()
        assert view["status"] == "reconnecting" and "reconnecting in" in view["status_msg"]
        # tracks cut by the outage were closed and posted
        await wait_for(lambda: len(router.posts) >= 2, 15)
        await asyncio.sleep(1.0)  # the camera stays down through a failed reconnect or two
        await cam.start()
        await wait_for(lambda: job.status == "running" and job.stats.frames_decoded >= before + 25, 30)
        # live: a burst of frames at connect may outrun analysis; those are dropped, and counted
        assert job.stats.frames_dropped <= job.stats.frames_decoded // 5
        assert {p["cam_id"] for p in router.posts} == {"door"}
    finally:
        await cam.kill()

