"""``facestack demo --sfapi-only`` (what ``make run`` starts): serve sfapi and show what it finds on sample photos."""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from sfapi.config import SfapiConfig
from facestack.stack.sample_data import ensure_sample_data
from sfapi.server.app import create_app
from sfapi.server.httpd import JsonAppRunner

log = logging.getLogger(__name__)


def format_faces(name: str, body: dict) -> list[str]:
    lines = []
    for i, face in enumerate(body.get("faces", [])):
        b = face["bbox"]
        feats = face.get("features", {})
        gender = feats.get("gender", {})
        emo = (feats.get("emotions") or [{}])[0]
        lines.append(f"{name:<36} face {i}: bbox=({b['left']},{b['top']},{b['right']},{b['bottom']}) "
                     f"score={face['detection_score']:.3f} quality={face['quality']:.2f} "
                     f"gender={gender.get('gender', '-')}({gender.get('score', 0):.2f}) age={feats.get('age', '-')} "
                     f"emotion={emo.get('emotion', '-')}({emo.get('score', 0):.2f}) id={face.get('id', '-')}")
    if not lines:
        lines.append(f"{name:<36} no faces")
    return lines


async def _demo(cfg: SfapiConfig, photos: list[Path]) -> None:
    runner = JsonAppRunner(create_app(cfg), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    base = f"http://{cfg.host}:{cfg.port}"
    out = sys.stdout
    out.write(f"sfapi listening on {base}  (OpenAPI: {base}/docs/spec, metrics: {base}/metrics)\n")
    try:
        photos = photos or await asyncio.get_running_loop().run_in_executor(None, demo_photos)
        async with aiohttp.ClientSession() as http:
            for photo in photos:
                url = f"{base}/v2/detect?facen=true&gender=true&age=true&emotions=true"
                async with http.post(url, data=photo.read_bytes()) as resp:
                    body = await resp.json()
                if resp.status != 200:
                    out.write(f"{photo.name}: HTTP {resp.status} {body}\n")
                    continue
                for line in format_faces(photo.name, body):
                    out.write(line + "\n")
        out.write(f"\ntry: curl -s -X POST --data-binary @photo.jpg '{base}/v2/detect?facen=1&gender=1&age=1&emotions=1'\n")
        out.write("sfapi keeps serving; Ctrl-C stops it.\n")
        out.flush()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run_demo(cfg: SfapiConfig, photos: list[Path]) -> int:
    try:
        asyncio.run(_demo(cfg, photos))
    except KeyboardInterrupt:
        pass
    return 0


def demo_photos() -> list[Path]:
    """The group photos and one portrait of the sample data (fetched once into the user cache)."""
    data = ensure_sample_data()
    return sorted((data / "scenes").glob("*.jpg")) + [data / "faces" / "obama" / "img1.jpg"]
