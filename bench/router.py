"""Frames/s and latency through facerouter, beside a bare Tornado handler, in the same run.

Run: ``.venv/bin/python bench/router.py [--seconds S]``. Starts the real sfapi (child process), then
three HTTP servers, each its own child process:

* ``bare``: a Tornado handler that only parses the same multipart upload and answers 200;
* ``router-noop``: facerouter with one plugin whose preprocess asks for nothing (no sfapi call);
* ``router-facen``: facerouter with one plugin that asks for facen (one sfapi detect per frame on
  the normalized face0, as the video worker sends it).

Each is driven with real frames (a shared photo, its normalized face chip) by 1 and 16 concurrent
senders for ``--seconds``; prints frames/s, p50/p99 latency and the ratios to ``bare``.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, REPO, free_port, sfapi_server, table  # noqa: E402

NOOP = """
    from facerouter.plugin import Plugin

    class Noop(Plugin):
        async def preprocess(self, request, labels):
            return ()
"""

FACEN = """
    from facerouter.plugin import Plugin

    class Facen(Plugin):
        async def preprocess(self, request, labels):
            return ("facen",)

        async def process(self, request, photo, bbox, event_id, detection):
            assert detection.id
"""


def bare_server(port: int) -> None:
    """The baseline: parse the multipart upload (Tornado does it) and answer."""
    import tornado.ioloop
    import tornado.web

    class Frame(tornado.web.RequestHandler):
        def post(self) -> None:
            files, args = self.request.files, self.request.body_arguments
            if "photo" not in files or "cam_id" not in args:
                self.set_status(400)
            self.write({"event_id": "0", "failed_plugins": []})

    app = tornado.web.Application([(r"/v0/frame", Frame)])
    app.listen(port, "127.0.0.1", max_body_size=20 * 1024 * 1024)
    tornado.ioloop.IOLoop.current().start()


def make_frame(sfapi: str) -> tuple[bytes, str]:
    import numpy as np
    from PIL import Image

    from facestack.vision.engines import align

    photo = (DATA / "faces/obama/img2.jpg").read_bytes()
    req = urllib.request.Request(sfapi + "/v2/detect", data=photo, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        face = json.load(resp)["faces"][0]
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    chip = align.extract_chip(rgb, np.asarray(face["landmarks"], np.float32), 200, 0.4)
    buf = io.BytesIO()
    Image.fromarray(chip).save(buf, "JPEG", quality=95)
    b = face["bbox"]
    parts = {"photo": photo, "face0": buf.getvalue(),
             "bbox": json.dumps([[b["left"], b["top"], b["right"], b["bottom"]]]),
             "cam_id": "bench", "timestamp": "2024-05-01T12:00:00Z",
             "detectorParams": "{}", "bs_type": "overall", "labels": '{"site": "bench"}'}
    boundary = "benchboundary"
    out = bytearray()
    for name, value in parts.items():
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, bytes):
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n").encode() + value
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (404/405 is fine)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def start_router(tmp: Path, name: str, code: str, sfapi: str) -> tuple[str, subprocess.Popen[bytes]]:
    plugin_dir = tmp / name
    plugin_dir.mkdir()
    (plugin_dir / f"{name.replace('-', '_')}.py").write_text(textwrap.dedent(code))
    port = free_port()
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(json.dumps({"sfapi_url": sfapi, "plugin_dir": str(plugin_dir),
                               "port": port, "max_inflight": 256}))
    proc = subprocess.Popen([sys.executable, "-m", "facerouter.cli", "--config", str(cfg),
                             "--log-level", "WARNING"], cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/healthz", proc)
    return base, proc


async def drive(base: str, body: bytes, ctype: str, senders: int,
                seconds: float) -> tuple[float, float, float, int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=conn) as http:
        async def sender() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                async with http.post(base + "/v0/frame", data=body,
                                     headers={"Content-Type": ctype}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
                latencies.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies), p99, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    procs: list[subprocess.Popen[bytes]] = []
    with sfapi_server() as sfapi, tempfile.TemporaryDirectory() as tmpdir:
        try:
            body, ctype = make_frame(sfapi)
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)]))
            bare = f"http://127.0.0.1:{port}"
            wait_up(bare + "/v0/frame", procs[-1])
            targets = {"bare": bare}
            for name, code in (("router-noop", NOOP), ("router-facen", FACEN)):
                base, proc = start_router(Path(tmpdir), name, code, sfapi)
                procs.append(proc)
                targets[name] = base
            results: dict[tuple[str, int], tuple[float, float, float, int]] = {}
            for senders in (1, 16):
                for name, base in targets.items():
                    asyncio.run(drive(base, body, ctype, senders, 0.5))  # warm-up
                    results[(name, senders)] = asyncio.run(
                        drive(base, body, ctype, senders, args.seconds))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
    rows = []
    for (name, senders), (fps, p50, p99, errors) in results.items():
        base_fps = results[("bare", senders)][0]
        rows.append([name, senders, fps, p50, p99, errors, fps / base_fps])
    print(f"frame: {len(body)} bytes multipart (photo + 200x200 face0); {args.seconds:.0f} s each")
    print(table(["server", "senders", "frames/s", "p50 ms", "p99 ms", "non-200",
                 "vs bare"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
