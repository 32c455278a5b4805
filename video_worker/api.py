"""The job API (the video manager's shape) and the service endpoints, on aiohttp.

* ``POST /job/{id}`` body ``{"stream_url", "labels"?, "router_url"?, "single_pass"?,
  "settings"?}``: create (201) or replace (200) a job; answers the job.
* ``GET /jobs``: ``[job, ...]``; ``GET /job/{id}``: the job; ``DELETE /job/{id}``: 204;
  ``POST /job/{id}/restart``: the job, restarted.
* Every worker of a fleet answers for every job of the shared job store (:mod:`video_worker.manager`):
  a write on any worker is placed on the least loaded worker with room. ``GET /workers``:
  ``[{"id", "url", "capacity", "load", "heartbeat_age_s", "alive", "left"}, ...]``.
* A job: ``{"id", "stream_url", "labels", "router_url", "single_pass", "settings", "status",
  "status_msg", "statistic": {frames_decoded, frames_analysed, frames_dropped, frames_skipped_motion,
  faces_detected, tracks, faces_posted, posts_rejected, posts_failed, posts_spooled, posts_dropped,
  processed_duration, reconnects, decode_fps, last_error, posts_pending, spool_bytes},
  "worker_id" (the worker running it; null while it waits for one), "epoch" (its lease's fencing
  counter), "from_config"}``; ``status`` is also ``pending`` (no worker runs it) or ``failed`` (no
  worker can start it as defined).
* ``GET /healthz``: 200 ``{"status": "ok", ...}`` (503 while stopping); ``GET /metrics``;
  ``GET /openapi.json``: this API's OpenAPI document (:mod:`video_worker.openapi`).

Errors are ``{"code", "desc"}`` (``BAD_PARAM`` 400 with ``param``, ``NOT_FOUND`` 404,
``UNAUTHORIZED`` 401, ``STORE_UNAVAILABLE`` 503, ``FORBIDDEN`` 403, ``METHOD_NOT_ALLOWED`` 405 with ``Allow``,
``PAYLOAD_TOO_LARGE`` 413, ``INTERNAL_ERROR`` 500). The body of ``POST /job/{id}`` is parsed by
:mod:`facestack.core.safejson` (size and depth limits) and checked against the source policy
(:mod:`video_worker.policy`) before the job starts. API tokens (config ``auth``, :mod:`facestack.core.auth`'s rules) cover every route but
``/healthz``: 401 without a valid ``Authorization: Bearer`` token, 403 for a read-only token on a
write (POST, DELETE).
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from facestack.core import safejson
from facestack.core.audit import Auditor
from facestack.core.auth import Authenticator
from facestack.core.audit_store import attach as attach_audit_store
from facestack.core.authmw import auth_middleware
from facestack.core.roles import VIDEO_WORKER
from video_worker.config import job_from_api
from video_worker.errors import ApiError, BadJob
from video_worker.openapi import document

if TYPE_CHECKING:
    from video_worker.app import Worker

__all__ = ["build_app", "WORKER_KEY"]

log = logging.getLogger(__name__)

try:
    _VERSION = importlib.metadata.version("facestack")
except importlib.metadata.PackageNotFoundError:
    _VERSION = "0"

WORKER_KEY: web.AppKey["Worker"] = web.AppKey("worker")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.to_json(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "INTERNAL_ERROR")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"code": code, "desc": exc.reason}, status=exc.status,
                                 headers=headers)
    except Exception:  # a bug: say so as JSON, with the traceback in the log
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"code": "INTERNAL_ERROR", "desc": "internal error"}, status=500)


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _worker(request: web.Request) -> "Worker":
    return request.app[WORKER_KEY]


async def put_job(request: web.Request) -> web.Response:
    worker = _worker(request)
    try:
        body = safejson.loads(await request.read())
    except safejson.JsonRefused as exc:
        raise BadJob(f"the body must be JSON: {exc.detail}", param="body") from None
    spec = job_from_api(request.match_info["id"], body, worker.cfg)
    await worker.policy.check(spec.stream_url, spec.router_url, spec.settings)
    view, created = await worker.manager.put(spec)
    return web.json_response(view, status=201 if created else 200)


async def list_jobs(request: web.Request) -> web.Response:
    return web.json_response(await _worker(request).manager.views())


async def get_job(request: web.Request) -> web.Response:
    return web.json_response(await _worker(request).manager.view(request.match_info["id"]))


async def delete_job(request: web.Request) -> web.Response:
    await _worker(request).manager.delete(request.match_info["id"])
    return web.Response(status=204)


async def restart_job(request: web.Request) -> web.Response:
    return web.json_response(await _worker(request).manager.restart(request.match_info["id"]))


async def list_workers(request: web.Request) -> web.Response:
    return web.json_response(await _worker(request).manager.workers())


async def healthz(request: web.Request) -> web.Response:
    worker = _worker(request)
    jobs = worker.manager.jobs.values()
    statuses: dict[str, int] = {}
    for job in jobs:
        status = job.view()["status"]
        statuses[status] = statuses.get(status, 0) + 1
    body = {"status": "stopping" if worker.stopping else "ok", "worker_id": worker.cfg.worker_id,
            "jobs": len(jobs), "job_status": statuses,
            "posts_pending": sum(job.outbox.pending for job in jobs),
            "store": "ok" if worker.manager.store_ok else "unreachable"}
    return web.json_response(body, status=503 if worker.stopping else 200,
                             dumps=lambda o: json.dumps(o, sort_keys=True))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(_VERSION))


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=_worker(request).metrics.render())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def build_app(worker: "Worker", auth: Authenticator | None = None) -> web.Application:
    """The aiohttp application of ``worker``; ``auth`` checks API tokens (None: no check)."""
    middlewares: list[Callable[..., Awaitable[web.StreamResponse]]] = [_errors]
    auditor = Auditor("video_worker")
    if auth is not None:  # the route's role (facestack.core.roles.VIDEO_WORKER), and every write audited
        middlewares.insert(0, auth_middleware(auth, VIDEO_WORKER, auditor,
                                              lambda exc: {"code": exc.code, "desc": exc.reason}))
    app = web.Application(middlewares=middlewares, client_max_size=1024 * 1024)
    app[WORKER_KEY] = worker
    attach_audit_store(app, auditor, worker.cfg.audit)
    app.router.add_post("/job/{id}", put_job)
    app.router.add_get("/jobs", list_jobs)
    app.router.add_get("/job/{id}", get_job)
    app.router.add_delete("/job/{id}", delete_job)
    app.router.add_post("/job/{id}/restart", restart_job)
    app.router.add_get("/workers", list_workers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app
