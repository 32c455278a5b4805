"""Cameras: the video worker's jobs through its job API (``console.worker_url``, ``worker_token``).

* ``GET /ui/api/cameras`` -> ``{"configured", "jobs": [job]}`` (the worker's ``GET /jobs``)
* ``POST /ui/api/cameras/{id}`` JSON job ``{"stream_url", "labels"?, "single_pass"?, "settings"?}``
  -> the worker's ``POST /job/{id}`` (create or replace), validated by the worker itself, whose 400
  ``{"code", "desc"}`` comes back as ``{"code", "reason"}``
* ``POST /ui/api/cameras/{id}/restart``; ``DELETE /ui/api/cameras/{id}`` (stop and remove)

With a fleet sharing one job store, any worker is the entry point. The worker's token never
reaches the browser.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from .pages import ConsoleHandler

__all__ = ["CamerasHandler", "CameraHandler", "JOB_ID"]

log = logging.getLogger(__name__)

#: camera (job) ids the console accepts in its paths
JOB_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


class _WorkerHandler(ConsoleHandler):
    async def worker(self, method: str, path: str, body: Any = None) -> None:
        """Call the worker and answer with what it said (errors in this API's shape)."""
        cfg = self.console.config
        if cfg.worker_url is None:
            self.fail(404, "NOT_FOUND", "no video worker is configured (console.worker_url)")
            return
        headers = {}
        if cfg.worker_token is not None:
            headers["Authorization"] = f"Bearer {cfg.worker_token.get_secret_value()}"
        try:
            async with self.console.http().request(
                    method, cfg.worker_url + path, json=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=cfg.worker_timeout_s)) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.fail(503, "WORKER_UNAVAILABLE", f"the video worker is unavailable: {exc}")
            return
        if status == 204:
            self.send({"deleted": True})
            return
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            self.fail(502, "WORKER_ERROR", f"the video worker answered HTTP {status}, not JSON")
            return
        if status >= 400:
            reason = answer.get("desc") if isinstance(answer, dict) else None
            code = answer.get("code") if isinstance(answer, dict) else None
            if status in (401, 403):
                log.warning("video worker refused the console's token: HTTP %d", status)
                status, code = 502, "WORKER_REFUSED"
                reason = f"the video worker refused the console's token ({reason})"
            self.fail(status, str(code or "WORKER_ERROR"), str(reason or f"HTTP {status}"))
            return
        self.send(answer if path != "/jobs" else {"configured": True, "jobs": answer})


class CamerasHandler(_WorkerHandler):
    """``GET /ui/api/cameras``."""

    async def get(self) -> None:
        if self.console.config.worker_url is None:
            self.send({"configured": False, "jobs": []})
            return
        await self.worker("GET", "/jobs")


class CameraHandler(_WorkerHandler):
    """``POST | DELETE /ui/api/cameras/{id}`` and ``POST /ui/api/cameras/{id}/restart``."""

    async def post(self, job_id: str, action: str | None = None) -> None:
        if action:
            await self.worker("POST", f"/job/{job_id}/restart")
            return
        body = self.json_body()
        if body is None:
            return
        await self.worker("POST", f"/job/{job_id}", body)

    async def delete(self, job_id: str, action: str | None = None) -> None:
        if action:
            self.fail(405, "MALFORMED_REQUEST", "DELETE the camera itself, not its restart")
            return
        await self.worker("DELETE", f"/job/{job_id}")
