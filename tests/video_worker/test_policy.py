"""The job API's source and router policy (issue 14 #1) and its hostile-input answers (#6).

Names resolve through a stub resolver: no test looks a name up or connects anywhere to decide."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import io
import ipaddress
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from facestack.core.configfile import validate
from tests.video_worker.conftest import api, worker_config
from video_worker.config import SourceSection
from video_worker.errors import BadJob
from video_worker.policy import SourcePolicy, classify

NAMES = {"cam.site": ["192.168.1.20"], "public.cam": ["1.1.1.1", "8.8.8.8"],
         "sneaky.cam": ["192.168.1.21", "127.0.0.1"], "metadata.cam": ["169.254.169.254"],
         "v6.cam": ["::ffff:127.0.0.1"]}


async def stub_resolver(host: str) -> list[str]:
    try:
        return NAMES[host]
    except KeyError:
        raise OSError(f"stub resolver: unknown host {host}") from None


def policy(tmp_path: Path, **source: Any) -> SourcePolicy:
    cfg = validate(SourceSection, source, "<test>")
    return SourcePolicy(cfg, "http://127.0.0.1:18820", stub_resolver)


@pytest.mark.parametrize("addr, category", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("172.20.0.1", "private"),
    ("192.168.0.9", "private"), ("100.64.1.1", "private"), ("fd00::1", "private"),
    ("169.254.169.254", "link_local"), ("fe80::1", "link_local"), ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"), ("8.8.8.8", "public"), ("192.0.2.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"),
])
def test_classify(addr: str, category: str) -> None:
    assert classify(ipaddress.ip_address(addr)) == category


REFUSED_STREAMS = [
    "/etc/passwd", "file:///etc/shadow", "file://etc/shadow", "/dev/zero", "/dev/video0",
    "http://127.0.0.1:18411/v2/galleries", "http://[::1]:80/", "http://localhost/x",
    "rtsp://169.254.169.254/latest", "http://metadata.cam/", "rtsp://sneaky.cam/s", "http://v6.cam/",
    "rtsp://0.0.0.0/x", "rtsp://224.0.0.1/x", "http://0x7f.1/", "http://2130706433/",
    "rtmp://10.0.0.1/live", "udp://10.0.0.1:1234", "ftp://10.0.0.1/a.mp4", "concat:/etc/passwd",
    "not a url", "relative/clip.mp4", "rtsp:///nohost", "rtsp://10.0.0.1:99999/x", " rtsp://10.0.0.1/x",
    "rtsp://10.0.0.1/x\n", "subfile,,start,0,end,0,,:/etc/passwd", "http://10.0.0.1\\@127.0.0.1/",
    "rtsp://10.0.0.1@127.0.0.1/x",
]


@pytest.mark.parametrize("url", REFUSED_STREAMS)
async def test_stream_url_refused_by_default(tmp_path: Path, url: str) -> None:
    with pytest.raises(BadJob) as info:
        await policy(tmp_path).check(url, None, {})
    assert info.value.extra["param"] == "stream_url"


@pytest.mark.parametrize("url", ["rtsp://10.1.2.3:554/stream1", "rtsps://cam.site/live",
                                 "http://public.cam/mjpeg", "https://8.8.8.8/a", "RTSP://192.168.0.2/x"])
async def test_stream_url_allowed_by_default(tmp_path: Path, url: str) -> None:
    await policy(tmp_path).check(url, None, {})


async def test_files_only_under_their_roots(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"x")
    os.symlink("/etc/passwd", root / "link.mp4")
    p = policy(tmp_path, allowed_file_roots=[str(root)])
    await p.check(str(root / "a.mp4"), None, {})
    await p.check(f"file://{root / 'a.mp4'}", None, {})
    for bad in (str(root / "link.mp4"), str(root / ".." / "other.mp4"), str(tmp_path / "clips2" / "a.mp4"),
                "/etc/passwd"):
        with pytest.raises(BadJob, match="allowed_file_roots"):
            await p.check(bad, None, {})


async def test_devices_only_when_listed(tmp_path: Path) -> None:
    p = policy(tmp_path, allowed_devices=["/dev/video0"])
    await p.check("/dev/video0", None, {})
    with pytest.raises(BadJob, match="allowed_devices"):
        await p.check("/dev/video1", None, {})


async def test_host_rules_allow_and_deny(tmp_path: Path) -> None:
    p = policy(tmp_path, stream_hosts={"allow": ["loopback", "cam.site"], "deny": ["127.0.0.2/32"]})
    await p.check("rtsp://127.0.0.1:8554/cam", None, {})
    await p.check("rtsp://cam.site/x", None, {})
    for bad in ("rtsp://127.0.0.2/x", "rtsp://10.0.0.1/x", "rtsp://public.cam/x"):
        with pytest.raises(BadJob):
            await p.check(bad, None, {})
    p = policy(tmp_path, stream_hosts={"allow": ["private"], "deny": ["192.168.1.0/24"]})
    with pytest.raises(BadJob, match="denied"):
        await p.check("rtsp://cam.site/x", None, {})


@pytest.mark.parametrize("router_url, ok", [
    ("http://127.0.0.1:18820", True), ("https://127.0.0.1:9999/base", True),
    ("not a url", False), ("file:///tmp/x", False), ("ftp://127.0.0.1/", False),
    ("http://10.0.0.9:18820", False), ("http://cam.site:18820", False), ("http://127.0.0.2:1", False),
])
async def test_router_url(tmp_path: Path, router_url: str, ok: bool) -> None:
    p = policy(tmp_path)
    if ok:
        await p.check("rtsp://10.0.0.1/x", router_url, {})
    else:
        with pytest.raises(BadJob) as info:
            await p.check("rtsp://10.0.0.1/x", router_url, {})
        assert info.value.extra["param"] == "router_url"
    allowed = policy(tmp_path, router_hosts={"allow": ["10.0.0.0/8"]})
    await allowed.check("rtsp://10.0.0.1/x", "http://10.0.0.9:18820", {})


async def test_ffmpeg_params_from_the_allowlist(tmp_path: Path) -> None:
    p = policy(tmp_path)
    await p.check("rtsp://10.0.0.1/x", None, {"ffmpeg_params": {"probesize": "32768", "fflags": "nobuffer"}})
    for key in ("protocol_whitelist", "http_proxy", "headers", "f"):
        with pytest.raises(BadJob) as info:
            await p.check("rtsp://10.0.0.1/x", None, {"ffmpeg_params": {key: "x"}})
        assert info.value.extra["param"] == "settings.ffmpeg_params"


def test_bad_rules_fail_the_config() -> None:
    with pytest.raises(Exception, match="not a category"):
        validate(SourceSection, {"stream_hosts": {"allow": ["no such thing!"]}}, "<test>")
    with pytest.raises(Exception, match="scheme"):
        validate(SourceSection, {"allowed_schemes": ["file"]}, "<test>")


# --- through the job API ---------------------------------------------------------------------------

@pytest.fixture
async def bare_worker(start_worker, tmp_path, router):
    """A worker with no jobs whose API jobs may read only tmp_path/clips."""
    (tmp_path / "clips").mkdir()
    cfg = worker_config(tmp_path, router.url, source={"allowed_file_roots": [str(tmp_path / "clips")]})
    return await start_worker(cfg)


@pytest.mark.parametrize("job, param", [
    ({"stream_url": "/etc/passwd"}, "stream_url"),
    ({"stream_url": "file:///etc/shadow"}, "stream_url"),
    ({"stream_url": "/dev/zero"}, "stream_url"),
    ({"stream_url": "http://127.0.0.1:18411/v2/galleries"}, "stream_url"),
    ({"stream_url": "rtsp://10.0.0.1/x", "router_url": "not a url"}, "router_url"),
    ({"stream_url": "rtsp://10.0.0.1/x", "router_url": "file:///tmp/out"}, "router_url"),
    ({"stream_url": "rtsp://10.0.0.1/x", "router_url": "http://10.9.9.9:80"}, "router_url"),
    ({"stream_url": "rtsp://10.0.0.1/x", "settings": {"ffmpeg_params": {"protocol_whitelist": "file"}}},
     "settings.ffmpeg_params"),
])
async def test_job_api_refuses_with_400_naming_the_parameter(bare_worker, job: dict[str, Any],
                                                             param: str) -> None:
    status, body = await api(bare_worker, "POST", "/job/x", json=job)
    assert status == 400, body
    assert body["code"] == "BAD_PARAM" and body["param"] == param
    assert (await api(bare_worker, "GET", "/jobs"))[1] == []


async def test_local_photo_is_not_sent_to_a_listener(bare_worker, router, data_dir) -> None:
    """The issue's exfiltration: a local photo as a single-pass job posting to a listener."""
    job = {"stream_url": str(data_dir / "faces/obama/img1.jpg"), "single_pass": True,
           "router_url": router.url}
    status, body = await api(bare_worker, "POST", "/job/exfil", json=job)
    assert status == 400 and body["param"] == "stream_url"
    assert router.attempts == 0


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"stream_url": NaN}', b"\xff\xfe",
                                  b'{"a": ' * 40 + b"1" + b"}" * 40, b"[]", b""])
async def test_hostile_job_bodies_are_400_json(bare_worker, body: bytes) -> None:
    """#6: a deeply nested body answered a plain-text 500."""
    status, answer = await api(bare_worker, "POST", "/job/x", data=body,
                               headers={"Content-Type": "application/json"})
    assert status == 400 and isinstance(answer, dict) and answer["code"] == "BAD_PARAM", answer


async def test_job_api_405_413_404_are_json(bare_worker) -> None:
    status, body = await api(bare_worker, "PUT", "/job/x")
    assert status == 405 and body["code"] == "METHOD_NOT_ALLOWED"
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{bare_worker.port}/job/x") as resp:
            assert "POST" in resp.headers["Allow"]
    big = b"{" + b" " * (2 << 20) + b"}"
    status, body = await api(bare_worker, "POST", "/job/x", data=io.BytesIO(big),
                             headers={"Content-Type": "application/json", "Content-Length": str(len(big))})
    assert status == 413 and body["code"] == "PAYLOAD_TOO_LARGE"
    status, body = await api(bare_worker, "GET", "/nowhere")
    assert status == 404 and body["code"] == "NOT_FOUND"
